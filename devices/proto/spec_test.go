package proto

import (
	"bytes"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
)

// The tests in this file read firmware-protocol.md itself, so that the spec's
// examples and this codec cannot drift apart.

const specPath = "../../firmware-protocol.md"

func readSpec(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatalf("read spec: %v", err)
	}
	return string(b)
}

// specSection returns the text from the heading "## <n>." up to the next
// "## " heading.
func specSection(t testing.TB, spec, n string) string {
	t.Helper()
	i := strings.Index(spec, "\n## "+n+". ")
	if i < 0 {
		t.Fatalf("spec has no section %s", n)
	}
	s := spec[i+1:]
	if j := strings.Index(s[3:], "\n## "); j >= 0 {
		s = s[:j+3]
	}
	return s
}

// TestSpecChecksumVectors checks every row of the §12 table.
func TestSpecChecksumVectors(t *testing.T) {
	sec := specSection(t, readSpec(t), "12")
	rows := regexp.MustCompile("(?m)^\\| `([^`]+)` \\| `([^`]+)` \\|$").FindAllStringSubmatch(sec, -1)
	if len(rows) < 6 {
		t.Fatalf("found %d test vectors in §12, want ≥ 6", len(rows))
	}
	for _, r := range rows {
		got := string(AppendChecksum([]byte(r[1]), 0))
		if want := r[2] + "\n"; got != want {
			t.Errorf("checksum of %q: got %q, want %q", r[1], got, want)
		}
	}
}

type transcriptLine struct {
	host bool   // → host to device
	text string // the bytes, with <0x18> turned into the byte
	abbr bool   // an abbreviated line (…, *HH): syntax not checked
}

// specTranscript returns the → and ← lines of §11, in order.
func specTranscript(t testing.TB) []transcriptLine {
	sec := specSection(t, readSpec(t), "11")
	var out []transcriptLine
	for _, l := range strings.Split(sec, "\n") {
		var host bool
		switch {
		case strings.HasPrefix(l, "→ "):
			host = true
		case strings.HasPrefix(l, "← "):
		default:
			continue
		}
		_, text, _ := strings.Cut(l, " ")
		if i := strings.Index(text, "  "); i >= 0 { // a comment follows
			text = text[:i]
		}
		abbr := strings.Contains(text, "…") || strings.HasSuffix(text, "*HH")
		text = strings.ReplaceAll(text, "<0x18>", "\x18")
		out = append(out, transcriptLine{host: host, text: text, abbr: abbr})
	}
	if len(out) < 30 {
		t.Fatalf("found %d transcript lines in §11, want ≥ 30", len(out))
	}
	return out
}

// deviceSplit plays a device's receive path over text: reserved bytes are
// taken out (and '!' drops the partial line) and the remaining line returned.
func deviceSplit(text string) (line string, estop bool) {
	var b []byte
	for i := 0; i < len(text); i++ {
		switch c := text[i]; c {
		case ByteResync:
			b = b[:0]
		case ByteEstop:
			b, estop = b[:0], true
		case ByteTelemetry:
		default:
			b = append(b, c)
		}
	}
	return string(b), estop
}

// TestSpecExamples parses every line of the §11 worked examples: device lines
// strictly (their checksums are real), host lines as a device would; where a
// host line is refused by the codec, the spec's next device line must be the
// matching ERR. Lines with real checksums must re-encode byte for byte.
func TestSpecExamples(t *testing.T) {
	lines := specTranscript(t)
	var c Command
	var dl DeviceLine
	for i, l := range lines {
		if l.abbr {
			if !l.host && !strings.HasPrefix(l.text, "HELLO ") {
				t.Errorf("abbreviated %q is not a HELLO", l.text)
			}
			continue
		}
		if !l.host {
			if err := ParseDeviceLine([]byte(l.text), &dl, true); err != nil {
				t.Errorf("← %q: %v", l.text, err)
				continue
			}
			if got := string(dl.Append(nil)); got != l.text+"\n" {
				t.Errorf("← %q re-encodes as %q", l.text, got)
			}
			continue
		}
		line, _ := deviceSplit(l.text)
		if line == "" {
			continue // "10 VEL 0.5!": the e-stop took the partial line
		}
		err := ParseCommand([]byte(line), &c, false)
		if err == nil {
			if c.HadChecksum {
				if got := string(c.Append(nil)); got != line+"\n" {
					t.Errorf("→ %q re-encodes as %q", line, got)
				}
			}
			continue
		}
		var pe *ProtoError
		if !errors.As(err, &pe) {
			t.Fatalf("→ %q: error %T, want *ProtoError", line, err)
		}
		if i+1 >= len(lines) || lines[i+1].host {
			t.Errorf("→ %q refused (%v) but the spec shows no reply after it", line, err)
			continue
		}
		reply := lines[i+1].text
		if want := string(pe.Reply(nil)); want != reply+"\n" {
			t.Errorf("→ %q: codec replies %q, spec shows %q", line, want, reply)
		}
	}
}

// TestSpecHostLinesFromAppendCommand encodes the VEL and SET lines of the
// spec with AppendCommand, as the host will: the bytes must match.
func TestSpecHostLinesFromAppendCommand(t *testing.T) {
	var n int
	var c Command
	for _, l := range specTranscript(t) {
		line, _ := deviceSplit(l.text)
		if !l.host || ParseCommand([]byte(line), &c, true) != nil {
			continue
		}
		var args []Arg
		switch string(c.Verb) {
		case "VEL":
			for _, a := range c.Args {
				v, ok := ParseNumber(a)
				if !ok {
					t.Fatalf("%q: arg %q", line, a)
				}
				dec := 0
				if i := bytes.IndexByte(a, '.'); i >= 0 {
					dec = len(a) - i - 1
				}
				args = append(args, Float(v, dec))
			}
		case "SET", "OUT":
			for _, a := range c.Args {
				k, v, ok := SplitKV(a)
				if !ok {
					t.Fatalf("%q: arg %q", line, a)
				}
				args = append(args, KV(string(k), Word(string(v))))
			}
		case "VER", "CLEAR", "PING":
		default:
			continue
		}
		got, err := AppendCommand(nil, c.Seq, string(c.Verb), args...)
		if err != nil {
			t.Fatalf("AppendCommand for %q: %v", line, err)
		}
		if string(got) != line+"\n" {
			t.Errorf("AppendCommand gives %q, spec shows %q", got, line)
		}
		n++
	}
	if n < 10 {
		t.Fatalf("checked %d host lines, want ≥ 10", n)
	}
}

// TestSpecBannerExamples parses the unchecksummed examples of §5.1 and §5.2.
func TestSpecBannerExamples(t *testing.T) {
	spec := readSpec(t)
	for _, n := range []string{"5"} {
		sec := specSection(t, spec, n)
		blocks := regexp.MustCompile("(?s)```\n(.*?)\n```").FindAllStringSubmatch(sec, -1)
		if len(blocks) < 2 {
			t.Fatalf("§%s: %d code blocks, want ≥ 2", n, len(blocks))
		}
		for _, b := range blocks {
			var dl DeviceLine
			if err := ParseDeviceLine([]byte(b[1]), &dl, false); err != nil {
				t.Errorf("%q: %v", b[1], err)
			}
			if dl.Kind == KindHello {
				h, err := ParseHello(&dl)
				if err != nil || h.Check() != nil || h.RX != 64 || !h.Has("vel") || h.FW != "teleop-uno/0.1.0" {
					t.Errorf("HELLO %q: %+v %v", b[1], h, err)
				}
				if got := AppendHello(nil, h); !bytes.HasPrefix(got, []byte(b[1]+"*")) {
					t.Errorf("AppendHello gives %q, spec shows %q", got, b[1])
				}
			}
		}
	}
}
