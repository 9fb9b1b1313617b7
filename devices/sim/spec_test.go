package sim

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/teleop/teleop/devices/conformance"
	"github.com/teleop/teleop/devices/proto"
)

// TestSpecTranscript plays the worked examples of firmware-protocol.md §11
// against the robot on a fake clock: every host line is sent as written,
// and every device line the spec shows (but TLM, whose fields and times
// differ) must come back byte for byte, in order. The spec's stage
// directions are acted out: a line "lost on the wire" is dropped on the
// way in, "no VEL or HB for 300 ms" advances the clock, a brown-out resets
// the robot.
func TestSpecTranscript(t *testing.T) {
	spec, err := os.ReadFile("../../firmware-protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	sec := string(spec)
	sec = sec[strings.Index(sec, "\n## 11. "):]
	sec = sec[:strings.Index(sec[1:], "\n## ")+1]

	type step struct {
		host          bool
		text, comment string
	}
	var steps []step
	for _, l := range strings.Split(sec, "\n") {
		var s step
		switch {
		case strings.HasPrefix(l, "→ "):
			s.host = true
		case strings.HasPrefix(l, "← "):
		case strings.HasPrefix(strings.TrimSpace(l), "…"):
			s.comment = strings.TrimSpace(l)
			steps = append(steps, s)
			continue
		default:
			continue
		}
		_, s.text, _ = strings.Cut(l, " ")
		if i := strings.Index(s.text, "  "); i >= 0 {
			s.text, s.comment = s.text[:i], strings.TrimSpace(s.text[i:])
		}
		s.text = strings.ReplaceAll(s.text, "<0x18>", "\x18")
		steps = append(steps, s)
	}

	g := start(t, nil)
	pause := regexp.MustCompile(`(\d+) ms`)
	var checked int
	sent := false
	for i, s := range steps {
		switch {
		case !s.host && s.text == "":
			// a stage direction: "… no VEL or HB for 300 ms …", "… 250 ms …"
			if m := pause.FindStringSubmatch(s.comment); m != nil {
				ms, _ := strconv.Atoi(m[1])
				g.clk.Advance(time.Duration(ms) * time.Millisecond)
			}
		case s.host:
			lost := strings.Contains(s.comment, "lost")
			if i+1 < len(steps) && strings.Contains(steps[i+1].comment, "rebooted") {
				lost = true // the brown-out takes the line with it
			}
			if lost {
				g.r.Faults().DropLines(ToDevice, 1)
			}
			b := s.text
			if !strings.HasSuffix(b, "!") {
				b += "\n"
			}
			g.c.WriteString(b)
			sent = true
		case strings.HasPrefix(s.text, "TLM "):
		case !sent && strings.HasPrefix(s.text, "HELLO "):
			// the power-up banner: start has read it
		default:
			if strings.Contains(s.comment, "rebooted") {
				g.r.Faults().Reset()
			}
			l, _ := g.c.WaitFor(wait, s.text, func(l conformance.Line) bool { return l.Kind != proto.KindTLM })
			if strings.HasPrefix(s.text, "HELLO ") {
				if l.Kind != proto.KindHello {
					t.Fatalf("spec shows %q, robot sent %v", s.text, l)
				}
			} else if l.Raw != s.text {
				t.Fatalf("spec shows %q, robot sent %v", s.text, l)
			}
			checked++
		}
	}
	if checked < 20 {
		t.Fatalf("checked %d device lines of §11, want ≥ 20", checked)
	}
	for _, l := range g.c.Quiet(100 * time.Millisecond) {
		if l.Kind != proto.KindTLM {
			t.Errorf("robot sent %v beyond the transcript", l)
		}
	}
}
