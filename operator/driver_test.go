package operator_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/teleop/teleop/clock"
	"github.com/teleop/teleop/operator"
	"github.com/teleop/teleop/signaling"
)

const (
	me    = "conn-me-0001"
	robot = "conn-robot-01"
	alice = "conn-alice-01"
)

// sent is one signal the Driver handed to Send, with the fake time of it.
type sent struct {
	signaling.Signal
	at time.Duration // since the start of the test
}

func (s sent) String() string {
	return fmt.Sprintf("%v %s %s to=%q noRetry=%v", s.at, s.Type, s.Data, s.To, s.NoRetry)
}

// data decodes the signal's JSON data.
func (s sent) data(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s.Data), &m); err != nil {
		t.Fatalf("%v: data is not JSON: %v", s, err)
	}
	return m
}

type harness struct {
	t     *testing.T
	clk   *clock.Fake
	start time.Time
	d     *operator.Driver
	out   []sent
}

var sessionConns = []signaling.Connection{
	{ConnectionID: me, Data: "role=operator,name=me"},
	{ConnectionID: alice, Data: "role=operator,name=alice"},
	{ConnectionID: robot, Data: "role=robot,name=rover-1"},
}

// newHarness returns a connected Driver on a fake clock, in a session with
// one robot, and records what it sends.
func newHarness(t *testing.T, o *operator.Options) *harness {
	t.Helper()
	h := &harness{t: t, clk: clock.NewFake()}
	h.start = h.clk.Now()
	var opts operator.Options
	if o != nil {
		opts = *o
	}
	opts.Clock = h.clk
	opts.Send = func(s signaling.Signal) { h.out = append(h.out, sent{s, h.clk.Now().Sub(h.start)}) }
	h.d = operator.NewDriver(&opts)
	h.d.SetSelf(me)
	h.d.SetConnections(sessionConns)
	h.d.SetLink(operator.LinkConnected, "")
	return h
}

func (h *harness) now() time.Duration { return h.clk.Now().Sub(h.start) }

// advanceTo moves the fake clock to at since the start.
func (h *harness) advanceTo(at time.Duration) { h.clk.Advance(at - h.now()) }

// hold presses k at from and repeats it every every until to (the last
// repeat at to), as a keyboard's auto-repeat does after its delay.
func (h *harness) hold(k operator.Key, from, delay, every, to time.Duration) {
	h.advanceTo(from)
	h.d.Key(k)
	for at := from + delay; at <= to; at += every {
		h.advanceTo(at)
		h.d.Key(k)
	}
}

// take returns what was sent since the last take.
func (h *harness) take() []sent {
	out := h.out
	h.out = nil
	return out
}

func types(ss []sent) string {
	var b []string
	for _, s := range ss {
		b = append(b, s.Type)
	}
	return strings.Join(b, " ")
}

func TestHeldKeyDrivesAtRateThenOneStopThenSilence(t *testing.T) {
	const ms = time.Millisecond
	for name, tc := range map[string]struct {
		delay, every, last time.Duration // auto-repeat; the last repeat
		stopAt             time.Duration
	}{
		// A tap: no repeat. The key counts as held for Hold (600 ms).
		"tap": {delay: time.Hour, last: 0, stopAt: 600 * ms},
		// Held 1.5 s: repeats from 500 ms every 40 ms; released RepeatHold
		// (300 ms) after the last repeat, at the next tick.
		"held": {delay: 500 * ms, every: 40 * ms, last: 1500 * ms, stopAt: 1800 * ms},
		// A slow repeat delay just inside Hold.
		"slow repeat delay": {delay: 590 * ms, every: 33 * ms, last: 1250 * ms, stopAt: 1550 * ms},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, nil)
			if tc.every == 0 {
				tc.every = time.Hour
			}
			h.hold('w', 0, tc.delay, tc.every, tc.last)
			h.advanceTo(tc.last + 10*time.Second)
			out := h.take()

			if len(out) == 0 {
				t.Fatal("nothing sent")
			}
			stop := out[len(out)-1]
			if stop.Type != "stop" || stop.at != tc.stopAt {
				t.Fatalf("last signal %v, want the stop at %v", stop, tc.stopAt)
			}
			drives := out[:len(out)-1]
			if want := int(tc.stopAt / operator.DefaultRate); len(drives) != want {
				t.Fatalf("%d drives before the stop, want %d (one per 50 ms): %v", len(drives), want, types(out))
			}
			for i, s := range drives {
				if s.Type != "drive" || s.at != time.Duration(i)*operator.DefaultRate {
					t.Fatalf("signal %d is %v, want a drive at %v", i, s, time.Duration(i)*operator.DefaultRate)
				}
				if !s.NoRetry || s.To != robot {
					t.Fatalf("drive %v: want NoRetry to the robot", s)
				}
				if m := s.data(t); m["linear"] != 0.25 || m["angular"] != 0.0 || m["id"] != float64(i+1) {
					t.Fatalf("drive %d data %s, want id %d linear 0.25 angular 0", i, s.Data, i+1)
				}
			}
			if stop.NoRetry || stop.To != robot || stop.Data != fmt.Sprintf(`{"id":%d}`, len(drives)+1) {
				t.Fatalf("stop %v: want {\"id\":%d} to the robot, kept for a reconnect", stop, len(drives)+1)
			}
			if v := h.d.View(); v.Command.Holding || v.Command.Type != "stop" {
				t.Fatalf("view command %+v after the release", v.Command)
			}
		})
	}
}

func TestIdleSendsNothing(t *testing.T) {
	h := newHarness(t, nil)
	h.advanceTo(time.Hour)
	for _, k := range []operator.Key{'1', '+', '-', 'x', KeyRune('?')} {
		h.d.Key(k)
	}
	h.advanceTo(2 * time.Hour)
	if out := h.take(); len(out) != 0 {
		t.Fatalf("an idle driver sent %v", out)
	}
	if h.clk.Waiters() != 0 {
		t.Fatalf("%d timers armed while idle", h.clk.Waiters())
	}
}

// KeyRune is a Key for a rune, for readability.
func KeyRune(r rune) operator.Key { return operator.Key(r) }

func TestKeysAndSpeedSteps(t *testing.T) {
	for name, tc := range map[string]struct {
		before      []operator.Key
		key         operator.Key
		lin, ang    float64
		step, steps int
	}{
		"w":                  {key: 'w', lin: 0.25, step: 2},
		"s":                  {key: 's', lin: -0.25, step: 2},
		"a turns left":       {key: 'a', ang: 0.75, step: 2},
		"d turns right":      {key: 'd', ang: -0.75, step: 2},
		"up":                 {key: operator.KeyUp, lin: 0.25, step: 2},
		"down":               {key: operator.KeyDown, lin: -0.25, step: 2},
		"left":               {key: operator.KeyLeft, ang: 0.75, step: 2},
		"right":              {key: operator.KeyRight, ang: -0.75, step: 2},
		"W one step faster":  {key: 'W', lin: 0.375, step: 2},
		"shift+left":         {key: operator.KeyShiftLeft, ang: 1.125, step: 2},
		"plus":               {before: []operator.Key{'+'}, key: 'w', lin: 0.375, step: 3},
		"equals is plus":     {before: []operator.Key{'='}, key: 'w', lin: 0.375, step: 3},
		"plus stops at top":  {before: []operator.Key{'+', '+', '+', '+'}, key: 'w', lin: 0.5, step: 4},
		"top and shift":      {before: []operator.Key{'4'}, key: 'W', lin: 0.5, step: 4},
		"minus":              {before: []operator.Key{'-'}, key: 's', lin: -0.125, step: 1},
		"minus stops at 1":   {before: []operator.Key{'-', '-', '-'}, key: 'a', ang: 0.375, step: 1},
		"digit":              {before: []operator.Key{'3'}, key: 'd', ang: -1.125, step: 3},
		"digit beyond steps": {before: []operator.Key{'9'}, key: 'w', lin: 0.25, step: 2},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, nil)
			for _, k := range tc.before {
				h.d.Key(k)
			}
			h.d.Key(tc.key)
			out := h.take()
			if len(out) != 1 || out[0].Type != "drive" {
				t.Fatalf("sent %v, want one drive", out)
			}
			m := out[0].data(t)
			if m["linear"] != tc.lin || m["angular"] != tc.ang {
				t.Fatalf("drive %s, want linear %v angular %v", out[0].Data, tc.lin, tc.ang)
			}
			if v := h.d.View(); v.Step != tc.step || v.Steps != 4 {
				t.Fatalf("step %d/%d, want %d/4", v.Step, v.Steps, tc.step)
			}
		})
	}
}

func TestSpeedChangeWhileHeldAppliesToTheNextDrive(t *testing.T) {
	h := newHarness(t, nil)
	h.d.Key('w')
	h.d.Key('+')
	h.advanceTo(50 * time.Millisecond)
	out := h.take()
	if types(out) != "drive drive" || out[1].data(t)["linear"] != 0.375 {
		t.Fatalf("sent %v, want a drive at 0.25 and then one at 0.375", out)
	}
}

func TestOtherKeyWhileHeldSwitchesWithoutAStop(t *testing.T) {
	h := newHarness(t, nil)
	h.d.Key('w')
	h.advanceTo(20 * time.Millisecond)
	h.d.Key('a') // the new key drives at once, the rate restarts from here
	h.advanceTo(70 * time.Millisecond)
	out := h.take()
	if types(out) != "drive drive drive" {
		t.Fatalf("sent %v", out)
	}
	if m := out[1].data(t); out[1].at != 20*time.Millisecond || m["linear"] != 0.0 || m["angular"] != 0.75 {
		t.Fatalf("second drive %v, want a turn at 20ms", out[1])
	}
	if out[2].at != 70*time.Millisecond {
		t.Fatalf("third drive at %v, want 70ms", out[2].at)
	}
}

func TestSpaceStops(t *testing.T) {
	h := newHarness(t, nil)
	h.d.Key(' ') // idle: an explicit stop is still sent
	h.d.Key('w')
	h.advanceTo(120 * time.Millisecond)
	h.d.Key(' ')
	h.advanceTo(5 * time.Second)
	if got, want := types(h.take()), "stop drive drive drive stop"; got != want {
		t.Fatalf("sent %q, want %q", got, want)
	}
	// Space ended the key's auto-repeat: the next press drives at once.
	h.d.Key('w')
	if got := types(h.take()); got != "drive" {
		t.Fatalf("after space, w sent %q", got)
	}
}

func TestEstop(t *testing.T) {
	h := newHarness(t, nil)
	h.d.Key('w')
	h.advanceTo(100 * time.Millisecond)
	h.d.Key('e')
	h.advanceTo(10 * time.Second)
	out := h.take()
	if types(out) != "drive drive drive estop" {
		t.Fatalf("sent %v: want the drives, then the e-stop and no stop", out)
	}
	es := out[3]
	if es.To != "" || es.NoRetry || es.Data != `{"id":4}` {
		t.Fatalf("e-stop %v: want {\"id\":4} to everyone, kept for a reconnect", es)
	}
	if v := h.d.View(); !v.Estop || v.EstopBy != "you" || v.Command.Type != "estop" {
		t.Fatalf("view: estop %v by %q, command %+v", v.Estop, v.EstopBy, v.Command)
	}

	// Latched: no drive until cleared.
	h.d.Key('w')
	if out := h.take(); len(out) != 0 {
		t.Fatalf("drove while the e-stop is latched: %v", out)
	}
	if n := h.d.View().Note.Text; !strings.Contains(n, "press c") {
		t.Fatalf("note %q does not say how to clear", n)
	}
	h.d.Received(signaling.Signal{Type: "ack", From: robot, To: me, Data: `{"id":4,"type":"estop","status":"ok"}`})

	h.advanceTo(20 * time.Second)
	h.d.Key('c')
	out = h.take()
	if len(out) != 1 || out[0].Type != "clear" || out[0].To != robot || !out[0].NoRetry || out[0].Data != `{"id":5}` {
		t.Fatalf("c sent %v, want one clear to the robot, never queued", out)
	}
	if !h.d.View().Estop {
		t.Fatal("the e-stop shows released before the robot acked the clear")
	}
	h.d.Received(signaling.Signal{Type: "ack", From: robot, To: me, Data: `{"id":5,"type":"clear","status":"ok"}`})
	if h.d.View().Estop {
		t.Fatal("the e-stop still shows latched after the clear's ack")
	}
	h.d.Key('w')
	if got := types(h.take()); got != "drive" {
		t.Fatalf("after the clear, w sent %q", got)
	}
}

func TestEstopIsSentWhenNoRobotAndWhileReconnecting(t *testing.T) {
	h := newHarness(t, nil)
	h.d.SetConnections(sessionConns[:2])
	h.d.SetLink(operator.LinkReconnecting, "read: connection reset")
	h.d.Key(operator.KeyEsc)
	out := h.take()
	if len(out) != 1 || out[0].Type != "estop" || out[0].NoRetry || out[0].To != "" {
		t.Fatalf("Esc sent %v, want an e-stop to everyone, kept for the reconnect", out)
	}
}

func TestLinkChangeEndsTheHold(t *testing.T) {
	h := newHarness(t, nil)
	const ms = time.Millisecond
	h.d.Key('w')
	h.advanceTo(500 * ms)
	h.d.Key('w') // auto-repeat started
	h.advanceTo(520 * ms)
	h.d.SetLink(operator.LinkReconnecting, "read: EOF")
	out := h.take()
	if got := types(out); got != "drive drive drive drive drive drive drive drive drive drive drive stop" {
		t.Fatalf("sent %q", got)
	}
	if s := out[len(out)-1]; s.NoRetry || s.To != robot {
		t.Fatalf("stop %v: want it kept for the reconnect", s)
	}
	// The key is still held: repeats arrive, nothing is sent while
	// reconnecting, nor after the reconnect until the key is released.
	for at := 540 * ms; at <= 1500*ms; at += 40 * ms {
		h.advanceTo(at)
		if at == 1020*ms {
			h.d.SetLink(operator.LinkConnected, "")
		}
		h.d.Key('w')
	}
	h.advanceTo(10 * time.Second)
	if out := h.take(); len(out) != 0 {
		t.Fatalf("drove with a key held across the link change: %v", out)
	}
	h.d.Key('w') // a new press
	if got := types(h.take()); got != "drive" {
		t.Fatalf("a new press sent %q (note %q)", got, h.d.View().Note.Text)
	}
}

func TestNoDriveWhileNotConnected(t *testing.T) {
	for _, s := range []operator.LinkState{operator.LinkConnecting, operator.LinkReconnecting, operator.LinkDisconnected} {
		t.Run(s.String(), func(t *testing.T) {
			h := newHarness(t, nil)
			h.d.SetLink(s, "")
			h.d.Key('w')
			h.advanceTo(time.Minute)
			if out := h.take(); len(out) != 0 {
				t.Fatalf("sent %v", out)
			}
			if n := h.d.View().Note.Text; !strings.Contains(n, s.String()) {
				t.Fatalf("note %q", n)
			}
		})
	}
}

func TestRobotChoice(t *testing.T) {
	rover2 := signaling.Connection{ConnectionID: "conn-robot-02", Data: "role=robot,name=rover-2"}
	for name, tc := range map[string]struct {
		conns   []signaling.Connection
		to      string
		robot   string
		problem string
	}{
		"none":                {conns: sessionConns[:2], problem: "No robot in this session yet — start the agent"},
		"one":                 {conns: sessionConns, robot: robot},
		"several":             {conns: append(sessionConns[:3:3], rover2), problem: "2 robots in this session: pass --to with a name or ID (rover-1 conn-rob…, rover-2 conn-rob…)"},
		"several, --to ID":    {conns: append(sessionConns[:3:3], rover2), to: "conn-robot-02", robot: "conn-robot-02"},
		"several, --to name":  {conns: append(sessionConns[:3:3], rover2), to: "rover-1", robot: robot},
		"--to absent":         {conns: sessionConns, to: "rover-9", problem: "rover-9 is not in this session — is the agent running?"},
		"--to an operator ID": {conns: sessionConns, to: alice, robot: alice},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, &operator.Options{To: tc.to})
			h.d.SetConnections(tc.conns)
			v := h.d.View()
			if v.Robot.ID != tc.robot || v.Problem != tc.problem {
				t.Fatalf("robot %q, problem %q; want %q, %q", v.Robot.ID, v.Problem, tc.robot, tc.problem)
			}
			h.d.Key('w')
			h.d.Key(' ')
			h.d.Key('c')
			h.d.Key('l')
			out := h.take()
			if tc.robot == "" && len(out) != 0 {
				t.Fatalf("sent %v with no robot to drive", out)
			}
			if tc.robot != "" && types(out) != "drive stop clear control" {
				t.Fatalf("sent %v", out)
			}
		})
	}
}

func TestRobotLeavingEndsTheHoldWithAStopToIt(t *testing.T) {
	h := newHarness(t, nil)
	h.d.Key('w')
	h.advanceTo(60 * time.Millisecond)
	h.d.SetConnections(sessionConns[:2])
	out := h.take()
	if types(out) != "drive drive stop" || out[2].To != robot {
		t.Fatalf("sent %v, want a stop to the robot that left", out)
	}
	if v := h.d.View(); v.Problem != "No robot in this session yet — start the agent" {
		t.Fatalf("problem %q", v.Problem)
	}
}

func TestTelemetryMakesAnAgent(t *testing.T) {
	h := newHarness(t, nil)
	anon := signaling.Connection{ConnectionID: "conn-anon-001", Data: ""}
	h.d.SetConnections([]signaling.Connection{sessionConns[0], anon})
	if v := h.d.View(); v.Robot.ID != "" {
		t.Fatalf("robot %q before any telemetry", v.Robot.ID)
	}
	h.d.Received(signaling.Signal{Type: "telemetry", From: anon.ConnectionID, Data: `{"st":"RDY","bat":"12.1","vl":0.2,"vr":0.3,"x":1,"y":2,"th":0.5}`})
	v := h.d.View()
	if v.Robot.ID != anon.ConnectionID || !v.HasTelemetry || v.Telemetry.Bat != (operator.Value{V: 12.1, OK: true}) || v.Telemetry.St != "RDY" {
		t.Fatalf("view %+v", v)
	}
	// Telemetry of someone else is not shown.
	h.d.Received(signaling.Signal{Type: "telemetry", From: me, Data: `{"bat":1}`})
	if v := h.d.View(); v.Telemetry.Bat.V != 12.1 {
		t.Fatalf("battery %v after another connection's telemetry", v.Telemetry.Bat)
	}
}

func TestAcks(t *testing.T) {
	h := newHarness(t, nil)
	h.d.Key('w')
	h.advanceTo(7 * time.Millisecond)
	h.d.Received(signaling.Signal{Type: "ack", From: robot, To: me, Data: `{"id":1,"type":"drive","status":"ok","device_ms":2.5}`})
	v := h.d.View()
	if a := v.LastAck; a == nil || a.ID != "1" || a.Latency != 7*time.Millisecond || !a.HasLatency || a.DeviceMs.V != 2.5 || v.Acked != 1 {
		t.Fatalf("last ack %+v, acked %d", a, v.Acked)
	}
	h.d.Key(' ')
	h.d.Received(signaling.Signal{Type: "ack", From: robot, To: me,
		Data: `{"id":2,"type":"stop","status":"rejected","code":"lease","reason":"lease held by ` + alice + `"}`})
	v = h.d.View()
	if r := v.LastReject; r == nil || r.Reason != "lease held by alice" || r.Code != "lease" || v.Rejected != 1 {
		t.Fatalf("last reject %+v", r)
	}
	// Unknown ids (another operator's, in an ack to everyone) are ignored.
	h.d.Received(signaling.Signal{Type: "ack", From: robot, Data: `{"id":99,"status":"rejected"}`})
	if v := h.d.View(); v.Rejected != 1 || v.LastAck.ID != "2" {
		t.Fatalf("an unknown ack counted: %+v", v.LastAck)
	}
}

func TestStatus(t *testing.T) {
	h := newHarness(t, nil)
	h.d.Key('w')
	h.d.Received(signaling.Signal{Type: "status", From: robot, Data: `{"estop":{"latched":true,"by":"` + alice + `"},"lease":{"mode":"exclusive","holder":"` + alice + `"}}`})
	if got := types(h.take()); got != "drive stop" {
		t.Fatalf("someone else's e-stop: sent %q, want the hold's stop", got)
	}
	v := h.d.View()
	if !v.Estop || v.EstopBy != "alice" || !v.HasLease || v.LeaseHolder != "alice" {
		t.Fatalf("view estop %v by %q, lease %q", v.Estop, v.EstopBy, v.LeaseHolder)
	}
	h.advanceTo(time.Second)
	h.d.Key('w')
	if out := h.take(); len(out) != 0 {
		t.Fatalf("drove during alice's e-stop: %v", out)
	}
	h.d.Received(signaling.Signal{Type: "status", From: robot, Data: `{"estop":false,"lease":"` + me + `"}`})
	v = h.d.View()
	if v.Estop || v.LeaseHolder != "you" {
		t.Fatalf("view estop %v lease %q", v.Estop, v.LeaseHolder)
	}
	h.advanceTo(2 * time.Second)
	h.d.Key('l') // we hold it: release
	h.d.Key('w')
	out := h.take()
	if types(out) != "control drive" || out[0].data(t)["action"] != "release" {
		t.Fatalf("sent %v", out)
	}
}

func TestStatusBeforeOurEstopIsAckedKeepsItLatched(t *testing.T) {
	h := newHarness(t, nil)
	h.d.Key('e')
	h.d.Received(signaling.Signal{Type: "status", From: robot, Data: `{"estop":false}`})
	if !h.d.View().Estop {
		t.Fatal("a status older than our e-stop released it")
	}
	h.d.Received(signaling.Signal{Type: "ack", From: robot, To: me, Data: `{"id":1,"type":"estop"}`})
	h.d.Received(signaling.Signal{Type: "status", From: robot, Data: `{"estop":{"latched":false}}`})
	if h.d.View().Estop {
		t.Fatal("a status after the e-stop's ack says released, the view does not")
	}
}

func TestControlAcquire(t *testing.T) {
	h := newHarness(t, nil)
	h.d.Key('l')
	out := h.take()
	if len(out) != 1 || out[0].Type != "control" || out[0].Data != `{"id":1,"action":"acquire"}` || !out[0].NoRetry || out[0].To != robot {
		t.Fatalf("l sent %v", out)
	}
	h.d.Received(signaling.Signal{Type: "ack", From: robot, To: me, Data: `{"id":1,"type":"control","status":"ok"}`})
	if v := h.d.View(); v.LeaseHolder != "you" {
		t.Fatalf("lease holder %q after the acquire's ack", v.LeaseHolder)
	}
	h.d.Key('l')
	if out := h.take(); len(out) != 1 || out[0].data(t)["action"] != "release" {
		t.Fatalf("second l sent %v", out)
	}
}

func TestSendFailedIsShown(t *testing.T) {
	h := newHarness(t, nil)
	h.d.SendFailed(signaling.Signal{Type: "drive"}, &signaling.Error{Code: 404, Message: "no connection " + robot})
	if n := h.d.View().Note.Text; n != "drive not sent: 404 no connection rover-1" {
		t.Fatalf("note %q", n)
	}
}

func TestCloseSendsTheStop(t *testing.T) {
	h := newHarness(t, nil)
	h.d.Key('w')
	h.d.Close()
	h.advanceTo(time.Minute)
	if got := types(h.take()); got != "drive stop" {
		t.Fatalf("sent %q", got)
	}
	if h.clk.Waiters() != 0 {
		t.Fatalf("%d timers left after Close", h.clk.Waiters())
	}
}

// An agent sends its status to a newcomer as it joins, which can be before
// the newcomer has chosen it as the robot; that status must still count.
func TestStatusBeforeTheRobotIsChosen(t *testing.T) {
	h := newHarness(t, nil)
	h.d.SetConnections(sessionConns[:2]) // the robot has not joined yet
	const rover2 = "c-rover-2"
	h.d.Received(signaling.Signal{Type: "status", From: rover2, Data: `{"lease":{"mode":"exclusive","holder":"` + alice + `"}}`})
	if v := h.d.View(); v.HasLease {
		t.Fatalf("a status from no robot was applied: lease %q", v.LeaseHolder)
	}
	h.d.SetConnections(append(sessionConns[:2:2], signaling.Connection{ConnectionID: rover2, Data: "role=robot,name=rover-2"}))
	if v := h.d.View(); !v.HasLease || v.LeaseHolder != "alice" {
		t.Fatalf("after choosing the robot: lease known %v, holder %q; want alice from its earlier status", v.HasLease, v.LeaseHolder)
	}

	// A connection that left takes its status with it.
	h.d.SetConnections(sessionConns[:2])
	h.d.SetConnections(append(sessionConns[:2:2], signaling.Connection{ConnectionID: rover2, Data: "role=robot,name=rover-2"}))
	if v := h.d.View(); v.HasLease {
		t.Fatalf("a departed robot's status was applied again on its return: %q", v.LeaseHolder)
	}
}
