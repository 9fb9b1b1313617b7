package proto

import (
	"fmt"
	"strconv"
)

// Kind is what a device line is, by its first word.
type Kind uint8

const (
	KindOK      Kind = iota + 1 // OK <seq>[ k=v…]
	KindErr                     // ERR <seq|-> <code> <text>
	KindHello                   // HELLO k=v…
	KindTLM                     // TLM <t_ms> k=v…
	KindEvt                     // EVT <NAME>[ k=v…]
	KindComment                 // # <text>
)

func (k Kind) String() string {
	switch k {
	case KindOK:
		return "OK"
	case KindErr:
		return "ERR"
	case KindHello:
		return "HELLO"
	case KindTLM:
		return "TLM"
	case KindEvt:
		return "EVT"
	case KindComment:
		return "#"
	}
	return "kind" + strconv.Itoa(int(k))
}

// Field is one key=value of a device line; both alias the parsed line.
type Field struct {
	Key, Value []byte
}

// DeviceLine is a parsed device → host line. Its slices alias the parsed
// line; Fields keeps its capacity across calls.
type DeviceLine struct {
	Kind        Kind
	Seq         uint16 // OK, ERR
	NoSeq       bool   // ERR with "-"
	Code        int    // ERR
	Text        []byte // ERR: the text after the code; #: the comment
	Name        []byte // EVT
	TimeMs      uint32 // TLM
	Fields      []Field
	HadChecksum bool
}

// Field returns the value of key and whether it is present.
func (dl *DeviceLine) Field(key string) ([]byte, bool) {
	for _, f := range dl.Fields {
		if string(f.Key) == key {
			return f.Value, true
		}
	}
	return nil, false
}

// ErrorCode is dl.Code as an ErrorCode (ERR lines).
func (dl *DeviceLine) ErrorCode() ErrorCode { return ErrorCode(dl.Code) }

// ParseDeviceLine parses one device line (with or without its '\n') into dl,
// as the host does. It removes '\r' bytes from line in place; dl's slices
// alias line. With strict, a line without *HH is refused (ErrNoChecksum).
// Errors wrap ErrEmpty, ErrTooLong, ErrForbiddenByte, ErrChecksum,
// ErrNoChecksum, ErrSyntax or ErrUnknownKind; test with errors.Is.
func ParseDeviceLine(line []byte, dl *DeviceLine, strict bool) error {
	*dl = DeviceLine{Fields: dl.Fields[:0]}
	line = trimLine(line)
	if len(line) == 0 {
		return ErrEmpty
	}
	if len(line)+1 > MaxDeviceLine {
		return ErrTooLong
	}
	for _, b := range line {
		if !lineByte(b) {
			return fmt.Errorf("%w: 0x%02x", ErrForbiddenByte, b)
		}
	}
	body, sum, has, ok := splitChecksum(line)
	if has {
		if !ok {
			return fmt.Errorf("%w: %q", errMalformedCksumWrap, line[len(body):])
		}
		if got := Checksum(body); got != sum {
			return fmt.Errorf("%w: line says %02X, bytes give %02X", ErrChecksum, sum, got)
		}
		dl.HadChecksum = true
	} else if strict {
		return ErrNoChecksum
	}

	word, rest, more := cut(body)
	switch string(word) {
	case "OK":
		dl.Kind = KindOK
		tok, r, m := cut(rest)
		if !more || !parseSeqInto(tok, dl) || dl.NoSeq {
			return syntax("OK needs a seq")
		}
		if m {
			return parseFields(r, dl)
		}
		return nil
	case "ERR":
		dl.Kind = KindErr
		tok, r, m := cut(rest)
		if !more || !m || !parseSeqInto(tok, dl) {
			return syntax("ERR needs a seq and a code")
		}
		tok, r, m = cut(r)
		code, ok := parseUint(tok, 3)
		if !ok || code == 0 {
			return syntax("ERR code")
		}
		dl.Code = int(code)
		if m {
			if len(r) == 0 {
				return syntax("ERR trailing space")
			}
			dl.Text = r
		}
		return nil
	case "HELLO":
		dl.Kind = KindHello
		if !more {
			return nil
		}
		return parseFields(rest, dl)
	case "TLM":
		dl.Kind = KindTLM
		tok, r, m := cut(rest)
		t, ok := parseUint(tok, 10)
		if !more || !ok || t > 1<<32-1 {
			return syntax("TLM needs t_ms")
		}
		dl.TimeMs = uint32(t)
		if m {
			return parseFields(r, dl)
		}
		return nil
	case "EVT":
		dl.Kind = KindEvt
		tok, r, m := cut(rest)
		if !more || !validName(tok) {
			return syntax("EVT needs an upper-case name")
		}
		dl.Name = tok
		if m {
			return parseFields(r, dl)
		}
		return nil
	}
	if len(body) > 0 && body[0] == '#' {
		dl.Kind = KindComment
		t := body[1:]
		if len(t) > 0 && t[0] == ' ' {
			t = t[1:]
		}
		dl.Text = t
		return nil
	}
	return fmt.Errorf("%w: %.16q", ErrUnknownKind, word)
}

var errMalformedCksumWrap = fmt.Errorf("%w: %w", ErrChecksum, errMalformedCksum)

func syntax(why string) error { return fmt.Errorf("%w: %s", ErrSyntax, why) }

// cut splits b at its first space. more reports that there was one.
func cut(b []byte) (tok, rest []byte, more bool) {
	if i := indexByte(b, ' '); i >= 0 {
		return b[:i], b[i+1:], true
	}
	return b, nil, false
}

func parseSeqInto(tok []byte, dl *DeviceLine) bool {
	if len(tok) == 1 && tok[0] == '-' {
		dl.NoSeq = true
		return true
	}
	s, ok := ParseSeq(tok)
	dl.Seq = s
	return ok
}

func parseFields(b []byte, dl *DeviceLine) error {
	for {
		tok, rest, more := cut(b)
		k, v, ok := SplitKV(tok)
		if !ok {
			return fmt.Errorf("%w: %q is not key=value", ErrSyntax, tok)
		}
		dl.Fields = append(dl.Fields, Field{Key: k, Value: v})
		if !more {
			return nil
		}
		b = rest
	}
}

func validName(b []byte) bool {
	if len(b) == 0 || b[0] < 'A' || b[0] > 'Z' {
		return false
	}
	for _, c := range b[1:] {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Append re-encodes dl as a device line with a checksum.
func (dl *DeviceLine) Append(dst []byte) []byte {
	start := len(dst)
	switch dl.Kind {
	case KindOK:
		dst = append(dst, "OK "...)
		dst = strconv.AppendUint(dst, uint64(dl.Seq), 10)
	case KindErr:
		dst = append(dst, "ERR "...)
		if dl.NoSeq {
			dst = append(dst, '-')
		} else {
			dst = strconv.AppendUint(dst, uint64(dl.Seq), 10)
		}
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, int64(dl.Code), 10)
		if len(dl.Text) > 0 {
			dst = append(dst, ' ')
			dst = append(dst, dl.Text...)
		}
	case KindHello:
		dst = append(dst, "HELLO"...)
	case KindTLM:
		dst = append(dst, "TLM "...)
		dst = strconv.AppendUint(dst, uint64(dl.TimeMs), 10)
	case KindEvt:
		dst = append(dst, "EVT "...)
		dst = append(dst, dl.Name...)
	case KindComment:
		dst = append(dst, "# "...)
		dst = append(dst, dl.Text...)
	}
	for _, f := range dl.Fields {
		dst = append(dst, ' ')
		dst = append(dst, f.Key...)
		dst = append(dst, '=')
		dst = append(dst, f.Value...)
	}
	return AppendChecksum(dst, start)
}

// Device-side encoders. They append a whole line with "*HH\n". An argument
// that cannot be encoded (see Arg) is written as "_"; callers keep lines
// within MaxDeviceLine.

// AppendOK appends "OK <seq>[ k=v…]*HH\n".
func AppendOK(dst []byte, seq uint16, kv ...Arg) []byte {
	start := len(dst)
	dst = append(dst, "OK "...)
	dst = strconv.AppendUint(dst, uint64(seq), 10)
	dst = appendDeviceArgs(dst, kv)
	return AppendChecksum(dst, start)
}

// AppendErr appends "ERR <seq|-> <code> <text>*HH\n". Bytes of text that may
// not appear in a line become '_'.
func AppendErr(dst []byte, seq uint16, hasSeq bool, code ErrorCode, text string) []byte {
	start := len(dst)
	dst = append(dst, "ERR "...)
	if hasSeq {
		dst = strconv.AppendUint(dst, uint64(seq), 10)
	} else {
		dst = append(dst, '-')
	}
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(code), 10)
	if text == "" {
		text = code.String()
	}
	dst = append(dst, ' ')
	for i := 0; i < len(text); i++ {
		c := text[i]
		if !lineByte(c) || c == '*' {
			c = '_'
		}
		dst = append(dst, c)
	}
	return AppendChecksum(dst, start)
}

// AppendTLM appends "TLM <t_ms> k=v…*HH\n".
func AppendTLM(dst []byte, tMs uint32, kv ...Arg) []byte {
	start := len(dst)
	dst = append(dst, "TLM "...)
	dst = strconv.AppendUint(dst, uint64(tMs), 10)
	dst = appendDeviceArgs(dst, kv)
	return AppendChecksum(dst, start)
}

// AppendEvt appends "EVT <name>[ k=v…]*HH\n".
func AppendEvt(dst []byte, name string, kv ...Arg) []byte {
	start := len(dst)
	dst = append(dst, "EVT "...)
	dst = append(dst, name...)
	dst = appendDeviceArgs(dst, kv)
	return AppendChecksum(dst, start)
}

// AppendComment appends "# <text>*HH\n"; forbidden bytes of text become '_'.
func AppendComment(dst []byte, text string) []byte {
	start := len(dst)
	dst = append(dst, "# "...)
	for i := 0; i < len(text); i++ {
		c := text[i]
		if !lineByte(c) || c == '*' {
			c = '_'
		}
		dst = append(dst, c)
	}
	return AppendChecksum(dst, start)
}

func appendDeviceArgs(dst []byte, kv []Arg) []byte {
	for _, a := range kv {
		dst = append(dst, ' ')
		var err error
		if dst, err = appendArg(dst, a, 9); err != nil {
			dst = append(dst, '_')
		}
	}
	return dst
}
