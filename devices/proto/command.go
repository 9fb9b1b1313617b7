package proto

import (
	"fmt"
	"strconv"
)

// AppendCommand appends the command line "<seq> VERB args…*HH\n" to dst.
// It fails, leaving dst as it was, when seq is 0, the verb is not upper-case
// letters, an argument is invalid (a forbidden byte, a number with more than
// 4 decimals, NaN) or the line would exceed MaxCommandLine bytes. It does not
// allocate when dst has room.
func AppendCommand(dst []byte, seq uint16, verb string, args ...Arg) ([]byte, error) {
	start := len(dst)
	if seq == 0 {
		return dst, ErrBadSeq
	}
	if !validVerb(verb) {
		return dst, fmt.Errorf("%w: %q", ErrBadVerb, verb)
	}
	dst = strconv.AppendUint(dst, uint64(seq), 10)
	dst = append(dst, ' ')
	dst = append(dst, verb...)
	for _, a := range args {
		dst = append(dst, ' ')
		var err error
		if dst, err = appendArg(dst, a, 4); err != nil {
			return dst[:start], fmt.Errorf("%s: %w", verb, err)
		}
	}
	dst = AppendChecksum(dst, start)
	if len(dst)-start > MaxCommandLine {
		n := len(dst) - start
		return dst[:start], fmt.Errorf("%s: %w: %d bytes, limit %d", verb, ErrTooLong, n, MaxCommandLine)
	}
	return dst, nil
}

func validVerb(v string) bool {
	if len(v) == 0 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 'A' || v[i] > 'Z' {
			return false
		}
	}
	return true
}

// Command is a parsed host → device line. Verb and Args alias the parsed
// line; Args keeps its capacity across calls.
type Command struct {
	Seq         uint16
	Verb        []byte
	Args        [][]byte
	HadChecksum bool
}

// Append re-encodes c as a command line with a checksum.
func (c *Command) Append(dst []byte) []byte {
	start := len(dst)
	dst = strconv.AppendUint(dst, uint64(c.Seq), 10)
	dst = append(dst, ' ')
	dst = append(dst, c.Verb...)
	for _, a := range c.Args {
		dst = append(dst, ' ')
		dst = append(dst, a...)
	}
	return AppendChecksum(dst, start)
}

// ProtoError is a command the device refuses before looking at its verb: the
// ERR reply to send. HasSeq is false when the seq could not be trusted
// (the reply then carries "-").
type ProtoError struct {
	Code   ErrorCode
	Seq    uint16
	HasSeq bool
	Text   string
}

func (e *ProtoError) Error() string {
	seq := "-"
	if e.HasSeq {
		seq = strconv.Itoa(int(e.Seq))
	}
	return fmt.Sprintf("command %s: error %d %s", seq, int(e.Code), e.Text)
}

// Reply appends the ERR line that answers the refused command.
func (e *ProtoError) Reply(dst []byte) []byte {
	return AppendErr(dst, e.Seq, e.HasSeq, e.Code, e.Text)
}

// ParseCommand parses one command line (with or without its '\n') into c,
// as a device does. It removes '\r' bytes from line in place; c's slices
// alias line. The error, always a *ProtoError, is the reply to send:
//
//	CodeTooLong  the line is over MaxCommandLine bytes with its '\n'
//	CodeParse    a forbidden or reserved byte, an empty line, no valid seq
//	             (reply "-"), no upper-case verb, an empty argument
//	CodeChecksum a wrong or malformed *HH (reply "-"), or none in strict mode
//
// Verbs and argument values are the caller's to check (CodeUnknown,
// CodeRange); ParseNumber and SplitKV help.
func ParseCommand(line []byte, c *Command, strict bool) error {
	c.Seq, c.Verb, c.Args, c.HadChecksum = 0, nil, c.Args[:0], false
	line = trimLine(line)
	if len(line)+1 > MaxCommandLine {
		return &ProtoError{Code: CodeTooLong, Text: "toolong"}
	}
	for _, b := range line {
		if !lineByte(b) {
			return &ProtoError{Code: CodeParse, Text: "parse"}
		}
	}
	body, sum, has, ok := splitChecksum(line)
	if has {
		if !ok || Checksum(body) != sum {
			return &ProtoError{Code: CodeChecksum, Text: "checksum"}
		}
		c.HadChecksum = true
	}
	sp := indexByte(body, ' ')
	if sp < 0 {
		sp = len(body)
	}
	seq, okSeq := ParseSeq(body[:sp])
	if !okSeq {
		return &ProtoError{Code: CodeParse, Text: "parse"}
	}
	c.Seq = seq
	if !has && strict {
		return &ProtoError{Code: CodeChecksum, Seq: seq, HasSeq: true, Text: "checksum required"}
	}
	if sp == len(body) {
		return &ProtoError{Code: CodeParse, Seq: seq, HasSeq: true, Text: "parse"}
	}
	rest := body[sp+1:]
	for i := 0; ; i++ {
		sp := indexByte(rest, ' ')
		tok := rest
		if sp >= 0 {
			tok = rest[:sp]
		}
		if len(tok) == 0 || indexByte(tok, '*') >= 0 {
			return &ProtoError{Code: CodeParse, Seq: seq, HasSeq: true, Text: "parse"}
		}
		if i == 0 {
			for _, b := range tok {
				if b < 'A' || b > 'Z' {
					return &ProtoError{Code: CodeParse, Seq: seq, HasSeq: true, Text: "parse"}
				}
			}
			c.Verb = tok
		} else {
			c.Args = append(c.Args, tok)
		}
		if sp < 0 {
			return nil
		}
		rest = rest[sp+1:]
	}
}

// SplitKV splits an argument "key=value" at its first '='; ok is false when
// there is no '=' or the key is not a valid key.
func SplitKV(arg []byte) (key, value []byte, ok bool) {
	i := indexByte(arg, '=')
	if i < 0 || !validKeyBytes(arg[:i]) {
		return nil, nil, false
	}
	return arg[:i], arg[i+1:], true
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}
