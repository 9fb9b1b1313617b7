package bridge_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/teleop/teleop/bridge"
	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/token"
)

// Safety invariant 1, session loss: the relay restarts while an operator
// drives. The agent stops the robot before anything else; after it is back
// nothing moves until a fresh drive.
func TestAgentRelayRestartWhileDriving(t *testing.T) {
	s := newStack(t, stackOptions{tap: true, config: baseMappings})
	alice := s.operator("role=operator,name=alice")
	alice.expectAck(alice.drive(0.4, 0), "ok", "")
	before := s.agent.Connection()
	n := len(s.tap.lines())

	s.relay.restart()
	i := s.tap.waitLine(n, "the session-loss STOP", isVerb("STOP"))
	if i != n {
		t.Errorf("lines before the STOP: %q; the stop must come first", s.tap.lines()[n:i])
	}
	waitFor(t, "the robot stopped", func() bool { return s.robot.State().Linear == 0 })
	waitFor(t, "the agent back in the new relay's session", func() bool {
		c := s.agent.Connection()
		return c != "" && c != before
	})
	if got := s.metric("teleop_agent_session_reconnects_total", "resumed", "false"); got != 1 {
		t.Errorf("session_reconnects_total{resumed=false} = %v", got)
	}
	// Alice's client rejoins on its own (a new connection too).
	waitFor(t, "alice back", func() bool { return alice.sess.Connected() && alice.sess.ID() != alice.id })
	alice.id = alice.sess.ID()
	alice.expectAck(alice.signal("lights", `"on":true`), "ok", "")
	if got := count(s.tap.lines()[n:], "VEL"); got != 0 || s.robot.State().Linear != 0 {
		t.Errorf("%d VEL after the reconnect, robot at %v m/s; nothing may move before a fresh drive", got, s.robot.State().Linear)
	}
	alice.expectAck(alice.drive(0.2, 0), "ok", "")
	checkWire(t, s.tap.bytes())
}

// Safety invariant 1 and 2, session loss with resume: the agent's own link
// drops and comes back within the relay's grace. A drive sent meanwhile is
// replayed by the relay on resume; it is refused, the robot stays stopped.
func TestAgentNoMotionResumesAfterTheAgentsLinkReturns(t *testing.T) {
	s := newStack(t, stackOptions{tap: true, agentProxy: true, config: baseMappings})
	alice := s.operator("role=operator,name=alice")
	alice.expectAck(alice.drive(0.4, 0), "ok", "")
	agentID := s.agent.Connection()
	n := len(s.tap.lines())

	s.proxy.setRefuse(true)
	s.proxy.cut()
	s.tap.waitLine(n, "the session-loss STOP", isVerb("STOP"))
	waitFor(t, "the agent reconnecting", func() bool { return s.agent.Connection() == "" })
	// The relay holds the agent's connection for its grace and buffers this.
	if err := alice.sess.Signal(context.Background(), signaling.Signal{Type: "drive", Data: `{"id":"held","linear":0.9}`, To: agentID}); err != nil {
		t.Fatal(err)
	}
	s.proxy.setRefuse(false)
	a := alice.expectAck(`"held"`, "rejected", "session_lost")
	if s.agent.Connection() != agentID {
		t.Errorf("agent connection %q, want the resumed %q", s.agent.Connection(), agentID)
	}
	if got := s.metric("teleop_agent_session_reconnects_total", "resumed", "true"); got != 1 {
		t.Errorf("session_reconnects_total{resumed=true} = %v", got)
	}
	t.Logf("replayed drive: %s", a)
	if got := count(s.tap.lines()[n:], "VEL"); got != 0 {
		t.Errorf("%d VEL after the drop", got)
	}
	alice.expectAck(alice.drive(0.2, 0), "ok", "")
}

// Safety invariant 1, device reconnect: unplugged, the device shows
// disconnected and drives are refused; replugged (a new pty path behind the
// same link), it shows ready, gets a STOP first, and no setpoint of before
// is replayed.
func TestAgentDeviceUnplugAndReplug(t *testing.T) {
	s := newStack(t, stackOptions{config: baseMappings})
	alice := s.operator("role=operator,name=alice")
	alice.expectAck(alice.drive(0.4, 0), "ok", "")

	s.robot.Faults().Unplug(0)
	alice.waitStatus("the device disconnected", func(st bridge.Status) bool { return st.Devices["base"].State == "disconnected" })
	alice.expectAck(alice.drive(0.5, 0), "rejected", "not_ready")

	if err := s.robot.Faults().Replug(); err != nil {
		t.Fatal(err)
	}
	alice.waitStatus("the device ready again", func(st bridge.Status) bool { return st.Devices["base"].State == "ready" })
	waitFor(t, "the agent's STOP after the replug", func() bool { return s.robot.State().Executed >= 3 }) // VER, SET, STOP
	alice.expectAck(alice.signal("lights", `"on":true`), "ok", "")
	if st := s.robot.State(); st.Setpoints != 0 || st.Linear != 0 || st.Boots != 2 {
		t.Errorf("after the replug: %d setpoints, %v m/s, %d boots; want no setpoint replayed", st.Setpoints, st.Linear, st.Boots)
	}
	alice.expectAck(alice.drive(0.2, 0), "ok", "")
	if got := s.metric("teleop_agent_device_reconnects_total", "device", "base"); got != 1 {
		t.Errorf("device_reconnects_total = %v", got)
	}
}

// A firmware reset: the device reboots (a new HELLO), the host handshakes
// again; status follows; nothing of before is replayed.
func TestAgentFirmwareReset(t *testing.T) {
	s := newStack(t, stackOptions{config: baseMappings})
	alice := s.operator("role=operator,name=alice")
	alice.expectAck(alice.drive(0.4, 0), "ok", "")
	s.robot.Faults().Reset()
	alice.waitStatus("the device handshaking again", func(st bridge.Status) bool { return st.Devices["base"].State == "connecting" })
	alice.waitStatus("the device ready again", func(st bridge.Status) bool { return st.Devices["base"].State == "ready" })
	waitFor(t, "the agent's STOP after the reset", func() bool { return s.robot.State().Executed >= 3 })
	alice.expectAck(alice.signal("lights", `"on":true`), "ok", "")
	if st := s.robot.State(); st.Setpoints != 0 || st.Linear != 0 {
		t.Errorf("after the reset: %d setpoints, %v m/s; want none replayed", st.Setpoints, st.Linear)
	}
	alice.expectAck(alice.drive(0.2, 0), "ok", "")
}

// Safety invariant 2, newest wins: while the device is busy with one
// setpoint, a flood of drives coalesces into one waiting slot; the device
// sees the one in flight and the newest, never a queue.
func TestAgentCoalescesSetpoints(t *testing.T) {
	s := newStack(t, stackOptions{tap: true, config: strings.Replace(baseMappings, "deadman: 500ms", "deadman: 5s", 1),
		device: "    reply_timeout: 8s\n    settings: {wdog_ms: 1000, tlm_hz: 10}\n"})
	alice := s.operator("role=operator,name=alice")
	alice.expectAck(alice.drive(0.1, 0), "ok", "")
	n := len(s.tap.lines())
	s.robot.Faults().Stall(true)
	first := alice.drive(0.11, 0)
	s.tap.waitLine(n, "the VEL in flight", func(l string) bool { return l == "VEL 0.110 0.000" })
	const flood = 100
	ids := make([]string, flood)
	for i := range ids {
		ids[i] = alice.drive(0.2+float64(i)/1000, 0)
	}
	for _, id := range ids[:flood-1] {
		alice.expectAck(id, "superseded", "superseded")
	}
	s.robot.Faults().Stall(false)
	alice.expectAck(first, "ok", "")
	alice.expectAck(ids[flood-1], "ok", "")
	var vels []string
	for _, l := range s.tap.lines()[n:] {
		if strings.HasPrefix(l, "VEL ") {
			vels = append(vels, l)
		}
	}
	if len(vels) != 2 || vels[1] != "VEL 0.299 0.000" {
		t.Errorf("VEL lines %q for %d drives; want the one in flight and the newest", vels, flood+1)
	}
}

// Telemetry goes to the lease holder only while there is one; to everyone
// otherwise.
func TestAgentTelemetryToTheLeaseHolder(t *testing.T) {
	s := newStack(t, stackOptions{config: leaseConfig + "outputs:\n  telemetry_interval: 0\n"})
	alice := s.operator("role=operator,name=alice")
	bob := s.operator("role=operator,name=bob")
	alice.wait("broadcast telemetry", func() bool { return len(alice.tlmTo) > 0 && alice.tlmTo[len(alice.tlmTo)-1] == "" })
	alice.expectAck(alice.signal("control", `"action":"acquire"`), "ok", "")
	alice.wait("telemetry to alice", func() bool { return len(alice.tlmTo) > 0 && alice.tlmTo[len(alice.tlmTo)-1] == alice.id })
	alice.mu.Lock()
	from := len(alice.tlmTo)
	alice.mu.Unlock()
	alice.wait("3 more", func() bool { return len(alice.tlmTo) >= from+3 })
	alice.mu.Lock()
	for i, to := range alice.tlmTo[from-1:] {
		if to != alice.id {
			t.Errorf("telemetry %d while alice holds the lease went to %q", i, to)
		}
	}
	alice.mu.Unlock()
	alice.expectAck(alice.signal("control", `"action":"release"`), "ok", "")
	bob.mu.Lock()
	nb := len(bob.tlmTo)
	bob.mu.Unlock()
	bob.wait("broadcast telemetry again", func() bool { return len(bob.tlmTo) > nb })
}

// Shutdown (the in-process half; cmd/teleop tests SIGTERM on a real
// process): the robot gets its STOP first, the signal still in flight is
// answered before the agent leaves, Run returns nil, and no goroutine of
// the agent outlives Run.
func TestAgentShutdown(t *testing.T) {
	s := newStack(t, stackOptions{tap: true, noStart: true, config: baseMappings,
		device: "    reply_timeout: 8s\n    settings: {wdog_ms: 1000, tlm_hz: 10}\n"})
	alice := s.operator("role=operator,name=alice")
	if _, err := alice.sess.Ping(context.Background()); err != nil { // alice's writer runs
		t.Fatal(err)
	}
	ignore := goleak.IgnoreCurrent()
	s.start()
	alice.expectAck(alice.drive(0.3, 0), "ok", "")
	s.robot.Faults().SetReplyDelay(500 * time.Millisecond)
	n := len(s.tap.lines())
	pending := alice.drive(0.5, 0)
	s.tap.waitLine(n, "the VEL in flight", func(l string) bool { return l == "VEL 0.500 0.000" })

	start := time.Now()
	s.stopAgent()
	t.Logf("Run returned %v after its context ended", time.Since(start).Round(time.Millisecond))
	a := alice.waitAck(pending)
	if a.Status != "sent" || a.code() != "shutting_down" {
		t.Errorf("the drive in flight at shutdown: %s; want sent (it was on the wire), shutting_down", a)
	}
	lines := s.tap.lines()[n:]
	if len(lines) < 2 || lines[0] != "VEL 0.500 0.000" || lines[1] != "STOP" {
		t.Errorf("lines at shutdown %q: want the STOP right after the last VEL", lines)
	}
	if s.agent.Connection() != "" {
		t.Error("Connection() after Run")
	}
	s.robot.Faults().SetReplyDelay(0)
	goleak.VerifyNone(t, ignore)
}

// A token file is re-read before each reconnect: a rotated token is used.
func TestAgentRereadsTheTokenFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	s := newStack(t, stackOptions{noStart: true, config: baseMappings, session: "  token_file: " + file + "\n"})
	write := func(data string) {
		if err := os.WriteFile(file, []byte(s.relay.token(token.Publisher, data)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("role=robot,name=first")
	s.start()
	alice := s.operator("role=operator,name=alice")
	robotData := func() string {
		for _, c := range alice.sess.Connections() {
			if c.ConnectionID == s.agent.Connection() {
				return c.Data
			}
		}
		return ""
	}
	if d := robotData(); d != "role=robot,name=first" {
		t.Fatalf("agent's connection data %q", d)
	}
	write("role=robot,name=rotated")
	s.relay.restart()
	waitFor(t, "the agent rejoined with the rotated token", func() bool {
		return alice.sess.Connected() && robotData() == "role=robot,name=rotated"
	})
}

// With an api key the agent mints its own token before every connect (with
// role=robot in its connection data), so it rejoins after its first
// token's lifetime has long passed.
func TestAgentMintsAFreshTokenForEachConnect(t *testing.T) {
	session := "  session_id: " + testSess + "\n  api_key: " + testKey + "\n  api_secret: " + testSecret +
		"\n  token_ttl: 1m\n  connection_data: name=minted\n"
	s := newStack(t, stackOptions{fake: true, config: baseMappings, session: session})
	alice := s.operator("role=operator,name=alice")
	var data string
	for _, c := range alice.sess.Connections() {
		if c.ConnectionID == s.agent.Connection() {
			data = c.Data
		}
	}
	if data != "role=robot,name=minted" {
		t.Errorf("minted connection data %q, want role=robot added", data)
	}
	s.advance(2 * time.Minute) // the first token has expired
	before := s.agent.Connection()
	s.relay.restart()
	deadline := time.Now().Add(waitLong)
	for s.agent.Connection() == "" || s.agent.Connection() == before {
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not rejoin with a fresh token")
		}
		s.fake.Advance(50 * time.Millisecond) // its reconnect backoff runs on the fake clock
		time.Sleep(time.Millisecond)
	}
}

// A session that ends for good (here: the backend removes the agent's
// connection) stops every device, and Run returns an error saying why.
func TestAgentSessionEndsForGood(t *testing.T) {
	s := newStack(t, stackOptions{tap: true, config: baseMappings})
	alice := s.operator("role=operator,name=alice")
	alice.expectAck(alice.drive(0.3, 0), "ok", "")
	n := len(s.tap.lines())
	s.relay.forceDisconnect(s.agent.Connection())
	select {
	case err := <-s.done:
		if err == nil || !strings.Contains(err.Error(), "session ended") {
			t.Errorf("Run: %v", err)
		}
		s.cancel()
		s.cancel = nil
	case <-time.After(waitLong):
		t.Fatal("Run did not return after the forced disconnect")
	}
	s.tap.waitLine(n, "STOP", isVerb("STOP"))
	if st := s.robot.State(); st.Linear != 0 {
		t.Errorf("robot at %v m/s", st.Linear)
	}
}
