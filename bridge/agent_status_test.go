package bridge_test

import (
	"testing"
	"time"

	"github.com/teleop/teleop/bridge"
	"github.com/teleop/teleop/clock"
	"github.com/teleop/teleop/devices/sim"
)

// An idle robot is not in failsafe (decision 0003): after a drive and a
// stop, watchdog periods of silence leave the device ready in the status
// and RDY in the telemetry. Motion is still watched: a drive that is not
// refreshed trips the watchdog, and the status says so. The robot runs on
// its own fake clock, so the silence is moved, not slept.
func TestAgentIdleRobotIsNotFailsafe(t *testing.T) {
	robotClk := clock.NewFake()
	s := newStack(t, stackOptions{config: baseMappings, simOpts: &sim.Options{WdogMs: 1000, TLMHz: 10, Clock: robotClk}})
	alice := s.operator("role=operator,name=alice")
	alice.expectAck(alice.drive(0.3, 0), "ok", "")
	alice.expectAck(alice.signal("stop", ""), "ok", "")
	waitFor(t, "the robot stopped", func() bool { return s.robot.State().Left == 0 })

	robotClk.Advance(3 * time.Second) // wdog_ms is 1000
	// Telemetry the robot sent after the silence (its t_ms is on its clock);
	// the second such line comes after the robot has handled its timers.
	var tlm map[string]any
	alice.wait("two telemetry lines from after the silence", func() bool {
		n := 0
		for _, m := range alice.telemetry {
			if ms, _ := m["t_ms"].(float64); ms >= 3000 {
				n, tlm = n+1, m
			}
		}
		return n >= 2
	})
	if tlm["st"] != "RDY" {
		t.Errorf("telemetry of the idle robot %v, want st RDY", tlm)
	}
	st := s.agent.Status()
	if st.Devices["base"].State != "ready" || st.Watchdog != "ok" || st.WatchdogTrips != 0 {
		t.Errorf("status of the idle robot %+v, want the device ready and the watchdog ok", st)
	}

	alice.expectAck(alice.drive(0.3, 0), "ok", "")
	robotClk.Advance(3 * time.Second)
	alice.waitStatus("the watchdog tripped", func(st bridge.Status) bool {
		return st.Devices["base"].State == "failsafe" && st.Watchdog == "failsafe: base" && st.WatchdogTrips == 1
	})
}
