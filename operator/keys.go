package operator

import (
	"fmt"
	"unicode/utf8"
)

// Key is one key press read from a terminal: a printable rune, or one of
// the named keys below (negative values).
type Key rune

// Named keys. Shift+arrow keys are their own keys, because a terminal
// reports shift only as part of the sequence.
const (
	KeyNone Key = -iota
	KeyUp
	KeyDown
	KeyLeft
	KeyRight
	KeyShiftUp
	KeyShiftDown
	KeyShiftLeft
	KeyShiftRight
	KeyEsc
	KeyCtrlC
	KeyCtrlD
	KeyEnter
	KeyOther // a control byte or escape sequence with no meaning here
)

var keyNames = map[Key]string{
	KeyNone: "none", KeyUp: "up", KeyDown: "down", KeyLeft: "left", KeyRight: "right",
	KeyShiftUp: "shift+up", KeyShiftDown: "shift+down", KeyShiftLeft: "shift+left", KeyShiftRight: "shift+right",
	KeyEsc: "esc", KeyCtrlC: "ctrl+c", KeyCtrlD: "ctrl+d", KeyEnter: "enter", KeyOther: "other",
}

func (k Key) String() string {
	if n, ok := keyNames[k]; ok {
		return n
	}
	if k == ' ' {
		return "space"
	}
	if k > 0 {
		return string(rune(k))
	}
	return fmt.Sprintf("Key(%d)", int(k))
}

// A Decoder splits a raw terminal's input into keys. Escape sequences may
// arrive split across reads; the Decoder keeps the unfinished part. An ESC
// that ends a read is the Esc key: terminals write a sequence in one piece,
// so a lone ESC at the end of a read is almost always the key itself (and
// if a sequence was split after all, the Esc key is an e-stop: the safe
// side).
//
// The zero value is ready to use. A Decoder is not safe for concurrent use.
type Decoder struct {
	pending []byte // an unfinished escape sequence or UTF-8 rune
}

// maxSeq bounds an escape sequence; longer ones are dropped as KeyOther.
const maxSeq = 32

// Feed decodes p, one read of the terminal, and appends its keys to dst.
func (d *Decoder) Feed(dst []Key, p []byte) []Key {
	buf := p
	if len(d.pending) > 0 {
		buf = append(d.pending, p...)
		d.pending = nil
	}
	for len(buf) > 0 {
		k, n := decodeOne(buf)
		if n == 0 { // incomplete
			if len(buf) == 1 && buf[0] == 0x1b {
				dst = append(dst, KeyEsc)
				return dst
			}
			if len(buf) > maxSeq {
				dst = append(dst, KeyOther)
				buf = buf[1:]
				continue
			}
			d.pending = append([]byte(nil), buf...)
			return dst
		}
		if k != KeyNone {
			dst = append(dst, k)
		}
		buf = buf[n:]
	}
	return dst
}

// decodeOne decodes the key at the start of b and how many bytes it took;
// n == 0 means b holds only the start of a key.
func decodeOne(b []byte) (k Key, n int) {
	c := b[0]
	switch {
	case c == 0x1b:
		return decodeEscape(b)
	case c == 0x03:
		return KeyCtrlC, 1
	case c == 0x04:
		return KeyCtrlD, 1
	case c == '\r' || c == '\n':
		return KeyEnter, 1
	case c < 0x20 || c == 0x7f:
		return KeyOther, 1
	case c < utf8.RuneSelf:
		return Key(c), 1
	}
	if !utf8.FullRune(b) {
		return KeyNone, 0
	}
	r, size := utf8.DecodeRune(b)
	if r == utf8.RuneError {
		return KeyOther, size
	}
	return Key(r), size
}

// decodeEscape decodes a sequence that starts with ESC: CSI (ESC [ … final)
// and SS3 (ESC O x, arrows in application cursor mode). Arrow keys are
// ESC [ A…D, ESC O A…D, and with a modifier ESC [ 1 ; m A…D (m = 2 is shift).
// ESC followed by anything else is the Esc key, and the byte after it is
// decoded on its own.
func decodeEscape(b []byte) (Key, int) {
	if len(b) < 2 {
		return KeyNone, 0
	}
	switch b[1] {
	case 'O':
		if len(b) < 3 {
			return KeyNone, 0
		}
		return arrow(b[2], false), 3
	case '[':
		// Parameters and intermediates are 0x20–0x3f; the final byte 0x40–0x7e.
		for i := 2; i < len(b); i++ {
			c := b[i]
			if c >= 0x40 && c <= 0x7e {
				params := string(b[2:i])
				switch params {
				case "", "1":
					return arrow(c, false), i + 1
				case "1;2":
					return arrow(c, true), i + 1
				}
				return KeyOther, i + 1
			}
			if c < 0x20 || c > 0x3f {
				return KeyOther, i // a broken sequence: drop what came before c
			}
		}
		return KeyNone, 0
	}
	return KeyEsc, 1
}

func arrow(c byte, shift bool) Key {
	var k Key
	switch c {
	case 'A':
		k = KeyUp
	case 'B':
		k = KeyDown
	case 'C':
		k = KeyRight
	case 'D':
		k = KeyLeft
	default:
		return KeyOther
	}
	if shift {
		k += KeyShiftUp - KeyUp
	}
	return k
}
