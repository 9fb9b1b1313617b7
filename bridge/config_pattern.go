package bridge

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode"
)

// compileFullMatch compiles a pattern that must match a whole value: it is
// wrapped in ^(?:…)$, so "[a-z]+" cannot accept "ab!" by matching "ab".
func compileFullMatch(pattern string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(`^(?:` + pattern + `)$`)
	if err != nil {
		return nil, fmt.Errorf("bad regular expression: %v", err)
	}
	return re, nil
}

// lineUnsafe reports whether r may not appear in a value that ends up in a
// command line: anything but printable ASCII, the reserved bytes '!' and
// '?', the checksum mark '*', and the space (which would split arguments).
func lineUnsafe(r rune) bool {
	return r < 0x21 || r > 0x7E || r == '!' || r == '?' || r == '*'
}

// checkPatternAlphabet proves that a string field's pattern can only match
// characters that are safe in a command line: it walks the regular
// expression and refuses any literal or class that admits an unsafe one.
// ".", "\S", "[^,]" and the like are refused: they admit control characters.
func checkPatternAlphabet(pattern string) error {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return fmt.Errorf("bad regular expression: %v", err)
	}
	if r, bad := unsafeRune(re.Simplify()); bad {
		return fmt.Errorf("can match %s, which may not appear in a command line; list the allowed characters, e.g. [A-Za-z0-9_-]", describeRune(r))
	}
	return nil
}

func describeRune(r rune) string {
	switch {
	case r == -1:
		return "any character (.)"
	case r == ' ':
		return "a space"
	case r < 0x20 || r == 0x7F:
		return fmt.Sprintf("the control character 0x%02X", r)
	case r > 0x7F:
		return fmt.Sprintf("non-ASCII %U", r)
	}
	return fmt.Sprintf("%q", r)
}

// unsafeRune returns an unsafe rune that re can match, if any.
func unsafeRune(re *syntax.Regexp) (rune, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if lineUnsafe(r) {
				return r, true
			}
			if re.Flags&syntax.FoldCase != 0 {
				for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
					if lineUnsafe(f) {
						return f, true
					}
				}
			}
		}
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			if lo < 0x21 {
				return lo, true
			}
			if hi > 0x7E {
				return max(lo, 0x7F), true
			}
			for _, r := range []rune{'!', '?', '*'} {
				if lo <= r && r <= hi {
					return r, true
				}
			}
		}
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return -1, true
	}
	for _, sub := range re.Sub {
		if r, bad := unsafeRune(sub); bad {
			return r, true
		}
	}
	return 0, false
}

// samples returns up to two strings that the pattern matches, the shortest
// it can build and a long one (repetitions grown to fill maxLen), used to
// execute templates at load. Strings that do not in fact match or are too
// long are left out.
func patternSamples(pattern string, maxLen int) []string {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil
	}
	re = re.Simplify()
	full, err := compileFullMatch(pattern)
	if err != nil {
		return nil
	}
	var out []string
	for _, long := range []bool{false, true} {
		var b strings.Builder
		genSample(&b, re, long, maxLen)
		s := b.String()
		if len(s) <= maxLen && full.MatchString(s) && !containsString(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func containsString(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func genSample(b *strings.Builder, re *syntax.Regexp, long bool, budget int) {
	switch re.Op {
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			b.WriteRune(r)
		}
	case syntax.OpCharClass:
		if len(re.Rune) >= 2 {
			r := re.Rune[0]
			if long { // the widest digit-like or letter: exercise the longest rendering
				r = re.Rune[len(re.Rune)-1]
			}
			b.WriteRune(r)
		}
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		b.WriteByte('a')
	case syntax.OpCapture:
		genSample(b, re.Sub[0], long, budget)
	case syntax.OpConcat:
		for _, s := range re.Sub {
			genSample(b, s, long, budget)
		}
	case syntax.OpAlternate:
		genSample(b, re.Sub[0], long, budget)
	case syntax.OpQuest:
		if long {
			genSample(b, re.Sub[0], long, budget)
		}
	case syntax.OpStar, syntax.OpPlus, syntax.OpRepeat:
		n := 1
		if re.Op == syntax.OpStar {
			n = 0
		}
		if re.Op == syntax.OpRepeat {
			n = re.Min
		}
		limit := n
		if long {
			limit = budget
			if re.Op == syntax.OpRepeat && re.Max >= 0 {
				limit = re.Max
			}
		}
		for i := 0; i < limit && (i < n || b.Len() < budget); i++ {
			genSample(b, re.Sub[0], long, budget)
		}
	}
}
