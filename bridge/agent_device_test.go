package bridge_test

import (
	"math"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/teleop/teleop/clock"
	"github.com/teleop/teleop/devices/proto"
	"github.com/teleop/teleop/devices/sim"
)

// safety.stop_on_shutdown decides whether the agent's exit stops the
// robot: by default the STOP follows the last VEL; with false (an
// acknowledged risk) nothing more is written, and the robot keeps its last
// command until its own watchdog cuts it.
func TestAgentStopOnShutdown(t *testing.T) {
	for _, tc := range []struct {
		name   string
		safety string
		want   []string
		linear float64 // the robot's after the agent's exit
	}{
		{"default", "", []string{"VEL 0.300 0.000", "STOP"}, 0},
		{"off", "  stop_on_shutdown: false\n  i_understand_the_risk: [no_stop_on_shutdown]\n", []string{"VEL 0.300 0.000"}, 0.3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			config := strings.Replace(baseMappings, "safety:\n", "safety:\n"+tc.safety, 1)
			// The agent's and the robot's clocks are fake and stand still:
			// neither the deadman nor the robot's watchdog stops it here.
			s := newStack(t, stackOptions{fake: true, tap: true, config: config,
				simOpts: &sim.Options{WdogMs: 1000, TLMHz: 10, Clock: clock.NewFake()}})
			alice := s.operator("role=operator,name=alice")
			alice.expectAck(alice.drive(0.3, 0), "ok", "")
			n := s.tap.waitLine(0, "the VEL", func(l string) bool { return l == "VEL 0.300 0.000" })
			s.stopAgent()
			// The agent has closed its port: a line written there now reaches
			// the tap after everything the agent wrote.
			f, err := os.OpenFile(s.tap.path, os.O_RDWR|unix.O_NOCTTY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := sim.MakeRaw(f); err != nil {
				t.Fatal(err)
			}
			marker, err := proto.AppendCommand(nil, 9, "PING")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(marker); err != nil {
				t.Fatal(err)
			}
			i := s.tap.waitLine(n, "the marker", func(l string) bool { return l == "PING" })
			if got := s.tap.lines()[n:i]; strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("lines from the drive to the agent's exit %q, want %q", got, tc.want)
			}
			if st := s.robot.State(); math.Abs(st.Linear-tc.linear) > 1e-9 {
				t.Errorf("robot after the agent's exit: linear %v, want %v", st.Linear, tc.linear)
			}
		})
	}
}
