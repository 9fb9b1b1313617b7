package bridge

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in a configuration file, located by line and by the
// dotted path of the setting: "configs/x.yaml:14: mappings.drive.fields.linear: min 2 > max 1".
type Error struct {
	File string // the name given to Parse, or the path given to Load
	Line int    // 1-based; 0 when the problem has no single line (e.g. a missing section)
	Path string // dotted path of the setting, e.g. "mappings.drive.fields.linear"
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a configuration, in file order. Parse and
// Validate return it (as error) so that a user sees all of them at once.
type Errors []*Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap lets errors.As find the individual *Error values.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// problems collects errors while a configuration is decoded and validated.
// Paths are relative to whatever the collector is given to; join prefixes.
type problems struct {
	list Errors
}

func (p *problems) add(path, format string, args ...any) {
	p.list = append(p.list, &Error{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// merge adds the errors of a sub-Validate under prefix.
func (p *problems) merge(prefix string, err error) {
	if err == nil {
		return
	}
	es, ok := err.(Errors)
	if !ok {
		p.list = append(p.list, &Error{Path: prefix, Msg: err.Error()})
		return
	}
	for _, e := range es {
		e2 := *e
		e2.Path = joinPath(prefix, e.Path)
		p.list = append(p.list, &e2)
	}
}

func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	return p.list
}

// joinPath joins two dotted paths; an element starting with '[' is an index.
func joinPath(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	case b[0] == '[':
		return a + b
	}
	return a + "." + b
}

// locate fills in File and Line from the lines recorded while decoding: the
// line of the path itself, or of its nearest ancestor that was in the file.
// Errors are then sorted by line.
func (es Errors) locate(file string, lines map[string]int) {
	for _, e := range es {
		e.File = file
		if e.Line != 0 {
			continue
		}
		for p := e.Path; p != ""; p = parentPath(p) {
			if l, ok := lines[p]; ok {
				e.Line = l
				break
			}
		}
	}
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Line != es[j].Line {
			return es[i].Line < es[j].Line
		}
		return es[i].Path < es[j].Path
	})
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// suggest returns ` (did you mean "x"?)` when one of known is close to s.
func suggest(s string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(s, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" && len(s) >= 3 {
		for _, k := range known {
			if len(k) >= 3 && (strings.HasPrefix(s, k) || strings.HasPrefix(k, s)) {
				return fmt.Sprintf(" (did you mean %q?)", k)
			}
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
