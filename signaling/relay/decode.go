package relay

import (
	"math/bits"
	"strconv"
	"unicode/utf8"

	"github.com/teleop/teleop/signaling"
)

// decodeFrame parses a client's frame. The frames clients send all the time
// (a flat object of the string fields op, id, type, data, to, connectionId
// the integer queuedMs and the boolean quiet) take a hand-written path, which encoding/json
// took 9–12 % of the relay's CPU for at 100 B–8 KB of data (docs/benchmarks.md);
// anything else goes to signaling.DecodeFrame. The fast path accepts only
// input for which it builds exactly the Frame that DecodeFrame would
// (FuzzDecodeFast checks), so the two never disagree.
func decodeFrame(b []byte) (*signaling.Frame, error) {
	if f, ok := decodeFast(b); ok {
		return f, nil
	}
	return signaling.DecodeFrame(b)
}

// Fields the fast path knows, as bits of a seen set.
const (
	fOp = 1 << iota
	fID
	fType
	fData
	fTo
	fConnectionID
	fQueuedMs
	fQuiet
)

// decodeFast decodes b if it is a JSON object whose keys are distinct,
// spelled exactly as Frame's tags, unescaped, and among the fields above,
// with string values (escapes allowed except surrogates), an integer
// queuedMs and a literal true or false quiet, and whose op is not empty. ok is false for anything else, valid
// or not: DecodeFrame then decides.
func decodeFast(b []byte) (f *signaling.Frame, ok bool) {
	if len(b) > signaling.MaxFrameBytes {
		return nil, false
	}
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	f = new(signaling.Frame)
	seen := 0
	for {
		i = skipSpace(b, i+1) // past '{' or ','
		if i >= len(b) || b[i] != '"' {
			return nil, false // no empty object, no trailing comma
		}
		// The key: plain ASCII up to the quote.
		start := i + 1
		i = plainPrefix(b, start)
		if i >= len(b) || b[i] != '"' {
			return nil, false
		}
		key := b[start:i]
		i = skipSpace(b, i+1)
		if i >= len(b) || b[i] != ':' {
			return nil, false
		}
		i = skipSpace(b, i+1)
		var bit int
		var dst *string
		switch string(key) { // no allocation: the compiler compares in place
		case "op":
			bit, dst = fOp, &f.Op
		case "id":
			bit, dst = fID, &f.ID
		case "type":
			bit, dst = fType, &f.Type
		case "data":
			bit, dst = fData, &f.Data
		case "to":
			bit, dst = fTo, &f.To
		case "connectionId":
			bit, dst = fConnectionID, &f.ConnectionID
		case "queuedMs":
			bit = fQueuedMs
		case "quiet":
			bit = fQuiet
		default:
			return nil, false // other fields, other spellings (encoding/json matches case-insensitively)
		}
		if seen&bit != 0 {
			return nil, false
		}
		seen |= bit
		if dst != nil {
			if i >= len(b) || b[i] != '"' {
				return nil, false // null, numbers, objects: DecodeFrame's business
			}
			var s string
			if s, i, ok = parseString(b, i+1); !ok {
				return nil, false
			}
			*dst = s
		} else if bit == fQuiet {
			if f.Quiet, i, ok = parseBool(b, i); !ok {
				return nil, false
			}
		} else {
			if f.QueuedMs, i, ok = parseInt(b, i); !ok {
				return nil, false
			}
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return nil, false
		}
		if b[i] == '}' {
			break
		}
		if b[i] != ',' {
			return nil, false
		}
	}
	if skipSpace(b, i+1) != len(b) || f.Op == "" {
		return nil, false
	}
	return f, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// parseString parses a JSON string whose opening quote is at i-1 and
// returns it and the index after its closing quote. It refuses (ok false)
// invalid JSON, invalid UTF-8 (encoding/json would replace it) and \u
// escapes of surrogates.
func parseString(b []byte, i int) (s string, next int, ok bool) {
	start := i
	ascii := true
	for {
		i = plainPrefix(b, i)
		if i >= len(b) {
			return "", 0, false
		}
		switch c := b[i]; {
		case c == '"':
			raw := b[start:i]
			if !ascii && !utf8.Valid(raw) {
				return "", 0, false
			}
			return string(raw), i + 1, true
		case c == '\\':
			return unescape(b, start, i, ascii)
		case c < 0x20:
			return "", 0, false
		default: // a byte of a multi-byte character: checked at the end
			ascii = false
			i++
		}
	}
}

// unescape finishes parseString from the first backslash at i.
func unescape(b []byte, start, i int, ascii bool) (string, int, bool) {
	out := make([]byte, 0, len(b)-start)
	out = append(out, b[start:i]...)
	for {
		j := plainPrefix(b, i)
		out = append(out, b[i:j]...)
		i = j
		if i >= len(b) {
			return "", 0, false
		}
		c := b[i]
		switch {
		case c == '"':
			if !ascii && !utf8.Valid(out) {
				return "", 0, false
			}
			return string(out), i + 1, true
		case c < 0x20:
			return "", 0, false
		case c >= utf8.RuneSelf:
			ascii = false
			out = append(out, c)
			i++
			continue
		}
		// A backslash.
		if i+1 >= len(b) {
			return "", 0, false
		}
		switch e := b[i+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if i+6 > len(b) {
				return "", 0, false
			}
			r := 0
			for _, h := range b[i+2 : i+6] {
				switch {
				case '0' <= h && h <= '9':
					h -= '0'
				case 'a' <= h && h <= 'f':
					h -= 'a' - 10
				case 'A' <= h && h <= 'F':
					h -= 'A' - 10
				default:
					return "", 0, false
				}
				r = r<<4 | int(h)
			}
			if 0xD800 <= r && r < 0xE000 {
				return "", 0, false // surrogates: DecodeFrame pairs or replaces them
			}
			out = utf8.AppendRune(out, rune(r))
			i += 6
			continue
		default:
			return "", 0, false
		}
		i += 2
	}
}

// parseBool parses the literal true or false at b[i:].
func parseBool(b []byte, i int) (v bool, next int, ok bool) {
	switch {
	case len(b)-i >= 4 && string(b[i:i+4]) == "true":
		return true, i + 4, true
	case len(b)-i >= 5 && string(b[i:i+5]) == "false":
		return false, i + 5, true
	}
	return false, i, false
}

// parseInt parses a JSON integer at i that fits an int64: -?(0|[1-9][0-9]*)
// followed by no fraction or exponent.
func parseInt(b []byte, i int) (v int64, next int, ok bool) {
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := i
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	switch {
	case i == digits, b[digits] == '0' && i-digits > 1:
		return 0, 0, false
	case i < len(b) && (b[i] == '.' || b[i] == 'e' || b[i] == 'E'):
		return 0, 0, false // not an int64 to encoding/json either, but its error is DecodeFrame's
	}
	v, err := strconv.ParseInt(string(b[start:i]), 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return v, i, true
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// plainPrefix returns the index of the first byte at or after i that is a
// quote, a backslash, a control character (below 0x20) or not ASCII, or
// len(s): the end of a run that JSON strings carry as is. It looks at
// eight bytes at a time.
func plainPrefix[T string | []byte](s T, i int) int {
	for ; i+8 <= len(s); i += 8 {
		_ = s[i+7]
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		q := w ^ (lsb * '"')
		bs := w ^ (lsb * '\\')
		// A high bit set in a byte where: the byte is below 0x20, is a
		// quote, is a backslash, or is not ASCII. Borrows make false
		// positives only above a true one, so the lowest is exact.
		m := ((w-lsb*0x20)&^w | (q-lsb)&^q | (bs-lsb)&^bs | w) & msb
		if m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			return i
		}
	}
	return i
}
