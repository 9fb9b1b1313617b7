package bridge

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads, decodes, completes and validates the configuration file at
// path, expanding ${VAR} references from the process environment. The error
// is an Errors listing every problem, each with file and line.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse is Load for a configuration already in memory. name is used in
// errors; env looks up environment variables (nil means os.LookupEnv).
func Parse(name string, data []byte, env func(string) (string, bool)) (*Config, error) {
	if env == nil {
		env = os.LookupEnv
	}
	fail := func(line int, msg string) (*Config, error) {
		return nil, Errors{{File: name, Line: line, Msg: msg}}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		line, msg := yamlErrorLine(err)
		return fail(line, msg)
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return fail(0, "the file is empty")
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return fail(doc.Line, "want a mapping of sections (session, devices, safety, mappings, …)")
	}
	d := newDecoder(env)
	var c Config
	d.decode(doc, reflect.ValueOf(&c).Elem(), "")
	decodeErrs := d.errs.list
	c.ApplyDefaults()
	var all Errors
	all = append(all, decodeErrs...)
	if err := c.Validate(); err != nil {
		var es Errors
		if !errors.As(err, &es) {
			return nil, err
		}
		for _, e := range es {
			if !shadowed(e, decodeErrs) {
				all = append(all, e)
			}
		}
	}
	if len(all) > 0 {
		all.locate(name, d.lines)
		return nil, all
	}
	return &c, nil
}

// shadowed reports whether a validation error is a consequence of a
// decoding error: about the same setting or one inside it (a value that
// failed to decode is left unset), or a "required" complaint next to an
// unknown field (most likely the same setting, misspelt).
func shadowed(e *Error, decodeErrs Errors) bool {
	for _, de := range decodeErrs {
		if strings.HasPrefix(de.Msg, "given twice") {
			continue // the first one was decoded
		}
		if e.Path == parentPath(de.Path) && containsWord(e.Msg, lastSegment(de.Path)) {
			return true // "credentials missing: give token, …" after token failed to expand
		}
		if e.Path == de.Path || strings.HasPrefix(e.Path, de.Path+".") || strings.HasPrefix(e.Path, de.Path+"[") {
			return true
		}
		if strings.HasPrefix(de.Msg, "unknown field") {
			parent := parentPath(de.Path)
			if (e.Path == parent || parentPath(e.Path) == parent) &&
				(strings.HasPrefix(e.Msg, "required") || strings.Contains(e.Msg, "missing") || strings.HasPrefix(e.Msg, "give ") || strings.HasPrefix(e.Msg, "no port")) {
				return true
			}
		}
	}
	return false
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlErrorLine pulls the line out of a yaml.v3 syntax error.
func yamlErrorLine(err error) (int, string) {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, "YAML: " + m[2]
	}
	return 0, msg
}

func lastSegment(p string) string { return p[len(parentPath(p)):] }

// containsWord reports whether w appears in s between non-word characters.
func containsWord(s, w string) bool {
	w = strings.TrimLeft(w, ".")
	if w == "" {
		return false
	}
	for i := 0; ; {
		j := strings.Index(s[i:], w)
		if j < 0 {
			return false
		}
		j += i
		end := j + len(w)
		if (j == 0 || !isWordByte(s[j-1])) && (end == len(s) || !isWordByte(s[end])) {
			return true
		}
		i = j + 1
	}
}

func isWordByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
