package proto

import (
	"errors"
	"strconv"
)

// Line limits and reserved bytes (firmware-protocol.md §2, §3).
const (
	MaxCommandLine = 64  // host → device, including the '\n'
	MaxDeviceLine  = 128 // device → host, including the '\n'

	ByteEstop     = '!'  // latch the e-stop the moment it is read
	ByteResync    = 0x18 // drop the partial line and the reply cache
	ByteTelemetry = '?'  // emit one TLM line now
)

// The protocol version this package speaks (HELLO proto=<major>.<minor>).
const (
	ProtoMajor = 1
	ProtoMinor = 0
)

// Errors of the line syntax. Parsers return them (possibly wrapped with
// detail); test with errors.Is.
var (
	ErrEmpty          = errors.New("empty line")
	ErrTooLong        = errors.New("line too long")
	ErrForbiddenByte  = errors.New("forbidden byte in line")
	ErrChecksum       = errors.New("checksum mismatch")
	ErrNoChecksum     = errors.New("checksum required")
	ErrSyntax         = errors.New("malformed line")
	ErrUnknownKind    = errors.New("unknown line kind")
	ErrBadArg         = errors.New("bad argument")
	ErrBadSeq         = errors.New("seq out of range 1-65535")
	ErrBadVerb        = errors.New("verb is not upper-case letters")
	ErrIncompatible   = errors.New("incompatible protocol version")
	ErrNotHello       = errors.New("not a HELLO line")
	errMalformedCksum = errors.New("malformed checksum")
)

// Checksum is the XOR of every byte of b; a line's checksum covers the bytes
// before its '*'.
func Checksum(b []byte) byte {
	var c byte
	for _, x := range b {
		c ^= x
	}
	return c
}

const hexDigits = "0123456789ABCDEF"

// AppendChecksum appends "*HH\n" to dst, where HH is the checksum of
// dst[start:], the line being finished.
func AppendChecksum(dst []byte, start int) []byte {
	c := Checksum(dst[start:])
	return append(dst, '*', hexDigits[c>>4], hexDigits[c&0xF], '\n')
}

// lineByte reports whether c may appear inside a line (either direction):
// printable 7-bit ASCII other than the reserved bytes. '\r' is handled
// separately (ignored), '\n' ends the line.
func lineByte(c byte) bool {
	return c >= 0x20 && c < 0x7F && c != ByteEstop && c != ByteTelemetry
}

// trimLine strips one trailing '\n' and removes every '\r' in place (the
// spec ignores '\r' anywhere, and so does the checksum).
func trimLine(line []byte) []byte {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	j := -1
	for i, c := range line {
		if c == '\r' {
			j = i
			break
		}
	}
	if j < 0 {
		return line
	}
	out := line[:j]
	for _, c := range line[j+1:] {
		if c != '\r' {
			out = append(out, c)
		}
	}
	return out
}

// splitChecksum splits "body*HH" at the first '*'. has reports a '*'; ok
// reports that exactly two upper-case hex digits follow it and end the line.
func splitChecksum(line []byte) (body []byte, sum byte, has, ok bool) {
	i := indexByte(line, '*')
	if i < 0 {
		return line, 0, false, false
	}
	h := line[i+1:]
	if len(h) != 2 {
		return line[:i], 0, true, false
	}
	hi, ok1 := unhex(h[0])
	lo, ok2 := unhex(h[1])
	return line[:i], hi<<4 | lo, true, ok1 && ok2
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// parseUint parses 1–maxDigits decimal digits (leading zeros allowed).
func parseUint(b []byte, maxDigits int) (uint64, bool) {
	if len(b) == 0 || len(b) > maxDigits {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// ParseSeq parses a command sequence number, decimal 1–65535.
func ParseSeq(b []byte) (uint16, bool) {
	v, ok := parseUint(b, 5)
	if !ok || v == 0 || v > 65535 {
		return 0, false
	}
	return uint16(v), true
}

// ParseNumber parses a numeric argument as the spec defines it: an optional
// '-', digits, and optionally '.' and 1–4 more digits; no exponent.
func ParseNumber(b []byte) (float64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	ip, fp := b, []byte(nil)
	for i, c := range b {
		if c == '.' {
			ip, fp = b[:i], b[i+1:]
			if len(fp) == 0 || len(fp) > 4 {
				return 0, false
			}
			break
		}
	}
	iv, ok := parseUint(ip, 15)
	if !ok {
		return 0, false
	}
	v := float64(iv)
	if len(fp) > 0 {
		fv, ok := parseUint(fp, 4)
		if !ok {
			return 0, false
		}
		v += float64(fv) / pow10[len(fp)]
	}
	if neg {
		v = -v
	}
	return v, true
}

var pow10 = [...]float64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

// NextSeq returns the seq after s: increasing by one, wrapping 65535 → 1.
func NextSeq(s uint16) uint16 {
	if s == 65535 {
		return 1
	}
	return s + 1
}

// SeqNewer reports whether a is newer than b as serial numbers (RFC 1982 over
// the seq space 1–65535, §7.3): (a − b) mod 65535 is in 1…32767. Equal seqs
// are not newer.
func SeqNewer(a, b uint16) bool {
	d := (int(a) - int(b)) % 65535
	if d < 0 {
		d += 65535
	}
	return d >= 1 && d <= 32767
}

// ErrorCode is the numeric code of an ERR line (§9). Codes are stable; new
// ones are only ever added.
type ErrorCode int

const (
	CodeParse    ErrorCode = 1 // not "<seq> VERB …", or a forbidden byte
	CodeChecksum ErrorCode = 2 // wrong *HH, or missing in strict mode
	CodeUnknown  ErrorCode = 3 // unknown verb
	CodeRange    ErrorCode = 4 // bad or out-of-range argument, unknown key or output
	CodeEstop    ErrorCode = 5 // refused while e-stopped
	CodeBusy     ErrorCode = 6 // temporarily unable
	CodeTooLong  ErrorCode = 7 // line over 64 bytes
	CodeStale    ErrorCode = 8 // setpoint seq not newer than the newest applied
	CodeInternal ErrorCode = 9 // the device failed
)

var codeText = [...]string{
	CodeParse: "parse", CodeChecksum: "checksum", CodeUnknown: "unknown", CodeRange: "range",
	CodeEstop: "estop", CodeBusy: "busy", CodeTooLong: "toolong", CodeStale: "stale", CodeInternal: "internal",
}

// String returns the code's canonical text ("parse", "checksum", …).
func (c ErrorCode) String() string {
	if c >= 1 && int(c) < len(codeText) {
		return codeText[c]
	}
	return "code" + strconv.Itoa(int(c))
}

// RetryClass tells the host what to do after an ERR.
type RetryClass int

const (
	RetryNever  RetryClass = iota // fix the sender, or the feature is absent
	RetryResend                   // resend the same line now (checksum)
	RetryLater                    // resend after the condition clears (CLEAR, busy, internal)
)

func (r RetryClass) String() string {
	switch r {
	case RetryNever:
		return "never"
	case RetryResend:
		return "resend"
	case RetryLater:
		return "later"
	}
	return "retry" + strconv.Itoa(int(r))
}

// Retry returns the retry class of the code per §9. Codes this package does
// not know are never retried.
func (c ErrorCode) Retry() RetryClass {
	switch c {
	case CodeChecksum:
		return RetryResend
	case CodeEstop, CodeBusy, CodeInternal:
		return RetryLater
	}
	return RetryNever
}
