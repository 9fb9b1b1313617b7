package bridge

import (
	"encoding"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// This file decodes a yaml.Node tree into the config structs. yaml.v3's own
// Node.Decode has no KnownFields strictness and reports neither paths nor
// more than a few errors, so the walk is done here: every unknown key, type
// mismatch and bad environment reference is reported with its line and path,
// and decoding carries on to find the rest.
//
// Go types drive the decoding, not YAML tags: `baud: "115200"` and
// `baud: ${BAUD:-115200}` both decode into an int. Environment references
// are expanded in scalar values only, after YAML parsing, so a secret full of
// YAML punctuation cannot change the document's structure.

// yamlDecoder is implemented by types that decode themselves from a node.
type yamlDecoder interface {
	decodeYAML(d *decoder, n *yaml.Node, path string)
}

// keyed is implemented by the elements of slices written in YAML as a
// mapping from name to element (devices, mappings, fields).
type keyed interface {
	setKey(string)
}

type decoder struct {
	env   func(string) (string, bool)
	lines map[string]int // path → line of its key (or of the value for sequence items)
	errs  problems
}

func newDecoder(env func(string) (string, bool)) *decoder {
	return &decoder{env: env, lines: make(map[string]int)}
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.errs.list = append(d.errs.list, &Error{Line: n.Line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// scalar returns the env-expanded value of a scalar node; ok is false (and an
// error recorded) when the node is not a scalar or the expansion fails.
func (d *decoder) scalar(n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "want %s, got %s", want, kindName(n))
		return "", false
	}
	s, err := expandEnv(n.Value, d.env)
	if err != nil {
		d.errorf(n, path, "%v", err)
		return "", false
	}
	return s, true
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" && n.Style == 0
}

var (
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	yamlDecoderType     = reflect.TypeFor[yamlDecoder]()
	keyedType           = reflect.TypeFor[keyed]()
)

// decode decodes n into v (addressable).
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		n = n.Content[0]
	}
	if isNull(n) {
		return // absent: the zero value, filled in by defaults
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
		return
	}
	pv := v.Addr()
	if pv.Type().Implements(yamlDecoderType) {
		pv.Interface().(yamlDecoder).decodeYAML(d, n, path)
		return
	}
	if pv.Type().Implements(textUnmarshalerType) {
		s, ok := d.scalar(n, path, "a value")
		if !ok {
			return
		}
		if err := pv.Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			d.errorf(n, path, "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if v.Type().Elem().Implements(keyedType) {
			d.decodeKeyed(n, v, path)
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "want a list, got %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.lines[p] = c.Line
			d.decode(c, s.Index(i), p)
		}
		v.Set(s)
	case reflect.String:
		if s, ok := d.scalar(n, path, "a string"); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		s, ok := d.scalar(n, path, "true or false")
		if !ok {
			return
		}
		switch s {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			d.errorf(n, path, "want true or false, got %q", s)
		}
	case reflect.Int, reflect.Int64:
		s, ok := d.scalar(n, path, "an integer")
		if !ok {
			return
		}
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil || i < math.MinInt32 || i > math.MaxInt32 {
			d.errorf(n, path, "want an integer, got %q", s)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		s, ok := d.scalar(n, path, "a number")
		if !ok {
			return
		}
		f, ok := parseDecimal(s)
		if !ok {
			d.errorf(n, path, "want a number, got %q", s)
			return
		}
		v.SetFloat(f)
	default:
		panic("bridge: cannot decode into " + v.Type().String())
	}
}

// structFields maps the yaml names of a struct type to field indexes, in
// declaration order.
type structInfo struct {
	names []string
	index map[string]int
}

var structCache sync.Map // reflect.Type → *structInfo

func fieldsOf(t reflect.Type) *structInfo {
	if si, ok := structCache.Load(t); ok {
		return si.(*structInfo)
	}
	si := &structInfo{index: make(map[string]int)}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		si.names = append(si.names, name)
		si.index[name] = i
	}
	structCache.Store(t, si)
	return si
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping, got %s", kindName(n))
		return
	}
	si := fieldsOf(v.Type())
	seen := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "keys must be plain names")
			continue
		}
		p := joinPath(path, k.Value)
		if k.Value == "<<" {
			d.errorf(k, path, "YAML merge keys (<<) are not supported; repeat the settings or use an alias")
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(k, p, "given twice (first on line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		idx, ok := si.index[k.Value]
		if !ok {
			d.errorf(k, p, "unknown field%s", suggest(k.Value, si.names))
			continue
		}
		d.lines[p] = k.Line
		d.decode(val, v.Field(idx), p)
	}
}

// decodeKeyed decodes a mapping of name → element into a slice of pointers
// to structs whose key is set with setKey, keeping the file's order.
func (d *decoder) decodeKeyed(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping of names to settings, got %s", kindName(n))
		return
	}
	et := v.Type().Elem() // *T
	s := reflect.MakeSlice(v.Type(), 0, len(n.Content)/2)
	seen := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "keys must be plain names")
			continue
		}
		p := joinPath(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.errorf(k, p, "given twice (first on line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		d.lines[p] = k.Line
		e := reflect.New(et.Elem())
		e.Interface().(keyed).setKey(k.Value)
		d.decode(val, e.Elem(), p)
		s = reflect.Append(s, e)
	}
	v.Set(s)
}

// parseDecimal parses a plain decimal number (JSON's grammar, plus a leading
// '+'): no hex, no underscores, no NaN or infinities.
func parseDecimal(s string) (float64, bool) {
	t := strings.TrimPrefix(s, "+")
	if !isJSONNumber(t) {
		return 0, false
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expandEnv replaces ${NAME} and ${NAME:-default} in s. "$${" stands for a
// literal "${"; a '$' not followed by '{' is kept as it is (templates use
// $ for their own variables). A variable that is unset, with no default, is
// an error; so is an empty one with no default (":-" makes empty take the
// default, as in the shell).
func expandEnv(s string, env func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' { // "$${" is a literal "${"
			b.WriteString(s[:i])
			b.WriteString("{")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated ${ in %q", s[i:])
		}
		ref := s[i+2 : i+end]
		s = s[i+end+1:]
		name, def, hasDef := strings.Cut(ref, ":-")
		if !envNameRE.MatchString(name) {
			return "", fmt.Errorf("bad environment reference ${%s}: want ${NAME} or ${NAME:-default}", ref)
		}
		val, set := env(name)
		switch {
		case set && val != "":
			b.WriteString(val)
		case hasDef:
			b.WriteString(def)
		case !set && val == unsetMarker:
			b.WriteString("UNSET-" + name)
		case set:
			return "", fmt.Errorf("environment variable %s is empty", name)
		default:
			return "", fmt.Errorf("environment variable %s is not set", name)
		}
	}
}

const unsetMarker = "\x00unset"

// AllowUnset wraps env (nil: os.LookupEnv) for Parse so that a variable
// that is unset and has no default expands to the placeholder "UNSET-NAME"
// instead of being an error: for checking files without their secrets.
func AllowUnset(env func(string) (string, bool)) func(string) (string, bool) {
	if env == nil {
		env = os.LookupEnv
	}
	return func(name string) (string, bool) {
		if v, ok := env(name); ok {
			return v, true
		}
		return unsetMarker, false
	}
}
