package proto

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestAppendCommand(t *testing.T) {
	tests := []struct {
		name string
		seq  uint16
		verb string
		args []Arg
		want string
		err  error
	}{
		{"vel", 12, "VEL", []Arg{Float(0.25, 3), Float(-0.1, 3)}, "12 VEL 0.250 -0.100*57\n", nil},
		{"ping", 1, "PING", nil, "1 PING*01\n", nil},
		{"set", 2, "SET", []Arg{KV("strict", Int(1)), KV("wdog_ms", Int(300)), KV("tlm_hz", Int(10))}, "2 SET strict=1 wdog_ms=300 tlm_hz=10*27\n", nil},
		{"out word", 13, "OUT", []Arg{KV("lights", Word("1"))}, "13 OUT lights=1*4D\n", nil},
		{"negative zero", 3, "VEL", []Arg{Float(-0.0001, 3), Float(-0, 0)}, "3 VEL 0.000 0*" + hex2("3 VEL 0.000 0") + "\n", nil},
		{"rounding", 3, "VEL", []Arg{Float(0.12345, 4), Float(-1.5, 0)}, "3 VEL 0.1235 -2*" + hex2("3 VEL 0.1235 -2") + "\n", nil},
		{"max seq", 65535, "HB", nil, "65535 HB*" + hex2("65535 HB") + "\n", nil},
		{"seq zero", 0, "PING", nil, "", ErrBadSeq},
		{"lower verb", 1, "ping", nil, "", ErrBadVerb},
		{"empty verb", 1, "", nil, "", ErrBadVerb},
		{"newline injection", 1, "OUT", []Arg{KV("lights", Word("1\n2 ESTOP"))}, "", ErrBadArg},
		{"estop byte", 1, "OUT", []Arg{Word("a!")}, "", ErrBadArg},
		{"star", 1, "OUT", []Arg{Word("a*")}, "", ErrBadArg},
		{"space", 1, "OUT", []Arg{Word("a b")}, "", ErrBadArg},
		{"empty word", 1, "OUT", []Arg{Word("")}, "", ErrBadArg},
		{"bad key", 1, "SET", []Arg{KV("Strict", Int(1))}, "", ErrBadArg},
		{"nested kv", 1, "SET", []Arg{KV("a", KV("b", Int(1)))}, "", ErrBadArg},
		{"five decimals", 1, "VEL", []Arg{Float(0.1, 5), Float(0, 0)}, "", ErrBadArg},
		{"nan", 1, "VEL", []Arg{Float(nan(), 3)}, "", ErrBadArg},
		{"zero arg", 1, "VEL", []Arg{{}}, "", ErrBadArg},
		{"too long", 65535, "OUT", []Arg{KV("a", Word(strings.Repeat("x", 50)))}, "", ErrTooLong},
		{"exactly 64", 1, "OUT", []Arg{Word(strings.Repeat("x", 64-len("1 OUT *HH\n")))}, "1 OUT " + strings.Repeat("x", 54) + "*" + hex2("1 OUT "+strings.Repeat("x", 54)) + "\n", nil},
		{"65", 1, "OUT", []Arg{Word(strings.Repeat("x", 55))}, "", ErrTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("keep")
			got, err := AppendCommand(prefix, tt.seq, tt.verb, tt.args...)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				if string(got) != "keep" {
					t.Fatalf("on error dst = %q, want it unchanged", got)
				}
				return
			}
			if string(got[4:]) != tt.want {
				t.Fatalf("got %q, want %q", got[4:], tt.want)
			}
			if len(got)-4 > MaxCommandLine {
				t.Fatalf("%d bytes", len(got)-4)
			}
			var c Command
			if err := ParseCommand(got[4:], &c, true); err != nil {
				t.Fatalf("own line does not parse: %v", err)
			}
		})
	}
}

func hex2(s string) string {
	b := AppendChecksum([]byte(s), 0)
	return string(b[len(b)-3 : len(b)-1])
}

func nan() float64 { z := 0.0; return z / z }

func TestParseCommand(t *testing.T) {
	tests := []struct {
		name   string
		line   string
		strict bool
		seq    uint16
		verb   string
		args   []string
		cksum  bool
		code   ErrorCode // 0: accepted
		hasSeq bool
		text   string
	}{
		{name: "vel", line: "12 VEL 0.250 -0.100*57\n", seq: 12, verb: "VEL", args: []string{"0.250", "-0.100"}, cksum: true},
		{name: "human", line: "12 VEL 0.25 -0.1", seq: 12, verb: "VEL", args: []string{"0.25", "-0.1"}},
		{name: "crlf", line: "1 PING*01\r\n", seq: 1, verb: "PING", cksum: true},
		{name: "cr inside", line: "1 PI\rNG*01\n", seq: 1, verb: "PING", cksum: true},
		{name: "kv", line: "2 SET strict=1 wdog_ms=300", seq: 2, verb: "SET", args: []string{"strict=1", "wdog_ms=300"}},
		{name: "leading zeros", line: "007 PING", seq: 7, verb: "PING"},
		{name: "bad checksum", line: "14 VEL 0.2 0.0*00", code: CodeChecksum, text: "checksum"},
		{name: "lower hex", line: "1 PING*0a", code: CodeChecksum, text: "checksum"},
		{name: "one hex digit", line: "1 PING*1", code: CodeChecksum, text: "checksum"},
		{name: "strict missing", line: "5 PING", strict: true, seq: 5, code: CodeChecksum, hasSeq: true, text: "checksum required"},
		{name: "strict present", line: "1 PING*01", strict: true, seq: 1, verb: "PING", cksum: true},
		{name: "strict garbage", line: "hello", strict: true, code: CodeParse, text: "parse"},
		{name: "garbage", line: "hello", code: CodeParse, text: "parse"},
		{name: "empty", line: "\n", code: CodeParse, text: "parse"},
		{name: "seq zero", line: "0 PING", code: CodeParse, text: "parse"},
		{name: "seq too big", line: "65536 PING", code: CodeParse, text: "parse"},
		{name: "seq only", line: "5", code: CodeParse, seq: 5, hasSeq: true, text: "parse"},
		{name: "lower verb", line: "5 ping", code: CodeParse, seq: 5, hasSeq: true, text: "parse"},
		{name: "double space", line: "5 VEL  1 2", code: CodeParse, seq: 5, hasSeq: true, text: "parse"},
		{name: "trailing space", line: "5 PING ", code: CodeParse, seq: 5, hasSeq: true, text: "parse"},
		{name: "two stars", line: "1 PING*01*" + hex2("1 PING*01"), code: CodeChecksum, text: "checksum"},
		{name: "control byte", line: "5 PI\x01NG", code: CodeParse, text: "parse"},
		{name: "high byte", line: "5 PING \xff", code: CodeParse, text: "parse"},
		{name: "tab", line: "5\tPING", code: CodeParse, text: "parse"},
		{name: "reserved byte", line: "5 OUT a=?", code: CodeParse, text: "parse"},
		{name: "63 bytes", line: "1 OUT " + strings.Repeat("x", 57) + "\n", seq: 1, verb: "OUT", args: []string{strings.Repeat("x", 57)}},
		{name: "64 bytes", line: "1 OUT " + strings.Repeat("x", 58) + "\n", code: CodeTooLong, text: "toolong"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Command{Args: make([][]byte, 0, 1)}
			err := ParseCommand([]byte(tt.line), &c, tt.strict)
			if tt.code != 0 {
				var pe *ProtoError
				if !errors.As(err, &pe) {
					t.Fatalf("err = %v, want *ProtoError code %d", err, tt.code)
				}
				if pe.Code != tt.code || pe.HasSeq != tt.hasSeq || (tt.hasSeq && pe.Seq != tt.seq) || pe.Text != tt.text {
					t.Fatalf("got %+v, want code %d seq %d/%v text %q", *pe, tt.code, tt.seq, tt.hasSeq, tt.text)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if c.Seq != tt.seq || string(c.Verb) != tt.verb || c.HadChecksum != tt.cksum {
				t.Fatalf("got %d %q cksum=%v", c.Seq, c.Verb, c.HadChecksum)
			}
			var args []string
			for _, a := range c.Args {
				args = append(args, string(a))
			}
			if strings.Join(args, "|") != strings.Join(tt.args, "|") {
				t.Fatalf("args %q, want %q", args, tt.args)
			}
		})
	}
}

func TestParseDeviceLine(t *testing.T) {
	tests := []struct {
		name   string
		line   string
		strict bool
		want   DeviceLine
		fields string // "k=v k=v"
		err    error
	}{
		{name: "ok", line: "OK 1*15\n", want: DeviceLine{Kind: KindOK, Seq: 1, HadChecksum: true}},
		{name: "ok fields", line: "OK 7 wdog_ms=300", want: DeviceLine{Kind: KindOK, Seq: 7}, fields: "wdog_ms=300"},
		{name: "ok crlf", line: "OK 1*15\r\n", want: DeviceLine{Kind: KindOK, Seq: 1, HadChecksum: true}},
		{name: "ok dash", line: "OK -", err: ErrSyntax},
		{name: "ok no seq", line: "OK", err: ErrSyntax},
		{name: "err", line: "ERR 15 3 unknown*3A", want: DeviceLine{Kind: KindErr, Seq: 15, Code: 3, Text: []byte("unknown"), HadChecksum: true}},
		{name: "err dash", line: "ERR - 2 checksum*77", want: DeviceLine{Kind: KindErr, NoSeq: true, Code: 2, Text: []byte("checksum"), HadChecksum: true}},
		{name: "err words", line: "ERR 5 2 checksum required", want: DeviceLine{Kind: KindErr, Seq: 5, Code: 2, Text: []byte("checksum required")}},
		{name: "err no text", line: "ERR 5 9", want: DeviceLine{Kind: KindErr, Seq: 5, Code: 9}},
		{name: "err no code", line: "ERR 5", err: ErrSyntax},
		{name: "err code zero", line: "ERR 5 0 x", err: ErrSyntax},
		{name: "tlm", line: "TLM 2612 st=RDY vl=0.000 vr=0.000 lseq=0*1F", want: DeviceLine{Kind: KindTLM, TimeMs: 2612, HadChecksum: true}, fields: "st=RDY vl=0.000 vr=0.000 lseq=0"},
		{name: "tlm max t", line: "TLM 4294967295 st=ES", want: DeviceLine{Kind: KindTLM, TimeMs: 4294967295}, fields: "st=ES"},
		{name: "tlm t overflow", line: "TLM 4294967296 st=ES", err: ErrSyntax},
		{name: "evt", line: "EVT ESTOP src=byte*4F", want: DeviceLine{Kind: KindEvt, Name: []byte("ESTOP"), HadChecksum: true}, fields: "src=byte"},
		{name: "evt bare", line: "EVT WDOG*7C", want: DeviceLine{Kind: KindEvt, Name: []byte("WDOG"), HadChecksum: true}},
		{name: "evt lower", line: "EVT wdog", err: ErrSyntax},
		{name: "hello", line: "HELLO proto=1.0 rx=64", want: DeviceLine{Kind: KindHello}, fields: "proto=1.0 rx=64"},
		{name: "comment", line: "# booting, hold on", want: DeviceLine{Kind: KindComment, Text: []byte("booting, hold on")}},
		{name: "comment bare", line: "#", want: DeviceLine{Kind: KindComment}},
		{name: "strict missing", line: "OK 1", strict: true, err: ErrNoChecksum},
		{name: "bad checksum", line: "OK 1*16", err: ErrChecksum},
		{name: "malformed checksum", line: "OK 1*1", err: ErrChecksum},
		{name: "unknown kind", line: "FOO 1", err: ErrUnknownKind},
		{name: "lower kind", line: "ok 1", err: ErrUnknownKind},
		{name: "empty", line: "\r\n", err: ErrEmpty},
		{name: "control", line: "OK 1\x00", err: ErrForbiddenByte},
		{name: "reserved", line: "OK 1 a=!", err: ErrForbiddenByte},
		{name: "not kv", line: "OK 1 pending", err: ErrSyntax},
		{name: "127 bytes", line: "# " + strings.Repeat("x", 125), want: DeviceLine{Kind: KindComment, Text: []byte(strings.Repeat("x", 125))}},
		{name: "128 bytes", line: "# " + strings.Repeat("x", 126), err: ErrTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var dl DeviceLine
			err := ParseDeviceLine([]byte(tt.line), &dl, tt.strict)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			var fs []string
			for _, f := range dl.Fields {
				fs = append(fs, string(f.Key)+"="+string(f.Value))
			}
			if got := strings.Join(fs, " "); got != tt.fields {
				t.Fatalf("fields %q, want %q", got, tt.fields)
			}
			dl.Fields = nil
			if dl.Kind != tt.want.Kind || dl.Seq != tt.want.Seq || dl.NoSeq != tt.want.NoSeq || dl.Code != tt.want.Code ||
				!bytes.Equal(dl.Text, tt.want.Text) || !bytes.Equal(dl.Name, tt.want.Name) || dl.TimeMs != tt.want.TimeMs ||
				dl.HadChecksum != tt.want.HadChecksum {
				t.Fatalf("got %+v\nwant %+v", dl, tt.want)
			}
		})
	}
}

func TestDeviceEncoders(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"ok", AppendOK(nil, 1), "OK 1*15\n"},
		{"ok kv", AppendOK(nil, 7, KV("wdog_ms", Int(300))), "OK 7 wdog_ms=300"},
		{"err", AppendErr(nil, 15, true, CodeUnknown, "unknown"), "ERR 15 3 unknown*3A\n"},
		{"err dash", AppendErr(nil, 0, false, CodeChecksum, ""), "ERR - 2 checksum*77\n"},
		{"err sanitised", AppendErr(nil, 3, true, CodeRange, "a\nb*c!"), "ERR 3 4 a_b_c_"},
		{"tlm", AppendTLM(nil, 2612, KV("st", Word("RDY")), KV("vl", Float(0, 3)), KV("vr", Float(0, 3)), KV("lseq", Int(0))), "TLM 2612 st=RDY vl=0.000 vr=0.000 lseq=0*1F\n"},
		{"evt", AppendEvt(nil, "ESTOP", KV("src", Word("byte"))), "EVT ESTOP src=byte*4F\n"},
		{"evt bare", AppendEvt(nil, "WDOG"), "EVT WDOG*7C\n"},
		{"evt bad arg", AppendEvt(nil, "X", KV("k", Float(nan(), 2))), "EVT X k=_"},
		{"comment", AppendComment(nil, "hi!"), "# hi_"},
		{"hello", AppendHello(nil, Hello{Major: 1, FW: "teleop-uno/0.1.0", Board: "uno", RX: 64, Caps: []string{"vel", "hb", "out:lights", "tlm", "estop", "strict"}}),
			"HELLO proto=1.0 fw=teleop-uno/0.1.0 board=uno rx=64 caps=vel,hb,out:lights,tlm,estop,strict*53\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.HasPrefix(string(tt.got), tt.want) {
				t.Fatalf("got %q, want prefix %q", tt.got, tt.want)
			}
			var dl DeviceLine
			if err := ParseDeviceLine(tt.got, &dl, true); err != nil {
				t.Fatalf("own line does not parse: %v", err)
			}
		})
	}
}

func TestHello(t *testing.T) {
	tests := []struct {
		line    string
		err     error
		compat  bool
		outputs string
	}{
		{"HELLO proto=1.0 fw=a/1 board=uno rx=64 caps=vel,out:lights,out:horn", nil, true, "lights,horn"},
		{"HELLO proto=1.7 caps=vel extra=1", nil, true, ""},
		{"HELLO proto=2.0", nil, false, ""},
		{"HELLO fw=a/1", ErrSyntax, false, ""},
		{"HELLO proto=1", ErrSyntax, false, ""},
		{"HELLO proto=1.0 rx=12", ErrSyntax, false, ""},
		{"OK 1", ErrNotHello, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			var dl DeviceLine
			if err := ParseDeviceLine([]byte(tt.line), &dl, false); err != nil {
				t.Fatal(err)
			}
			h, err := ParseHello(&dl)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if ok := h.Check() == nil; ok != tt.compat {
				t.Fatalf("Check() = %v, want compatible %v", h.Check(), tt.compat)
			}
			if !tt.compat && !errors.Is(h.Check(), ErrIncompatible) {
				t.Fatalf("Check() = %v", h.Check())
			}
			if got := strings.Join(h.Outputs(), ","); got != tt.outputs {
				t.Fatalf("outputs %q, want %q", got, tt.outputs)
			}
			if tt.outputs != "" && (!h.Has("out") || !h.Has("out:horn") || h.Has("pose")) {
				t.Fatalf("Has wrong for %v", h.Caps)
			}
		})
	}
}

func TestSeqNewer(t *testing.T) {
	tests := []struct {
		a, b uint16
		want bool
	}{
		{2, 1, true}, {1, 2, false}, {1, 1, false},
		{1, 65535, true}, {65535, 1, false},
		{32768, 1, true}, {32769, 1, false},
		{5, 65000, true}, {65000, 5, false},
	}
	for _, tt := range tests {
		if got := SeqNewer(tt.a, tt.b); got != tt.want {
			t.Errorf("SeqNewer(%d, %d) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
	if NextSeq(65535) != 1 || NextSeq(1) != 2 {
		t.Fatal("NextSeq does not wrap 65535 → 1")
	}
}

func TestParseNumber(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"0", 0, true}, {"-1", -1, true}, {"0.25", 0.25, true}, {"0.1234", 0.1234, true},
		{"-0.100", -0.1, true}, {"99", 99, true},
		{"0.12345", 0, false}, {"1.", 0, false}, {".5", 0, false}, {"-", 0, false}, {"", 0, false},
		{"1e3", 0, false}, {"+1", 0, false}, {"1.2.3", 0, false}, {"--1", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseNumber([]byte(tt.in))
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("ParseNumber(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestErrorCode(t *testing.T) {
	tests := []struct {
		code  ErrorCode
		text  string
		retry RetryClass
	}{
		{CodeParse, "parse", RetryNever}, {CodeChecksum, "checksum", RetryResend}, {CodeUnknown, "unknown", RetryNever},
		{CodeRange, "range", RetryNever}, {CodeEstop, "estop", RetryLater}, {CodeBusy, "busy", RetryLater},
		{CodeTooLong, "toolong", RetryNever}, {CodeStale, "stale", RetryNever}, {CodeInternal, "internal", RetryLater},
		{42, "code42", RetryNever},
	}
	for _, tt := range tests {
		if tt.code.String() != tt.text || tt.code.Retry() != tt.retry {
			t.Errorf("code %d: %q %v, want %q %v", int(tt.code), tt.code.String(), tt.code.Retry(), tt.text, tt.retry)
		}
	}
}

func TestArgString(t *testing.T) {
	if got := KV("vl", Float(0.37, 3)).String(); got != "vl=0.370" {
		t.Fatal(got)
	}
	if got := Float(nan(), 1).String(); got != "?" {
		t.Fatal(got)
	}
}
