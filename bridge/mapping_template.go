package bridge

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
)

// Command templates are Go text/template with a small vocabulary:
//
//	{{ .linear }}                 a field: floats print with at most 4 decimals, no exponent
//	{{ fixed 3 .linear }}         exactly 3 decimals (0-4): "0.400"
//	{{ .linear | scale 1000 | int }}  multiply, then round to an integer: "400"
//	{{ clamp -0.5 0.5 .linear }}  bound a number again
//	{{ bit .on }}                 a bool as 1 or 0
//	{{ if eq .mode "fast" }}F{{ else }}S{{ end }}   if/else with eq ne lt le gt ge and or not
//
// Nothing else: no range, with, define, template, variables, printf, call,
// index. A template made only of text and field pipelines (most are) is
// also compiled to a list of ops that renders without reflection; the two
// renderings are compared at load and in tests.

// Num is a float field's value inside a template. It prints with at most 4
// decimals and never in exponent form.
type Num float64

func (n Num) String() string { return string(appendNum(nil, float64(n))) }

var (
	allowedFuncs    = []string{"fixed", "int", "scale", "clamp", "bit"}
	allowedBuiltins = []string{"and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge"}
	templateFuncs   = template.FuncMap{
		"fixed": tmplFixed,
		"int":   tmplInt,
		"scale": tmplScale,
		"clamp": tmplClamp,
		"bit":   tmplBit,
	}
)

// maxRendered bounds a number's magnitude in a command line: beyond it the
// rendering is refused rather than printed with 20 digits.
const maxRendered = 1e12

func toFloat(x any) (float64, error) {
	switch v := x.(type) {
	case Num:
		return float64(v), nil
	case float64:
		return v, nil
	case int:
		return float64(v), nil
	case int64:
		return float64(v), nil
	}
	return 0, fmt.Errorf("want a number, got %T", x)
}

func finite(x float64) error {
	if math.IsNaN(x) || math.IsInf(x, 0) || math.Abs(x) > maxRendered {
		return fmt.Errorf("number %g out of the printable range", x)
	}
	return nil
}

func decimals(n any) (int, error) {
	d, ok := n.(int)
	if !ok || d < 0 || d > 4 {
		return 0, fmt.Errorf("decimals must be an integer from 0 to 4 (the firmware's number format), got %v", n)
	}
	return d, nil
}

func tmplFixed(n, x any) (string, error) {
	d, err := decimals(n)
	if err != nil {
		return "", err
	}
	f, err := toFloat(x)
	if err != nil {
		return "", err
	}
	if err := finite(f); err != nil {
		return "", err
	}
	return string(appendFixed(nil, f, d)), nil
}

func tmplInt(x any) (int64, error) {
	f, err := toFloat(x)
	if err != nil {
		return 0, err
	}
	if err := finite(f); err != nil {
		return 0, err
	}
	return int64(math.Round(f)), nil
}

func tmplScale(k, x any) (Num, error) {
	a, err := toFloat(k)
	if err != nil {
		return 0, err
	}
	f, err := toFloat(x)
	if err != nil {
		return 0, err
	}
	return Num(a * f), nil
}

func tmplClamp(lo, hi, x any) (Num, error) {
	l, err := toFloat(lo)
	if err != nil {
		return 0, err
	}
	h, err := toFloat(hi)
	if err != nil {
		return 0, err
	}
	f, err := toFloat(x)
	if err != nil {
		return 0, err
	}
	return Num(math.Max(l, math.Min(h, f))), nil
}

func tmplBit(b any) (string, error) {
	v, ok := b.(bool)
	if !ok {
		return "", fmt.Errorf("want a bool, got %T", b)
	}
	if v {
		return "1", nil
	}
	return "0", nil
}

// appendNum appends x with at most 4 decimals, trailing zeros trimmed:
// 0.4 → "0.4", 1 → "1", -0.00001 → "0".
func appendNum(dst []byte, x float64) []byte {
	start := len(dst)
	dst = strconv.AppendFloat(dst, x, 'f', 4, 64)
	i := len(dst)
	for dst[i-1] == '0' {
		i--
	}
	if dst[i-1] == '.' {
		i--
	}
	dst = dst[:i]
	if len(dst)-start == 2 && dst[start] == '-' && dst[start+1] == '0' {
		dst = append(dst[:start], '0')
	}
	return dst
}

// appendFixed appends x with exactly d decimals, never "-0.000".
func appendFixed(dst []byte, x float64, d int) []byte {
	start := len(dst)
	dst = strconv.AppendFloat(dst, x, 'f', d, 64)
	if dst[start] == '-' {
		zero := true
		for _, c := range dst[start+1:] {
			if c != '0' && c != '.' {
				zero = false
				break
			}
		}
		if zero {
			copy(dst[start:], dst[start+1:])
			dst = dst[:len(dst)-1]
		}
	}
	return dst
}

// checkTree refuses template constructs outside the vocabulary and field
// references that are not fields.
func checkTree(root *parse.ListNode, fields []field) error {
	w := treeChecker{fields: fields}
	w.node(root)
	return errors.Join(w.errs...)
}

type treeChecker struct {
	fields []field
	errs   []error
}

func (w *treeChecker) failf(format string, args ...any) {
	w.errs = append(w.errs, fmt.Errorf(format, args...))
}

func (w *treeChecker) node(n parse.Node) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			w.node(c)
		}
	case *parse.TextNode, *parse.CommentNode:
	case *parse.ActionNode:
		w.pipe(n.Pipe)
	case *parse.IfNode:
		w.pipe(n.Pipe)
		w.node(n.List)
		w.node(n.ElseList)
	default:
		w.failf("%s is not allowed (only fields, if/else and %s)", shortNode(n), strings.Join(allowedFuncs, ", "))
	}
}

func (w *treeChecker) pipe(p *parse.PipeNode) {
	if len(p.Decl) > 0 {
		w.failf("template variables are not allowed: %s", shortNode(p))
	}
	for _, c := range p.Cmds {
		for _, a := range c.Args {
			w.arg(a)
		}
	}
}

func (w *treeChecker) arg(n parse.Node) {
	switch n := n.(type) {
	case *parse.FieldNode:
		if len(n.Ident) != 1 {
			w.failf("%s: fields are one name, like .linear", n)
			return
		}
		if fieldIndex(w.fields, n.Ident[0]) < 0 {
			names := make([]string, len(w.fields))
			for i, f := range w.fields {
				names[i] = f.name
			}
			w.failf(".%s is not a field%s (fields: %s)", n.Ident[0], suggest(n.Ident[0], names), strings.Join(names, ", "))
		}
	case *parse.IdentifierNode:
		if !containsString(allowedFuncs, n.Ident) && !containsString(allowedBuiltins, n.Ident) {
			w.failf("function %q is not allowed (functions: %s; %s)", n.Ident, strings.Join(allowedFuncs, ", "), strings.Join(allowedBuiltins, " "))
		}
	case *parse.NumberNode, *parse.StringNode, *parse.BoolNode:
	case *parse.PipeNode:
		w.pipe(n)
	default:
		w.failf("%s is not allowed (only fields, constants and %s)", shortNode(n), strings.Join(allowedFuncs, ", "))
	}
}

func shortNode(n parse.Node) string {
	s := n.String()
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}

func fieldIndex(fields []field, name string) int {
	for i := range fields {
		if fields[i].name == name {
			return i
		}
	}
	return -1
}

// The fast path: a template of text and field pipelines as ops.

type xfn uint8

const (
	xFixed xfn = iota + 1
	xInt
	xScale
	xClamp
	xBit
)

type xform struct {
	fn   xfn
	n    int     // fixed: decimals
	a, b float64 // scale: a; clamp: a, b
}

// op is literal text (field < 0) or a field's value through xforms.
type op struct {
	text  string
	field int
	xf    []xform
}

type valKind uint8

const (
	vNum valKind = iota + 1
	vInt
	vBool
	vStr
)

func kindOf(t FieldType) valKind {
	switch t {
	case TypeFloat:
		return vNum
	case TypeInt:
		return vInt
	case TypeBool:
		return vBool
	}
	return vStr
}

// compileOps turns a template into ops, or returns ok=false when it uses
// anything but text and field pipelines (if/else, comparisons), or when a
// pipeline does not type-check (the template's own execution then reports
// the error).
func compileOps(root *parse.ListNode, fields []field) (ops []op, ok bool) {
	for _, n := range root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			ops = append(ops, op{text: string(n.Text), field: -1})
		case *parse.CommentNode:
		case *parse.ActionNode:
			o, ok := compileAction(n.Pipe, fields)
			if !ok {
				return nil, false
			}
			ops = append(ops, o)
		default:
			return nil, false
		}
	}
	return ops, true
}

func compileAction(p *parse.PipeNode, fields []field) (op, bool) {
	if len(p.Decl) > 0 || len(p.Cmds) == 0 {
		return op{}, false
	}
	o := op{field: -1}
	first := p.Cmds[0].Args
	last, ok := first[len(first)-1].(*parse.FieldNode)
	if !ok || len(last.Ident) != 1 {
		return op{}, false
	}
	o.field = fieldIndex(fields, last.Ident[0])
	if o.field < 0 {
		return op{}, false
	}
	if len(first) > 1 {
		x, ok := compileXform(first[:len(first)-1])
		if !ok {
			return op{}, false
		}
		o.xf = append(o.xf, x)
	}
	for _, c := range p.Cmds[1:] {
		x, ok := compileXform(c.Args)
		if !ok {
			return op{}, false
		}
		o.xf = append(o.xf, x)
	}
	// Type-check the chain.
	k := kindOf(fields[o.field].typ)
	done := false
	for _, x := range o.xf {
		if done {
			return op{}, false
		}
		switch x.fn {
		case xFixed:
			if k != vNum && k != vInt {
				return op{}, false
			}
			done = true
		case xInt:
			if k != vNum && k != vInt {
				return op{}, false
			}
			k = vInt
		case xScale, xClamp:
			if k != vNum && k != vInt {
				return op{}, false
			}
			k = vNum
		case xBit:
			if k != vBool {
				return op{}, false
			}
			done = true
		}
	}
	return o, true
}

// compileXform reads "fn const…" (the piped value is the implicit last argument).
func compileXform(args []parse.Node) (xform, bool) {
	id, ok := args[0].(*parse.IdentifierNode)
	if !ok {
		return xform{}, false
	}
	var nums []*parse.NumberNode
	for _, a := range args[1:] {
		n, ok := a.(*parse.NumberNode)
		if !ok {
			return xform{}, false
		}
		nums = append(nums, n)
	}
	switch {
	case id.Ident == "fixed" && len(nums) == 1 && nums[0].IsInt && nums[0].Int64 >= 0 && nums[0].Int64 <= 4 && !strings.ContainsAny(nums[0].Text, ".eE'"):
		return xform{fn: xFixed, n: int(nums[0].Int64)}, true
	case id.Ident == "int" && len(nums) == 0:
		return xform{fn: xInt}, true
	case id.Ident == "scale" && len(nums) == 1 && nums[0].IsFloat:
		return xform{fn: xScale, a: nums[0].Float64}, true
	case id.Ident == "clamp" && len(nums) == 2 && nums[0].IsFloat && nums[1].IsFloat:
		return xform{fn: xClamp, a: nums[0].Float64, b: nums[1].Float64}, true
	case id.Ident == "bit" && len(nums) == 0:
		return xform{fn: xBit}, true
	}
	return xform{}, false
}

var errRender = errors.New("number out of the printable range")

// renderOps appends the line to dst. It does not allocate when dst has room.
func renderOps(dst []byte, ops []op, fields []field, vals *[maxFields]value) ([]byte, error) {
	for i := range ops {
		o := &ops[i]
		if o.field < 0 {
			dst = append(dst, o.text...)
			continue
		}
		v := &vals[o.field]
		k := kindOf(fields[o.field].typ)
		x, n := v.f, v.i
		done := false
		for _, t := range o.xf {
			switch t.fn {
			case xFixed:
				if finite(x) != nil {
					return dst, errRender
				}
				dst = appendFixed(dst, x, t.n)
				done = true
			case xInt:
				if k == vNum {
					if finite(x) != nil {
						return dst, errRender
					}
					n = int64(math.Round(x))
				}
				x = float64(n)
				k = vInt
			case xScale:
				if k == vInt {
					x = float64(n)
				}
				x *= t.a
				k = vNum
			case xClamp:
				if k == vInt {
					x = float64(n)
				}
				x = math.Max(t.a, math.Min(t.b, x))
				k = vNum
			case xBit:
				if v.b {
					dst = append(dst, '1')
				} else {
					dst = append(dst, '0')
				}
				done = true
			}
		}
		if done {
			continue
		}
		switch k {
		case vNum:
			if finite(x) != nil {
				return dst, errRender
			}
			dst = appendNum(dst, x)
		case vInt:
			dst = strconv.AppendInt(dst, n, 10)
		case vBool:
			dst = strconv.AppendBool(dst, v.b)
		case vStr:
			dst = append(dst, v.s...)
		}
	}
	return dst, nil
}

// templateValue is v as the template sees it.
func (f *field) templateValue(v value) any {
	switch f.typ {
	case TypeFloat:
		return Num(v.f)
	case TypeInt:
		return v.i
	case TypeBool:
		return v.b
	}
	return v.s
}

// limitedWriter fails writes beyond its capacity instead of growing.
type limitedWriter struct {
	buf []byte
	max int
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	if len(w.buf)+len(p) > w.max {
		return 0, errors.New("command too long")
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// renderTemplate executes the template (the slow path).
func renderTemplate(t *template.Template, fields []field, vals *[maxFields]value) (string, error) {
	data := make(map[string]any, len(fields))
	for i := range fields {
		data[fields[i].name] = fields[i].templateValue(vals[i])
	}
	w := limitedWriter{buf: make([]byte, 0, 64), max: 512}
	if err := t.Execute(&w, data); err != nil {
		return "", cleanTemplateError(t.Name(), err)
	}
	return string(w.buf), nil
}

func cleanTemplateError(name string, err error) error {
	s := err.Error()
	s = strings.TrimPrefix(s, "template: "+name+":")
	if i := strings.Index(s, "error calling "); i >= 0 {
		if j := strings.Index(s[i:], ": "); j >= 0 {
			if k := strings.LastIndex(s[:i], " at <"); k >= 0 {
				return fmt.Errorf("%s: %s", strings.TrimSuffix(s[k+1:i], ": "), s[i+j+2:])
			}
		}
	}
	return errors.New(strings.TrimSpace(s))
}

// checkLine is the last word on what reaches the serial line (safety
// invariant 5): printable ASCII only, none of the reserved bytes '!' and '?'
// nor the checksum mark '*', and short enough for the device's line with seq
// and checksum. For teleop/1 it also checks the grammar of
// firmware-protocol.md §4: an upper-case verb, single spaces, and numbers
// as [-]digits[.up to 4 digits].
func checkLine(s string, proto Protocol, maxBody int) error {
	if s == "" {
		return errors.New("the command line is empty")
	}
	if len(s) > maxBody {
		return fmt.Errorf("the command line is %d bytes; at most %d fit the device's line", len(s), maxBody)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c > 0x7E:
			return fmt.Errorf("the command line contains the byte 0x%02X at %d", c, i)
		case c == '!' || c == '?' || c == '*':
			return fmt.Errorf("the command line contains the reserved byte %q at %d", c, i)
		}
	}
	if proto != ProtoTeleop1 {
		return nil
	}
	verb, args, _ := strings.Cut(s, " ")
	if !validVerb(verb) {
		return fmt.Errorf("the command line must start with an upper-case verb, got %q", verb)
	}
	if s[len(s)-1] == ' ' {
		return errors.New("the command line ends with a space")
	}
	for args != "" {
		var a string
		a, args, _ = strings.Cut(args, " ")
		if a == "" {
			return errors.New("the command line has an empty argument (two spaces)")
		}
		if k, v, ok := strings.Cut(a, "="); ok {
			if k == "" || v == "" {
				return fmt.Errorf("argument %q: want key=value", a)
			}
			a = v
		}
		if numberLike(a) {
			if !validWireNumber(a) {
				return fmt.Errorf("argument %q is not a number as the firmware reads them ([-]digits[.up to 4 digits])", a)
			}
		}
	}
	return nil
}

func validVerb(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 'A' || v[i] > 'Z' {
			return false
		}
	}
	return true
}

// numberLike reports whether an argument is meant as a number: it starts
// like one and holds nothing but digits, signs, dots and exponent marks
// ("1e-05" and "-" are number-like; "2cam" and "-x" are words).
func numberLike(a string) bool {
	if c := a[0]; !(isDigit(c) || c == '-' || c == '+' || c == '.') {
		return false
	}
	for i := 1; i < len(a); i++ {
		if c := a[i]; !(isDigit(c) || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// validWireNumber reports whether s is [-]digits[.1-4 digits], the
// firmware's number format (firmware-protocol.md §4).
func validWireNumber(s string) bool {
	if s != "" && s[0] == '-' {
		s = s[1:]
	}
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i == 0 {
		return false
	}
	if i == len(s) {
		return true
	}
	if s[i] != '.' {
		return false
	}
	frac := s[i+1:]
	if len(frac) == 0 || len(frac) > 4 {
		return false
	}
	for j := 0; j < len(frac); j++ {
		if !isDigit(frac[j]) {
			return false
		}
	}
	return true
}
