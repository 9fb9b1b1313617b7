package bridge_test

// Tests of the agent's timers on a fake clock shared by the relay, the
// agent and the operators (the serial link and the simulated robot keep the
// wall clock: their time is not under test here).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/teleop/teleop/bridge"
	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/token"
)

// Safety invariant 1, deadman: no new setpoint within the deadman → exactly
// one stop, then silence.
func TestAgentDeadmanSendsExactlyOneStop(t *testing.T) {
	s := newStack(t, stackOptions{fake: true, tap: true, config: baseMappings})
	alice := s.operator("role=operator,name=alice")
	alice.expectAck(alice.drive(0.3, 0), "ok", "")
	n := len(s.tap.lines())

	s.fake.Advance(499 * time.Millisecond)
	if got := count(s.tap.lines()[n:], "STOP"); got != 0 {
		t.Fatalf("%d STOP before the deadman expired", got)
	}
	s.fake.Advance(time.Millisecond)
	s.tap.waitLine(n, "the deadman's STOP", isVerb("STOP"))
	waitFor(t, "the robot stopped", func() bool { return s.robot.State().Linear == 0 })

	s.advance(3 * time.Second) // silence: no more stops
	alice.expectAck(alice.drive(0.2, 0), "ok", "")
	lines := s.tap.lines()[n:]
	if got := count(lines, "STOP"); got != 1 {
		t.Errorf("%d STOP lines after the deadman (%q), want exactly 1", got, lines)
	}
	if got := s.metric("teleop_agent_deadman_stops_total", "device", "base"); got != 1 {
		t.Errorf("deadman_stops_total = %v", got)
	}
}

// Safety invariant 2: a drive older than its max age is dropped and acked
// rejected — here the age the relay reports (the sender's reconnect queue,
// queuedMs, as an operator's client replays its queue after a reconnect).
func TestAgentDropsDrivesOlderThanMaxAge(t *testing.T) {
	s := newStack(t, stackOptions{fake: true, tap: true, config: baseMappings})
	n := len(s.tap.lines())
	ws := rawClient(t, s, "role=operator,name=raw")
	for _, c := range []struct {
		id       string
		queuedMs int64
		status   string
	}{
		{"1", 400, "rejected"}, // replayed after a 400 ms outage
		{"2", 301, "rejected"},
		{"3", 250, "ok"}, // within max_age 300ms
	} {
		a := ws.signal(t, "drive", `{"id":`+c.id+`,"linear":0.5}`, c.queuedMs)
		if a.Status != c.status {
			t.Errorf("queuedMs %d: %s, want %s", c.queuedMs, a, c.status)
		}
		if c.status == "rejected" && (a.code() != "stale" || !strings.Contains(a.Reason, fmt.Sprintf("waited %d ms", c.queuedMs))) {
			t.Errorf("queuedMs %d: %s, want code stale and the age in the reason", c.queuedMs, a)
		}
	}
	if got := count(s.tap.lines()[n:], "VEL"); got != 1 {
		t.Errorf("%d VEL lines; only the fresh drive may run", got)
	}
}

// Safety invariant 2, time queued in the agent: a setpoint that waited
// behind a slow device longer than its max age is dropped, never run late.
func TestAgentDropsSetpointsStaleInItsQueue(t *testing.T) {
	s := newStack(t, stackOptions{fake: true, tap: true, config: baseMappings,
		device: "    reply_timeout: 8s\n    settings: {wdog_ms: 1000, tlm_hz: 10}\n"})
	alice := s.operator("role=operator,name=alice")
	alice.expectAck(alice.drive(0.1, 0), "ok", "")

	s.robot.Faults().Stall(true) // the robot stops reading: the next VEL waits for its reply
	n := len(s.tap.lines())
	first := alice.drive(0.2, 0)
	s.tap.waitLine(n, "the VEL that waits", func(l string) bool { return l == "VEL 0.200 0.000" })
	second := alice.drive(0.3, 0)
	alice.expectAck(alice.signal("drive", `"linear":"barrier"`), "rejected", "bad_value") // the dispatcher has taken the second
	s.fake.Advance(400 * time.Millisecond)
	s.robot.Faults().Stall(false)

	alice.expectAck(first, "ok", "")
	a := alice.expectAck(second, "rejected", "stale")
	if !strings.Contains(a.Reason, "agent 400 ms") {
		t.Errorf("reason %q: want the time it waited in the agent", a.Reason)
	}
	alice.expectAck(alice.drive(0.4, 0), "ok", "")
	for _, l := range s.tap.lines()[n:] {
		if l == "VEL 0.300 0.000" {
			t.Errorf("the stale setpoint reached the serial line")
		}
	}
}

// Safety invariant 4: the lease ends when its holder goes quiet for
// lease_idle; any signal from the holder keeps it.
func TestAgentLeaseEndsWhenTheHolderGoesQuiet(t *testing.T) {
	s := newStack(t, stackOptions{fake: true, config: leaseConfig})
	alice := s.operator("role=operator,name=alice")
	bob := s.operator("role=operator,name=bob")
	alice.expectAck(alice.signal("control", `"action":"acquire"`), "ok", "")
	s.fake.Advance(900 * time.Millisecond)
	alice.expectAck(alice.drive(0.1, 0), "ok", "") // keeps it
	s.advance(900 * time.Millisecond)
	if h := s.agent.Status().Lease.Holder; h != alice.id {
		t.Fatalf("holder %q after 0.9 s of quiet, want alice", h)
	}
	bob.expectAck(bob.signal("control", `"action":"acquire"`), "rejected", "lease")
	s.advance(150 * time.Millisecond) // 1.05 s since alice's drive
	bob.waitStatus("the lease free", func(st bridge.Status) bool { return st.Lease.Holder == "" })
	bob.expectAck(bob.signal("control", `"action":"acquire"`), "ok", "")
	alice.expectAck(alice.drive(0.1, 0), "rejected", "lease")
}

// A flood of drive signals: the rate limit refuses what is over it, with an
// ack each; the drives within it are coalesced (newest wins), and the
// newest one reaches the device.
func TestAgentFloodRateLimit(t *testing.T) {
	cfg := strings.Replace(baseMappings, "    kind: setpoint\n", "    kind: setpoint\n    rate_limit: 20/s\n", 1)
	s := newStack(t, stackOptions{fake: true, tap: true, config: cfg})
	alice := s.operator("role=operator,name=alice")
	n := len(s.tap.lines())
	const flood = 200
	ids := make([]string, flood)
	for i := range ids {
		ids[i] = alice.drive(float64(i+1)/1000, 0)
	}
	var ok, superseded, limited int
	for i, id := range ids {
		a := alice.waitAck(id)
		switch {
		case a.Status == "ok":
			ok++
		case a.Status == "superseded":
			superseded++
		case a.Status == "rejected" && a.code() == "rate_limited":
			limited++
			if i < 20 {
				t.Errorf("drive %d of the burst rate limited: %s", i+1, a)
			}
		default:
			t.Errorf("drive %d: %s", i+1, a)
		}
	}
	if limited != flood-20 || ok+superseded != 20 {
		t.Errorf("ok %d, superseded %d, rate limited %d; want 20 through (burst of 20/s) and %d limited", ok, superseded, limited, flood-20)
	}
	vels := 0
	last := ""
	for _, l := range s.tap.lines()[n:] {
		if strings.HasPrefix(l, "VEL ") {
			vels++
			last = l
		}
	}
	if vels != ok || last != "VEL 0.020 0.000" {
		t.Errorf("%d VEL lines (last %q) for %d ok acks; want one per ok and the newest accepted drive last", vels, last, ok)
	}
	if got := s.metric("teleop_agent_signals_total", "type", "drive", "outcome", "rejected"); got != flood-20 {
		t.Errorf("signals_total{drive,rejected} = %v", got)
	}
}

// Telemetry: the device's TLM lines as JSON (numbers as numbers), at most
// one per telemetry_interval.
func TestAgentTelemetryThrottled(t *testing.T) {
	s := newStack(t, stackOptions{fake: true, config: baseMappings + "outputs:\n  telemetry_interval: 1s\n"})
	alice := s.operator("role=operator,name=alice")
	// The first telemetry may have gone out before alice joined; from now
	// on each second of the agent's clock lets the newest TLM line through.
	var at []time.Time
	seen := 0
	for len(at) < 3 {
		s.fake.Advance(time.Second)
		alice.wait("telemetry", func() bool { return len(alice.telemetry) > seen })
		alice.mu.Lock()
		seen = len(alice.telemetry)
		m := alice.telemetry[seen-1]
		alice.mu.Unlock()
		at = append(at, s.fake.Now())
		if m["device"] != "base" || m["st"] != "RDY" {
			t.Errorf("telemetry %v", m)
		}
		for _, k := range []string{"t_ms", "vl", "vr", "bat", "x", "y", "th", "lseq"} {
			if _, ok := m[k].(float64); !ok {
				t.Errorf("telemetry %s = %#v, want a number", k, m[k])
			}
		}
	}
	alice.mu.Lock()
	defer alice.mu.Unlock()
	for i := 2; i < len(alice.tlmAt); i++ { // the first two may straddle alice's join
		if d := alice.tlmAt[i].Sub(alice.tlmAt[i-1]); d < time.Second {
			t.Errorf("telemetry %d came %v after the one before; the interval is 1s", i, d)
		}
	}
}

// ---- a raw protocol client, to send what a client's reconnect queue sends ----

type rawWS struct {
	ws *websocket.Conn
	n  int
}

func rawClient(t *testing.T, s *stack, data string) *rawWS {
	t.Helper()
	u := "ws" + strings.TrimPrefix(s.relay.url(), "http") + "/v1/connect"
	ws, _, err := websocket.DefaultDialer.Dial(u, http.Header{"Authorization": {"Bearer " + s.relay.token(token.Publisher, data)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	var f signaling.Frame
	if err := ws.ReadJSON(&f); err != nil || f.Op != signaling.OpWelcome {
		t.Fatalf("welcome: %+v %v", f, err)
	}
	return &rawWS{ws: ws}
}

// signal sends a signal frame with queuedMs and returns the agent's ack
// (found by the data's id).
func (r *rawWS) signal(t *testing.T, typ, data string, queuedMs int64) ack {
	t.Helper()
	r.n++
	var in struct {
		ID json.RawMessage `json:"id"`
	}
	json.Unmarshal([]byte(data), &in)
	if err := r.ws.WriteJSON(signaling.Frame{Op: signaling.OpSignal, ID: fmt.Sprint(r.n), Type: typ, Data: data, QueuedMs: queuedMs}); err != nil {
		t.Fatal(err)
	}
	r.ws.SetReadDeadline(time.Now().Add(waitLong))
	for {
		var f signaling.Frame
		if err := r.ws.ReadJSON(&f); err != nil {
			t.Fatalf("waiting for the ack of %s: %v", data, err)
		}
		if f.Op != signaling.OpSignal || f.Type != "ack" {
			continue
		}
		var a ack
		if json.Unmarshal([]byte(f.Data), &a) == nil && string(a.ID) == string(in.ID) {
			a.raw = f.Data
			return a
		}
	}
}

// An operator that vanishes (its network goes, no goodbye) while driving
// with the lease: the deadman stops the robot once; when the relay's grace
// for its connection ends, the lease is released.
func TestAgentOperatorVanishes(t *testing.T) {
	cfg := strings.Replace(leaseConfig, "lease_idle: 1s", "lease_idle: 10s", 1)
	s := newStack(t, stackOptions{fake: true, tap: true, config: cfg, grace: 2 * time.Second})
	proxy := newCutProxy(t, s.relay.url)
	alice := s.operatorWith("role=operator,name=alice", func(o *signaling.Options) { o.NetDialContext = proxy.dial })
	bob := s.operator("role=operator,name=bob")
	alice.expectAck(alice.signal("control", `"action":"acquire"`), "ok", "")
	alice.expectAck(alice.drive(0.4, 0), "ok", "")
	bob.waitStatus("alice holding the lease", func(st bridge.Status) bool { return st.Lease.Holder == alice.id })
	n := len(s.tap.lines())

	proxy.setRefuse(true)
	proxy.cut()
	s.relay.waitSockets(2) // the agent's and bob's: alice's connection is in its grace period
	s.fake.Advance(500 * time.Millisecond)
	s.tap.waitLine(n, "the deadman's STOP", isVerb("STOP"))
	s.advance(2100 * time.Millisecond) // the relay's grace for alice's connection ends
	bob.waitStatus("the lease free", func(st bridge.Status) bool { return st.Lease.Holder == "" })
	bob.expectAck(bob.signal("control", `"action":"acquire"`), "ok", "")
	if got := count(s.tap.lines()[n:], "STOP"); got != 1 {
		t.Errorf("%d STOP lines; want the deadman's one", got)
	}
}
