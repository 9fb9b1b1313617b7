package bridge

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// field is a Field compiled for the hot path.
type field struct {
	name     string
	typ      FieldType
	min, max float64
	clamp    bool
	required bool
	def      value
	values   []string       // enum
	re       *regexp.Regexp // string, full match
	maxLen   int
}

// value is a field's value. Numbers are in f (ints too, exactly); i holds
// ints as integers.
type value struct {
	f   float64
	i   int64
	b   bool
	s   string
	set bool
}

func compileField(f *Field) (field, error) {
	cf := field{name: f.Name, typ: f.Type, required: f.Required, values: f.Values, maxLen: f.MaxLen}
	if f.Min != nil {
		cf.min = *f.Min
	}
	if f.Max != nil {
		cf.max = *f.Max
	}
	cf.clamp = f.OutOfRange == RangeClamp
	if f.Type == TypeString {
		re, err := compileFullMatch(f.Pattern)
		if err != nil {
			return cf, err
		}
		cf.re = re
	}
	if f.Default != nil {
		v, reason := f.parseText(*f.Default)
		if reason != "" {
			return cf, fmt.Errorf("default: %s", reason)
		}
		v.set = true
		cf.def = v
	}
	return cf, nil
}

// parseText reads s as a value of the field's type, without range checks
// (defaults, csv and text data).
func (f *Field) parseText(s string) (value, string) {
	switch f.Type {
	case TypeFloat, TypeInt:
		if !isJSONNumber(s) {
			return value{}, fmt.Sprintf("%s is not a number", quoteShort(s))
		}
		x, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(x, 0) {
			return value{}, fmt.Sprintf("%s is not a finite number", quoteShort(s))
		}
		if f.Type == TypeInt && x != math.Trunc(x) {
			return value{}, fmt.Sprintf("%s is not an integer", s)
		}
		return value{f: x, i: int64(x)}, ""
	case TypeBool:
		switch s {
		case "true", "1":
			return value{b: true}, ""
		case "false", "0":
			return value{b: false}, ""
		}
		return value{}, fmt.Sprintf("want true or false, got %s", quoteShort(s))
	}
	return value{s: s}, ""
}

// check range-checks or validates v in place; it returns a rejection reason.
func (f *field) check(v *value, raw string) (RejectCode, string) {
	switch f.typ {
	case TypeFloat, TypeInt:
		if math.IsNaN(v.f) || math.IsInf(v.f, 0) {
			return CodeBadValue, fmt.Sprintf("%s: %s is not a finite number", f.name, shortNum(raw))
		}
		if f.typ == TypeInt && v.f != math.Trunc(v.f) {
			return CodeBadValue, fmt.Sprintf("%s: %s is not an integer", f.name, shortNum(raw))
		}
		if v.f < f.min || v.f > f.max {
			if !f.clamp {
				return CodeBadValue, fmt.Sprintf("%s %s out of range [%s, %s]", f.name, shortNum(raw), fmtNum(f.min), fmtNum(f.max))
			}
			v.f = math.Max(f.min, math.Min(f.max, v.f))
		}
		if v.f == 0 {
			v.f = 0 // no negative zero
		}
		v.i = int64(v.f)
	case TypeEnum:
		for _, e := range f.values {
			if v.s == e {
				return 0, ""
			}
		}
		return CodeBadValue, fmt.Sprintf("%s: %s is not one of %s", f.name, quoteShort(v.s), strings.Join(f.values, ", "))
	case TypeString:
		if len(v.s) > f.maxLen {
			return CodeBadValue, fmt.Sprintf("%s: %d bytes, over the limit of %d", f.name, len(v.s), f.maxLen)
		}
		if !f.re.MatchString(v.s) {
			return CodeBadValue, fmt.Sprintf("%s: %s does not match the pattern %s", f.name, quoteShort(v.s), strings.TrimSuffix(strings.TrimPrefix(f.re.String(), "^(?:"), ")$"))
		}
	}
	return 0, ""
}

// fromJSON converts a JSON token to the field's type and checks it.
func (f *field) fromJSON(tok jsonValue) (value, RejectCode, string) {
	var v value
	switch f.typ {
	case TypeFloat, TypeInt:
		if tok.kind != jsonNumber {
			return v, CodeBadValue, fmt.Sprintf("%s: want a number, got %s", f.name, tok.kind)
		}
		x, err := strconv.ParseFloat(tok.raw, 64)
		if err != nil && !math.IsInf(x, 0) {
			return v, CodeBadValue, fmt.Sprintf("%s: %s is not a number", f.name, shortNum(tok.raw))
		}
		v.f = x
		if code, reason := f.check(&v, tok.raw); code != 0 {
			return v, code, reason
		}
	case TypeBool:
		switch tok.kind {
		case jsonTrue:
			v.b = true
		case jsonFalse:
		default:
			return v, CodeBadValue, fmt.Sprintf("%s: want true or false, got %s", f.name, tok.kind)
		}
	case TypeEnum, TypeString:
		if tok.kind != jsonString {
			return v, CodeBadValue, fmt.Sprintf("%s: want a string, got %s", f.name, tok.kind)
		}
		// A cheap early out: an escape shrinks to no less than a sixth.
		if limit := f.strLimit(); len(tok.raw) > 6*limit {
			return v, CodeBadValue, fmt.Sprintf("%s: over the limit of %d bytes", f.name, limit)
		}
		v.s = tok.text()
		if code, reason := f.check(&v, ""); code != 0 {
			return v, code, reason
		}
	}
	v.set = true
	return v, 0, ""
}

func (f *field) strLimit() int {
	if f.typ == TypeEnum {
		return maxEnumValueLen
	}
	return f.maxLen
}

// fromText converts a csv value or a text group.
func (f *field) fromText(s string) (value, RejectCode, string) {
	cfg := Field{Type: f.typ}
	v, reason := cfg.parseText(s)
	if reason != "" {
		return v, CodeBadValue, f.name + ": " + reason
	}
	if code, reason := f.check(&v, s); code != 0 {
		return v, code, reason
	}
	v.set = true
	return v, 0, ""
}

// quoteShort quotes operator input for a reason, escaping control bytes and
// cutting it to a readable length.
func quoteShort(s string) string {
	const max = 32
	if len(s) > max {
		return strconv.QuoteToASCII(s[:max]) + "…"
	}
	return strconv.QuoteToASCII(s)
}

// shortNum shows a number as the operator wrote it, cut if huge. Only for
// text that passed the number grammar.
func shortNum(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}
