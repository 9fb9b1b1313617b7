package proto

import (
	"fmt"
	"math"
	"strconv"
)

type argKind uint8

const (
	argNone argKind = iota
	argInt
	argFloat
	argWord
	argKV
)

// Arg is one argument of a command, or one key=value of a device line. It is
// a small value type (no interface, no allocation): build it with Int, Float,
// Word or KV.
type Arg struct {
	kind  argKind
	vkind argKind // KV: the kind of the value
	dec   uint8   // Float: digits after the point
	bad   bool    // Float: NaN, ±Inf or too large; KV of a KV
	n     int64   // Int: the value; Float: the value × 10^dec, rounded
	s     string  // Word: the word; KV with a Word value: the value
	key   string  // KV: the key
}

// Int is an integer argument.
func Int(v int) Arg { return Arg{kind: argInt, n: int64(v)} }

// Float is a decimal argument with a fixed number of digits after the point,
// rounded half away from zero. Commands allow 0–4 decimals (§4); device lines
// allow up to 9. A value that rounds to zero is written without a sign.
func Float(v float64, decimals int) Arg {
	a := Arg{kind: argFloat}
	if decimals < 0 || decimals >= len(pow10) || math.IsNaN(v) || math.IsInf(v, 0) {
		a.bad = true
		return a
	}
	a.dec = uint8(decimals)
	x := math.Round(v * pow10[decimals])
	if math.Abs(x) > 1e15 {
		a.bad = true
		return a
	}
	a.n = int64(x)
	return a
}

// Word is a bare word: printable ASCII other than space, '*' and the
// reserved bytes.
func Word(s string) Arg { return Arg{kind: argWord, s: s} }

// KV is key=value; the key is a lower-case letter followed by lower-case
// letters, digits or '_'. The value is an Int, Float or Word (Word("") gives
// an empty value).
func KV(key string, v Arg) Arg {
	return Arg{kind: argKV, vkind: v.kind, dec: v.dec, bad: v.bad || v.kind == argKV, n: v.n, s: v.s, key: key}
}

// String renders the argument as it appears on the wire ("?" when invalid).
func (a Arg) String() string {
	b, err := appendArg(nil, a, 9)
	if err != nil {
		return "?"
	}
	return string(b)
}

// appendArg appends a's wire form. maxDec limits Float decimals.
func appendArg(dst []byte, a Arg, maxDec uint8) ([]byte, error) {
	if a.kind == argKV {
		if a.bad && a.vkind == argKV {
			return dst, fmt.Errorf("%w: nested key=value for %q", ErrBadArg, a.key)
		}
		if !validKey(a.key) {
			return dst, fmt.Errorf("%w: key %q", ErrBadArg, a.key)
		}
		dst = append(dst, a.key...)
		dst = append(dst, '=')
		if a.vkind == argWord && a.s == "" {
			return dst, nil // an empty value is allowed, an empty word is not
		}
		a.kind = a.vkind
	}
	switch a.kind {
	case argInt:
		return strconv.AppendInt(dst, a.n, 10), nil
	case argFloat:
		if a.bad || a.dec > maxDec {
			return dst, fmt.Errorf("%w: number not representable with at most %d decimals", ErrBadArg, maxDec)
		}
		return appendFixed(dst, a.n, a.dec), nil
	case argWord:
		if len(a.s) == 0 {
			return dst, fmt.Errorf("%w: empty word", ErrBadArg)
		}
		for i := 0; i < len(a.s); i++ {
			if !wordByte(a.s[i]) {
				return dst, fmt.Errorf("%w: byte 0x%02x in %q", ErrBadArg, a.s[i], a.s)
			}
		}
		return append(dst, a.s...), nil
	}
	return dst, fmt.Errorf("%w: zero Arg", ErrBadArg)
}

// appendFixed writes n / 10^dec with exactly dec decimals.
func appendFixed(dst []byte, n int64, dec uint8) []byte {
	if n < 0 {
		dst = append(dst, '-')
		n = -n
	}
	var buf [24]byte
	i := len(buf)
	for d := uint8(0); d < dec; d++ {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
	}
	if dec > 0 {
		i--
		buf[i] = '.'
	}
	for {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(dst, buf[i:]...)
}

// wordByte: a byte of an argument or value (no space, no '*').
func wordByte(c byte) bool { return lineByte(c) && c != ' ' && c != '*' }

func validKey(k string) bool {
	if len(k) == 0 || k[0] < 'a' || k[0] > 'z' {
		return false
	}
	for i := 1; i < len(k); i++ {
		if c := k[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func validKeyBytes(k []byte) bool {
	if len(k) == 0 || k[0] < 'a' || k[0] > 'z' {
		return false
	}
	for _, c := range k[1:] {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
