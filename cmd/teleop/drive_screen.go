package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/teleop/teleop/operator"
)

// helpLines are printed once, above the status lines.
func helpLines(steps int) []string {
	digits := "1"
	if steps > 1 {
		digits = fmt.Sprintf("1-%d", steps)
	}
	return []string{
		"teleop drive · hold w a s d or arrows to drive (W A S D, shift+arrows: one step faster) · space stop",
		"  " + digits + " + - speed · e or Esc E-STOP (everyone) · c clear e-stop · l take/release control · q quit",
	}
}

// How long a note and a rejection stay on the status lines.
const (
	noteFor   = 5 * time.Second
	rejectFor = 10 * time.Second
)

// screenInfo is what the status lines show besides the Driver's view.
type screenInfo struct {
	server        string
	session, self string
	name          string // this connection's name
}

// statusLines renders the two status lines.
func statusLines(v operator.View, info screenInfo) (string, string) {
	var l1 []string
	switch v.Link {
	case operator.LinkConnecting:
		l1 = append(l1, "connecting to "+info.server+"…")
	case operator.LinkConnected:
		who := "connected to " + shorten(info.session, 24)
		if info.name != "" && info.name != operator.ShortID(info.self) {
			who += " as " + info.name
		}
		l1 = append(l1, who)
	default:
		s := v.Link.String()
		if v.LinkReason != "" {
			s += " (" + v.LinkReason + ")"
		}
		l1 = append(l1, s)
	}
	if v.Link != operator.LinkConnecting && v.Link != operator.LinkDisconnected {
		if v.Robot.ID != "" {
			l1 = append(l1, "robot "+v.Robot.Name)
		} else {
			l1 = append(l1, v.Problem)
		}
	}
	switch c := v.Command; {
	case c.Holding:
		l1 = append(l1, fmt.Sprintf("drive %+.2f %+.2f", c.Linear, c.Angular))
	case c.Type == operator.TypeStop:
		l1 = append(l1, "stopped")
	case c.Type == operator.TypeEstop:
		l1 = append(l1, "e-stop sent")
	default:
		l1 = append(l1, "idle")
	}
	if a := v.LastAck; a != nil {
		s := fmt.Sprintf("ack %s #%s %s", a.Type, a.ID, a.Status)
		if a.HasLatency {
			s += " " + millis(a.Latency)
		}
		if a.DeviceMs.OK {
			s += fmt.Sprintf(", device %s ms", trimFloat(a.DeviceMs.V))
		}
		l1 = append(l1, s)
	}

	var l2 []string
	if v.Estop {
		s := "E-STOP LATCHED"
		if v.EstopBy != "" {
			s += " by " + v.EstopBy
		}
		l2 = append(l2, s+" (c clears)")
	}
	if r := v.LastReject; r != nil && v.Now.Sub(r.At) < rejectFor {
		s := "rejected"
		if r.Status != "rejected" {
			s = r.Status
		}
		if r.Reason != "" {
			s += ": " + r.Reason
		}
		if r.Code != "" {
			s += " [" + r.Code + "]"
		}
		l2 = append(l2, s+fmt.Sprintf(" (%s #%s)", r.Type, r.ID))
	}
	if n := v.Note; n.Text != "" && v.Now.Sub(n.At) < noteFor {
		l2 = append(l2, n.Text)
	}
	l2 = append(l2, fmt.Sprintf("speed %d/%d %.2f m/s %.2f rad/s", v.Step, v.Steps, v.Linear, v.Angular))
	if v.HasLease {
		holder := v.LeaseHolder
		if holder == "" {
			holder = "nobody"
		}
		l2 = append(l2, "control: "+holder)
	}
	if v.HasTelemetry {
		l2 = append(l2, telemetryText(v.Telemetry))
	} else if v.Robot.ID != "" {
		l2 = append(l2, "no telemetry yet")
	}
	return strings.Join(l1, " · "), strings.Join(l2, " · ")
}

func telemetryText(t operator.Telemetry) string {
	var parts []string
	if t.St != "" {
		parts = append(parts, t.St)
	}
	if t.Bat.OK {
		parts = append(parts, fmt.Sprintf("bat %.1f V", t.Bat.V))
	}
	if t.Vl.OK || t.Vr.OK {
		parts = append(parts, fmt.Sprintf("wheels %s %s m/s", optional(t.Vl), optional(t.Vr)))
	}
	if t.X.OK && t.Y.OK {
		s := fmt.Sprintf("pose %.2f %.2f", t.X.V, t.Y.V)
		if t.Th.OK {
			s += fmt.Sprintf(" %.0f°", t.Th.V*180/math.Pi)
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "telemetry (no known fields)"
	}
	return strings.Join(parts, " ")
}

// shorten cuts s to n runes with an ellipsis: OpenTok session IDs run to
// 70 characters.
func shorten(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func optional(v operator.Value) string {
	if !v.OK {
		return "—"
	}
	return fmt.Sprintf("%.2f", v.V)
}

func millis(d time.Duration) string {
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

func trimFloat(f float64) string { return fmt.Sprintf("%g", math.Round(f*10)/10) }

// screen draws on a terminal in raw mode (so lines end in \r\n): the help
// once, then two status lines redrawn in place. Lines are cut to the
// terminal's width, so that none wraps and the redraw stays in place.
type screen struct {
	w     io.Writer
	width func() int
	drawn bool
}

func newScreen(w io.Writer, width func() int) *screen {
	io.WriteString(w, "\x1b[?25l") // hide the cursor
	return &screen{w: w, width: width}
}

func (s *screen) header(lines ...string) {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(cut(l, s.width()))
		b.WriteString("\r\n")
	}
	io.WriteString(s.w, b.String())
}

// status redraws the two status lines.
func (s *screen) status(l1, l2 string) {
	w := s.width()
	var b strings.Builder
	if s.drawn {
		b.WriteString("\r\x1b[1A") // to the start of the first status line
	}
	b.WriteString("\x1b[2K")
	b.WriteString(cut(l1, w))
	b.WriteString("\r\n\x1b[2K")
	b.WriteString(cut(l2, w))
	s.drawn = true
	io.WriteString(s.w, b.String())
}

// close leaves the cursor below the status lines, visible.
func (s *screen) close() {
	io.WriteString(s.w, "\r\n\x1b[?25h")
}

// cut shortens s to fit in width columns minus one (writing the last
// column would leave some terminals waiting to wrap). Every rune used here
// is one column wide.
func cut(s string, width int) string {
	limit := width - 1
	if limit < 10 {
		limit = 10
	}
	n := 0
	for i := range s {
		if n == limit {
			return s[:i]
		}
		n++
	}
	return s
}

// termWidth is the terminal's width: that of out when it is one, else that
// of stdin, else 80.
func termWidth(out io.Writer, inFd int) int {
	if f, ok := out.(*os.File); ok {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 0 {
			return w
		}
	}
	if w, _, err := term.GetSize(inFd); err == nil && w > 0 {
		return w
	}
	return 80
}
