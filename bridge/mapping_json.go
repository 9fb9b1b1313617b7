package bridge

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// The data of a json mapping is a flat JSON object. This scanner reads
// exactly that, without allocating: keys and values are substrings of the
// data, and escaped strings are decoded only when used. It is stricter than
// encoding/json where that matters here (anything after the closing brace
// is an error; the caller refuses duplicate keys), and it reports nested
// objects and arrays instead of parsing them.

type jsonKind uint8

const (
	jsonString jsonKind = iota + 1
	jsonNumber
	jsonTrue
	jsonFalse
	jsonNull
	jsonObject
	jsonArray
)

func (k jsonKind) String() string {
	switch k {
	case jsonString:
		return "a string"
	case jsonNumber:
		return "a number"
	case jsonTrue, jsonFalse:
		return "a boolean"
	case jsonNull:
		return "null"
	case jsonObject:
		return "an object"
	case jsonArray:
		return "an array"
	}
	return "nothing"
}

// jsonValue is one token. For strings raw is the text between the quotes,
// still escaped when esc is true. token is the whole token as written
// (quotes included), for echoing ids.
type jsonValue struct {
	kind  jsonKind
	raw   string
	token string
	esc   bool
}

type scanState uint8

const (
	stateKeyOrEnd scanState = iota // after '{'
	stateKey                       // after ','
	stateClosed                    // after '}'
)

type jsonScanner struct {
	s     string
	i     int
	state scanState
}

// jsonErr is a syntax error at a byte offset.
type jsonErr struct {
	msg string
	off int
}

func (p *jsonScanner) fail(msg string) *jsonErr { return &jsonErr{msg, p.i} }

func (p *jsonScanner) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// begin reads up to the opening brace. notObject reports data that is JSON
// of another kind (or not JSON at all), for a clearer message.
func (p *jsonScanner) begin() (notObject bool, err *jsonErr) {
	p.ws()
	if p.i >= len(p.s) {
		return false, p.fail("no data")
	}
	if p.s[p.i] != '{' {
		return true, p.fail("not an object")
	}
	p.i++
	p.state = stateKeyOrEnd
	return false, nil
}

// next returns the next member, or done after the closing brace. When val
// is an object or an array the scanner stops there: the caller rejects it.
func (p *jsonScanner) next() (key, val jsonValue, done bool, err *jsonErr) {
	p.ws()
	if p.state == stateClosed {
		if p.i < len(p.s) {
			return key, val, false, p.fail("text after the object")
		}
		return key, val, true, nil
	}
	if p.i >= len(p.s) {
		return key, val, false, p.fail("unexpected end of data")
	}
	if p.s[p.i] == '}' {
		if p.state == stateKey {
			return key, val, false, p.fail("trailing comma")
		}
		p.i++
		p.state = stateClosed
		return p.next()
	}
	if p.s[p.i] != '"' {
		return key, val, false, p.fail("expected a key in double quotes")
	}
	if key, err = p.str(); err != nil {
		return
	}
	p.ws()
	if p.i >= len(p.s) || p.s[p.i] != ':' {
		return key, val, false, p.fail("expected ':'")
	}
	p.i++
	p.ws()
	if val, err = p.value(); err != nil || val.kind == jsonObject || val.kind == jsonArray {
		return
	}
	p.ws()
	if p.i >= len(p.s) {
		return key, val, false, p.fail("unexpected end of data")
	}
	switch p.s[p.i] {
	case ',':
		p.state = stateKey
	case '}':
		p.state = stateClosed
	default:
		return key, val, false, p.fail("expected ',' or '}'")
	}
	p.i++
	return key, val, false, nil
}

func (p *jsonScanner) value() (jsonValue, *jsonErr) {
	if p.i >= len(p.s) {
		return jsonValue{}, p.fail("unexpected end of data")
	}
	switch c := p.s[p.i]; {
	case c == '"':
		return p.str()
	case c == '-' || (c >= '0' && c <= '9'):
		start := p.i
		n := numberLen(p.s[p.i:])
		if n == 0 {
			return jsonValue{}, p.fail("malformed number")
		}
		p.i += n
		t := p.s[start:p.i]
		return jsonValue{kind: jsonNumber, raw: t, token: t}, nil
	case c == '{':
		return jsonValue{kind: jsonObject}, nil
	case c == '[':
		return jsonValue{kind: jsonArray}, nil
	}
	for _, lit := range [...]struct {
		s string
		k jsonKind
	}{{"true", jsonTrue}, {"false", jsonFalse}, {"null", jsonNull}} {
		if len(p.s)-p.i >= len(lit.s) && p.s[p.i:p.i+len(lit.s)] == lit.s {
			t := p.s[p.i : p.i+len(lit.s)]
			p.i += len(lit.s)
			return jsonValue{kind: lit.k, raw: t, token: t}, nil
		}
	}
	return jsonValue{}, p.fail("invalid value")
}

// str reads a string token at p.i (the opening quote), checking escapes
// and refusing raw control characters, as JSON requires.
func (p *jsonScanner) str() (jsonValue, *jsonErr) {
	start := p.i
	p.i++
	esc := false
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return jsonValue{kind: jsonString, raw: p.s[start+1 : p.i-1], token: p.s[start:p.i], esc: esc}, nil
		case c == '\\':
			esc = true
			if p.i+1 >= len(p.s) {
				return jsonValue{}, p.fail("unterminated string")
			}
			switch p.s[p.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i += 2
			case 'u':
				if p.i+6 > len(p.s) || !isHex4(p.s[p.i+2:p.i+6]) {
					return jsonValue{}, p.fail(`malformed \u escape`)
				}
				p.i += 6
			default:
				return jsonValue{}, p.fail("malformed escape")
			}
		case c < 0x20:
			return jsonValue{}, p.fail("control character in a string")
		default:
			p.i++
		}
	}
	return jsonValue{}, &jsonErr{"unterminated string", start}
}

func isHex4(s string) bool {
	for i := 0; i < 4; i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// numberLen returns the length of the JSON number at the start of s, or 0.
func numberLen(s string) int {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return 0
	}
	if i < len(s) && s[i] == '.' {
		i++
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			return 0
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			return 0
		}
	}
	return i
}

// isJSONNumber reports whether s is exactly one JSON number.
func isJSONNumber(s string) bool { return s != "" && numberLen(s) == len(s) }

// text returns the decoded string value (allocating only when escaped).
func (v jsonValue) text() string {
	if !v.esc {
		return v.raw
	}
	return unescapeJSON(v.raw)
}

// unescapeJSON decodes the escapes of a string the scanner accepted.
// Unpaired surrogates become U+FFFD, as in encoding/json.
func unescapeJSON(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			b = append(b, c)
			i++
			continue
		}
		switch s[i+1] {
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r := rune(hex4(s[i+2 : i+6]))
			i += 6
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					r2 = rune(hex4(s[i+2 : i+6]))
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					r = d
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			b = utf8.AppendRune(b, r)
			continue
		default: // " \ /
			b = append(b, s[i+1])
		}
		i += 2
	}
	return string(b)
}

func hex4(s string) uint16 {
	n, _ := strconv.ParseUint(s, 16, 16)
	return uint16(n)
}

// scanID finds a top-level "id" in data that the strict reading refused
// (or did not reach), so that even a rejection can be acked with the
// operator's id. It tolerates unknown keys and nested values.
func scanID(data string) string {
	p := jsonScanner{s: data}
	if _, err := p.begin(); err != nil {
		return ""
	}
	for {
		key, val, done, err := p.next()
		if err != nil || done {
			return ""
		}
		if val.kind == jsonObject || val.kind == jsonArray {
			if !p.skipNested() {
				return ""
			}
			p.ws()
			if p.i < len(p.s) && (p.s[p.i] == ',' || p.s[p.i] == '}') {
				if p.s[p.i] == ',' {
					p.state = stateKey
				} else {
					p.state = stateClosed
				}
				p.i++
			}
		}
		if !key.esc && key.raw == "id" && validID(val) {
			return val.token
		}
	}
}

// skipNested skips the object or array at p.i, without recursion.
func (p *jsonScanner) skipNested() bool {
	depth := 0
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case '{', '[':
			depth++
			if depth > 64 {
				return false
			}
		case '}', ']':
			depth--
			if depth == 0 {
				p.i++
				return true
			}
		case '"':
			if _, err := p.str(); err != nil {
				return false
			}
			continue
		}
		p.i++
	}
	return false
}

// maxIDLen bounds an echoed id (its JSON text).
const maxIDLen = 66

func validID(v jsonValue) bool {
	return (v.kind == jsonNumber || v.kind == jsonString) && len(v.token) <= maxIDLen
}
