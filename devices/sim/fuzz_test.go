package sim

import (
	"bytes"
	"testing"
	"time"

	"github.com/teleop/teleop/devices/conformance"
	"github.com/teleop/teleop/devices/proto"
)

// FuzzRobotInput writes arbitrary bytes to the robot over its pty. The robot
// must survive anything: after a RESYNC it answers a PING, every line it
// sent is a well-formed device line with a checksum, and it never sent more
// final replies than the input had lines.
func FuzzRobotInput(f *testing.F) {
	for _, s := range []string{
		"1 PING\n", "12 VEL 0.250 -0.100*57\n", "10 VEL 0.5!\n11 CLEAR\n", "?\x18?", "2 SET strict=1 tlm_hz=0\n3 PING\n",
		"4 RESET\n", "5 OUT lights=1\n5 OUT lights=1\n", "\xff\x00\r\n\n", "6 GET x\n7 GET nosuch\n8 FLY\n",
		"1 " + string(bytes.Repeat([]byte("X"), 100)) + "\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		g := start(t, &Options{TLMHz: -1})
		g.c.Write(in)
		ping := func() {
			g.c.Write([]byte{proto.ByteResync})
			g.c.Send(65000, "PING")
		}
		ping()
		var finals, tries int
		for {
			l, err := g.c.Next(500 * time.Millisecond)
			if err == conformance.ErrTimeout && tries < 10 {
				// A RESET in the input may reboot the robot after the PING
				// arrived: the reboot lost it, as a board's would.
				tries++
				ping()
				continue
			}
			if err != nil {
				t.Fatalf("no reply to PING: %v", err)
			}
			if l.Err != nil || !l.HadChecksum || len(l.Raw)+1 > proto.MaxDeviceLine {
				t.Fatalf("robot sent %v", l)
			}
			if l.Final() {
				if l.Kind == proto.KindOK && l.Seq == 65000 {
					break
				}
				finals++
			}
		}
		if lines := bytes.Count(in, []byte{'\n'}); finals > lines {
			t.Fatalf("%d final replies to %d lines", finals, lines)
		}
	})
}
