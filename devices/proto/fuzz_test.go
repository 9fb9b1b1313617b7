package proto

import (
	"bytes"
	"errors"
	"testing"
)

func FuzzParseDeviceLine(f *testing.F) {
	for _, s := range []string{
		"OK 1*15\n", "ERR - 2 checksum*77", "TLM 2612 st=RDY vl=0.000 vr=0.000 lseq=0*1F",
		"EVT ESTOP src=byte*4F", "HELLO proto=1.0 fw=teleop-uno/0.1.0 board=uno rx=64 caps=vel,hb,out:lights,tlm,estop,strict*53",
		"# hi", "ERR 5 2 checksum required", "OK 7 a= b=c=d", "\r\n", "OK 1*1", "EVT X_1 k=v\r",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, line []byte, strict bool) {
		var dl DeviceLine
		in := bytes.Clone(line)
		if err := ParseDeviceLine(in, &dl, strict); err != nil {
			return
		}
		// An accepted line re-encodes to a line that parses to the same thing.
		out := dl.Append(nil)
		if len(out) > MaxDeviceLine+3 { // a line without *HH may grow by "*HH"
			t.Fatalf("re-encoded %q is %d bytes", out, len(out))
		}
		var dl2 DeviceLine
		if err := ParseDeviceLine(bytes.Clone(out), &dl2, true); err != nil && !(errors.Is(err, ErrTooLong) && !dl.HadChecksum) {
			t.Fatalf("%q re-encoded as %q: %v", line, out, err)
		} else if err == nil && !sameDeviceLine(&dl, &dl2) {
			t.Fatalf("%q re-encoded as %q parses differently:\n%+v\n%+v", line, out, dl, dl2)
		}
	})
}

func sameDeviceLine(a, b *DeviceLine) bool {
	if a.Kind != b.Kind || a.Seq != b.Seq || a.NoSeq != b.NoSeq || a.Code != b.Code || a.TimeMs != b.TimeMs ||
		!bytes.Equal(a.Text, b.Text) || !bytes.Equal(a.Name, b.Name) || len(a.Fields) != len(b.Fields) {
		return false
	}
	for i := range a.Fields {
		if !bytes.Equal(a.Fields[i].Key, b.Fields[i].Key) || !bytes.Equal(a.Fields[i].Value, b.Fields[i].Value) {
			return false
		}
	}
	return true
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"12 VEL 0.250 -0.100*57\n", "1 PING*01", "2 SET strict=1 wdog_ms=300 tlm_hz=10*27", "hello",
		"14 VEL 0.2 0.0*00", "5 PING", "1 PI\rNG*01\r\n", "65535 HB", "1 OUT lights=1!", "\x18 1 VER",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, line []byte, strict bool) {
		var c Command
		err := ParseCommand(bytes.Clone(line), &c, strict)
		if err != nil {
			var pe *ProtoError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not a *ProtoError", err, err)
			}
			switch pe.Code {
			case CodeParse, CodeChecksum, CodeTooLong:
			default:
				t.Fatalf("code %d from the codec", pe.Code)
			}
			var dl DeviceLine
			if err := ParseDeviceLine(pe.Reply(nil), &dl, true); err != nil || dl.Kind != KindErr || dl.Code != int(pe.Code) {
				t.Fatalf("reply %q does not parse back: %v", pe.Reply(nil), err)
			}
			return
		}
		if strict && !c.HadChecksum {
			t.Fatal("strict accepted a line without checksum")
		}
		if c.Seq == 0 || len(c.Verb) == 0 {
			t.Fatalf("accepted seq %d verb %q", c.Seq, c.Verb)
		}
		for _, a := range append([][]byte{c.Verb}, c.Args...) {
			if len(a) == 0 {
				t.Fatal("accepted an empty token")
			}
			for _, b := range a {
				if b < 0x20 || b >= 0x7F || b == ' ' || b == '*' || b == ByteEstop || b == ByteTelemetry || b == ByteResync {
					t.Fatalf("accepted command %q holds byte 0x%02x", line, b)
				}
			}
		}
		out := c.Append(nil)
		if len(out) > MaxCommandLine+3 {
			t.Fatalf("re-encoded %q is %d bytes", out, len(out))
		}
		var c2 Command
		if err := ParseCommand(out, &c2, true); err != nil && len(out) <= MaxCommandLine {
			t.Fatalf("%q re-encoded as %q: %v", line, out, err)
		} else if err == nil && (c2.Seq != c.Seq || !bytes.Equal(c2.Verb, c.Verb) || len(c2.Args) != len(c.Args)) {
			t.Fatalf("%q re-encoded as %q parses differently", line, out)
		}
	})
}
