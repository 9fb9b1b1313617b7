package bridge_test

import (
	"strings"
	"testing"
	"time"

	"github.com/teleop/teleop/bridge"
)

// Safety invariant 3: an e-stop from any authenticated connection, any
// role, latches every device at once; drives and one-shots are refused
// until a clear; the clear releases it and driving works again.
func TestAgentEstopLatchesUntilClear(t *testing.T) {
	s := newStack(t, stackOptions{tap: true, config: baseMappings + "access:\n  allow: {roles: [operator]}\n"})
	alice := s.operator("role=operator,name=alice")
	viewer := s.operator("role=viewer,name=eve") // may not drive, may e-stop

	alice.expectAck(alice.drive(0.3, 0), "ok", "")
	mark := len(s.tap.bytes())
	id := viewer.signal("estop", "")
	viewer.expectAck(id, "sent", "")
	s.tap.waitBytes(mark, []byte("!!!"))
	waitFor(t, "the robot latched", func() bool { return s.robot.State().Latched })
	st := alice.waitStatus("the e-stop latched", func(st bridge.Status) bool { return st.Estop.Latched })
	if st.Estop.By != viewer.id || !st.Devices["base"].Latched || len(st.Estop.Devices) != 1 {
		t.Errorf("status e-stop %+v, device %+v; want latched by %s", st.Estop, st.Devices["base"], viewer.id)
	}

	a := alice.expectAck(alice.drive(0.5, 0), "rejected", "estop_latched")
	if !strings.Contains(a.Reason, "e-stop latched") {
		t.Errorf("reason %q", a.Reason)
	}
	alice.expectAck(alice.signal("lights", `"on":true`), "rejected", "estop_latched")
	viewer.expectAck(viewer.signal("clear", ""), "rejected", "forbidden") // access.allow covers clear

	alice.expectAck(alice.signal("clear", ""), "ok", "")
	alice.waitStatus("the e-stop released", func(st bridge.Status) bool { return !st.Estop.Latched })
	if s.robot.State().Latched {
		t.Error("the robot is still latched after the clear")
	}
	alice.expectAck(alice.drive(0.2, 0), "ok", "")
	if got := s.metric("teleop_agent_estops_total", "source", "signal"); got != 1 {
		t.Errorf("estops_total = %v", got)
	}
	checkWire(t, s.tap.bytes())
}

// The e-stop is not queued behind a slow device: with a setpoint stuck in
// flight (the robot answers after 3 s), the e-stop bytes go out at once and
// the stuck setpoint is given up.
func TestAgentEstopDoesNotWaitForTheDevice(t *testing.T) {
	s := newStack(t, stackOptions{tap: true, config: baseMappings,
		device: "    reply_timeout: 8s\n    settings: {wdog_ms: 1000, tlm_hz: 10}\n"})
	alice := s.operator("role=operator,name=alice")
	alice.expectAck(alice.drive(0.1, 0), "ok", "")

	s.robot.Faults().SetReplyDelay(3 * time.Second)
	mark := len(s.tap.bytes())
	slow := alice.drive(0.6, 0)
	s.tap.waitLine(len(commandLines(s.tap.bytes()[:mark])), "the slow VEL", isVerb("VEL"))
	id := alice.signal("estop", "")
	alice.expectAck(id, "sent", "")
	s.tap.waitBytes(mark, []byte("!!!"))
	if alice.hasAck(slow) {
		t.Log("the slow drive was answered before the e-stop's ack") // possible only if the machine stalled 3 s
	}
	a := alice.waitAck(slow)
	if a.Status != "sent" || a.code() != "estop_latched" {
		t.Errorf("the drive in flight at the e-stop: %s; want sent, estop_latched (on the wire, its reply given up)", a)
	}
	s.robot.Faults().SetReplyDelay(0)
	alice.expectAck(alice.signal("clear", ""), "ok", "")
}

// The e-stop and the stop come through the REST API too (no ack: there is
// no sender connection).
func TestAgentRESTStopAndEstop(t *testing.T) {
	s := newStack(t, stackOptions{tap: true, config: baseMappings + "  clear:\n    kind: clear\n    allow: {api: true}\n"})
	alice := s.operator("role=operator,name=alice")
	alice.expectAck(alice.drive(0.3, 0), "ok", "")
	n := len(s.tap.lines())
	s.relay.rest("stop", "")
	s.tap.waitLine(n, "STOP", isVerb("STOP"))
	waitFor(t, "the robot stopped", func() bool { return s.robot.State().Linear == 0 })

	s.relay.rest("estop", "")
	st := alice.waitStatus("the e-stop latched by the api", func(st bridge.Status) bool { return st.Estop.Latched })
	if st.Estop.By != "api" {
		t.Errorf("latched by %q, want api", st.Estop.By)
	}
	alice.expectAck(alice.signal("clear", ""), "rejected", "forbidden") // this clear mapping allows the API only
	s.relay.rest("clear", "")
	alice.waitStatus("the e-stop released", func(st bridge.Status) bool { return !st.Estop.Latched })
	if n := alice.ackCount(); n != 2 {
		t.Errorf("alice got %d acks; the REST signals must not be acked to anyone", n)
	}
}

// leaseConfig turns the lease on with a short idle time.
const leaseConfig = `safety:
  deadman: 500ms
  max_age: 300ms
  lease: exclusive
  lease_idle: 1s
mappings:
  drive:
    kind: setpoint
    fields:
      linear:  {type: float, min: -1, max: 1, out_of_range: clamp, default: 0}
      angular: {type: float, min: -4, max: 4, out_of_range: clamp, default: 0}
    command: "VEL {{ fixed 3 .linear }} {{ fixed 3 .angular }}"
`

// Safety invariant 4: one driver at a time; stop and e-stop from anyone;
// the clear is the holder's; transfer and release; the lease ends when its
// holder leaves.
func TestAgentLease(t *testing.T) {
	s := newStack(t, stackOptions{tap: true, config: leaseConfig})
	alice := s.operator("role=operator,name=alice")
	bob := s.operator("role=operator,name=bob")
	holder := func(h string) func(bridge.Status) bool {
		return func(st bridge.Status) bool { return st.Lease.Mode == "exclusive" && st.Lease.Holder == h }
	}

	alice.expectAck(alice.drive(0.2, 0), "rejected", "lease") // nobody holds it yet
	alice.expectAck(alice.signal("control", `"action":"acquire"`), "ok", "")
	alice.waitStatus("alice holding the lease", holder(alice.id))
	bob.waitStatus("alice holding the lease", holder(alice.id))

	a := bob.expectAck(bob.signal("control", `"action":"acquire"`), "rejected", "lease")
	if !strings.Contains(a.Reason, alice.id) {
		t.Errorf("reason %q does not name the holder", a.Reason)
	}
	bob.expectAck(bob.drive(0.5, 0), "rejected", "lease")
	alice.expectAck(alice.drive(0.2, 0), "ok", "")

	// Stop and e-stop from anyone.
	n := len(s.tap.lines())
	bob.expectAck(bob.signal("stop", ""), "ok", "")
	s.tap.waitLine(n, "bob's STOP", isVerb("STOP"))
	bob.expectAck(bob.signal("estop", ""), "sent", "")
	bob.expectAck(bob.signal("clear", ""), "rejected", "lease") // the clear is the holder's
	alice.expectAck(alice.drive(0.2, 0), "rejected", "estop_latched")
	alice.expectAck(alice.signal("clear", ""), "ok", "")

	// Transfer to bob: alice's motion stops, bob drives.
	alice.expectAck(alice.signal("control", `"action":"transfer","to":"nobody-there"`), "rejected", "lease")
	alice.expectAck(alice.drive(0.2, 0), "ok", "")
	n = len(s.tap.lines())
	alice.expectAck(alice.signal("control", `"action":"transfer","to":"`+bob.id+`"`), "ok", "")
	s.tap.waitLine(n, "the stop of the old holder's motion", isVerb("STOP"))
	bob.waitStatus("bob holding the lease", holder(bob.id))
	alice.expectAck(alice.drive(0.2, 0), "rejected", "lease")
	bob.expectAck(bob.drive(0.1, 0), "ok", "")
	alice.expectAck(alice.signal("control", `"action":"release"`), "rejected", "lease")
	bob.expectAck(bob.signal("control", `"action":"release"`), "ok", "")
	alice.waitStatus("nobody holding the lease", holder(""))

	// The lease ends when its holder leaves.
	bob.expectAck(bob.signal("control", `"action":"acquire"`), "ok", "")
	alice.waitStatus("bob holding the lease", holder(bob.id))
	bob.sess.Close()
	alice.waitStatus("the lease free after bob left", holder(""))
	alice.expectAck(alice.signal("control", `"action":"acquire"`), "ok", "")
	checkWire(t, s.tap.bytes())
}

// With the lease off, anyone allowed may clear, and control is refused.
func TestAgentClearWithoutLease(t *testing.T) {
	s := newStack(t, stackOptions{config: baseMappings})
	alice := s.operator("role=operator,name=alice")
	bob := s.operator("role=operator,name=bob")
	alice.expectAck(alice.signal("estop", ""), "sent", "")
	bob.expectAck(bob.signal("clear", ""), "ok", "")
	bob.waitStatus("the e-stop released", func(st bridge.Status) bool { return !st.Estop.Latched })
	if err := bob.send("control", `{"id":"c","action":"acquire"}`); err != nil {
		t.Fatal(err)
	}
	// control is not mapped when the lease is off: unknown_signals ignore.
	bob.expectAck(bob.drive(0.1, 0), "ok", "")
	if bob.hasAck(`"c"`) {
		t.Error("control was acked with the lease off and unknown types ignored")
	}
}
