package relay_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/relay"
	"github.com/teleop/teleop/signaling/token"
)

// waitState waits until connection id is in state (active, grace, gone).
func (h *harness) waitState(id, state string) {
	h.t.Helper()
	eventually(h.t, "connection "+id+" "+state, func() bool { return h.relay.ConnStateForTest(testSess, id) == state })
}

// TestResume: a dropped socket leaves the connection in its grace period;
// signals to it succeed and are delivered in order on resume, with their age;
// peers see nothing.
func TestResume(t *testing.T) {
	h := newHarness(t, nil)
	a := h.join(testSess, token.Publisher, "name=a")
	b := h.join(testSess, token.Publisher, "name=b")
	created := a.readOp(signaling.OpConnectionCreated) // seq 1
	id := b.signal(a.id, "one", "1")
	b.result(id)
	if f := a.readOp(signaling.OpSignal); f.Seq != 2 || f.Data != "1" {
		t.Fatalf("a got %+v", f)
	}
	a.drop()
	h.waitState(a.id, "grace")

	for _, d := range []string{"2", "3", "4"} {
		id := b.signal(a.id, "n", d)
		if r := b.result(id); r.Code != 200 {
			t.Fatalf("send to a connection in its grace period: %+v", r)
		}
	}
	h.clock.Advance(5 * time.Second)
	a2 := h.resume(a, 2)
	w := a2.welcome
	if !w.Resumed || w.Connection.ConnectionID != a.id || w.ResumeKey == a.welcome.ResumeKey || w.Seq != 5 || w.Missed != 0 {
		t.Fatalf("resumed welcome = %+v", w)
	}
	if len(w.Connections) != 2 || w.Connections[1].ConnectionID != created.Connection.ConnectionID {
		t.Fatalf("resumed welcome lists %+v", w.Connections)
	}
	for i, d := range []string{"2", "3", "4"} {
		f := a2.readOp(signaling.OpSignal)
		if f.Data != d || f.Seq != uint64(3+i) || f.AgeMs != 5000 || signaling.Deref(f.From) != b.id || f.To != a.id {
			t.Fatalf("replayed %+v, want data %s seq %d ageMs 5000", f, d, 3+i)
		}
	}
	// Live again: new signals flow without age, b saw no presence change.
	id = b.signal("", "live", "")
	b.result(id)
	if f := a2.readOp(signaling.OpSignal); f.Seq != 6 || f.AgeMs != 0 || f.Type != "live" {
		t.Fatalf("after resume a got %+v", f)
	}
	if f := b.readOp(signaling.OpSignal); f.Type != "live" {
		t.Fatalf("b got %+v before its own signal", f)
	}
	// The old key is spent; resuming with it is a new connection.
	a3 := h.dial(url.Values{"resume": {a.welcome.ResumeKey}, "token": {h.token(testSess, token.Publisher, "")}})
	if a3.welcome.Resumed || a3.id == a.id {
		t.Fatalf("old resume key resumed: %+v", a3.welcome)
	}
}

// TestResumeQueuedAge: queuedMs adds to the age the relay measures.
func TestResumeQueuedAge(t *testing.T) {
	h := newHarness(t, nil)
	a := h.join(testSess, token.Publisher, "")
	a.write(signaling.Frame{Op: signaling.OpSignal, ID: "q", Type: "drive", QueuedMs: 1500})
	a.result("q")
	if f := a.readOp(signaling.OpSignal); f.AgeMs != 1500 {
		t.Fatalf("ageMs = %d, want 1500", f.AgeMs)
	}
}

// TestGraceEnds: peers learn of a dropped connection only when its grace
// period ends, with reason networkDisconnected; its key no longer resumes.
func TestGraceEnds(t *testing.T) {
	h := newHarness(t, &relay.Options{Grace: 3 * time.Second})
	a := h.join(testSess, token.Publisher, "")
	b := h.join(testSess, token.Publisher, "")
	a.readOp(signaling.OpConnectionCreated)
	a.drop()
	h.waitState(a.id, "grace")
	h.clock.Advance(2999 * time.Millisecond)
	b.write(signaling.Frame{Op: signaling.OpPing, ID: "before"})
	if f := b.read(); f.Op != signaling.OpPong {
		t.Fatalf("b got %+v before the grace period ended", f)
	}
	h.clock.Advance(time.Millisecond)
	f := b.readOp(signaling.OpConnectionDestroyed)
	if f.Reason != signaling.ReasonNetworkDisconnected || f.Connection.ConnectionID != a.id || f.Seq != 1 {
		t.Fatalf("b got %+v", f)
	}
	if s := h.relay.ConnStateForTest(testSess, a.id); s != "gone" {
		t.Fatalf("a is %s", s)
	}
	a2 := h.dial(url.Values{"resume": {a.welcome.ResumeKey}, "last": {"1"}, "token": {h.token(testSess, token.Publisher, "")}})
	if a2.welcome.Resumed || a2.id == a.id {
		t.Fatalf("resumed after the grace period: %+v", a2.welcome)
	}
}

// TestResumeWithoutToken: the key alone resumes within the grace period,
// even once the token has expired.
func TestResumeWithoutToken(t *testing.T) {
	h := newHarness(t, &relay.Options{Grace: 48 * time.Hour})
	a := h.join(testSess, token.Publisher, "")
	a.drop()
	h.waitState(a.id, "grace")
	h.clock.Advance(25 * time.Hour) // past the token's 24 h
	a2 := h.resume(a, 0)
	if !a2.welcome.Resumed {
		t.Fatalf("welcome %+v", a2.welcome)
	}
}

// TestDuplicateSendAfterResume: a send repeated with the same id on the new
// socket is answered from the result cache and not delivered twice.
func TestDuplicateSendAfterResume(t *testing.T) {
	h := newHarness(t, nil)
	a := h.join(testSess, token.Publisher, "")
	b := h.join(testSess, token.Publisher, "")
	a.readOp(signaling.OpConnectionCreated)
	a.write(signaling.Frame{Op: signaling.OpSignal, ID: "once", To: b.id, Type: "drive", Data: "1"})
	if f := b.readOp(signaling.OpSignal); f.Data != "1" {
		t.Fatalf("b got %+v", f)
	}
	a.drop() // before a read its result
	h.waitState(a.id, "grace")
	a2 := h.resume(a, 1)
	a2.write(signaling.Frame{Op: signaling.OpSignal, ID: "once", To: b.id, Type: "drive", Data: "1"})
	if r := a2.result("once"); r.Code != 200 {
		t.Fatalf("repeated send answered %+v", r)
	}
	// Also a failed send is remembered with its code.
	a2.write(signaling.Frame{Op: signaling.OpSignal, ID: "bad", Type: "bad type"})
	a2.write(signaling.Frame{Op: signaling.OpSignal, ID: "bad", Type: "good"})
	if r := a2.result("bad"); r.Code != 400 {
		t.Fatalf("first bad: %+v", r)
	}
	if r := a2.result("bad"); r.Code != 400 {
		t.Fatalf("repeated bad: %+v", r)
	}
	b.write(signaling.Frame{Op: signaling.OpPing, ID: "p"})
	if f := b.read(); f.Op != signaling.OpPong {
		t.Fatalf("b got %+v: the repeated send was delivered again", f)
	}
}

// TestLeaving: the disconnect op and close frames 1000 and 1001 end the
// connection at once with clientDisconnected; other close codes and drops
// start the grace period.
func TestLeaving(t *testing.T) {
	tests := map[string]struct {
		leave  func(*client)
		reason string // "" : grace period
	}{
		"disconnect op": {func(c *client) {
			c.write(signaling.Frame{Op: signaling.OpDisconnect})
			if f := c.read(); f.Op != signaling.OpDisconnected || f.Reason != signaling.ReasonClientDisconnected {
				c.t.Fatalf("after disconnect got %+v", f)
			}
			if code := c.readClose(); code != websocket.CloseNormalClosure {
				c.t.Fatalf("closed with %d", code)
			}
		}, signaling.ReasonClientDisconnected},
		"close 1000": {func(c *client) { closeWith(c, websocket.CloseNormalClosure) }, signaling.ReasonClientDisconnected},
		"close 1001": {func(c *client) { closeWith(c, websocket.CloseGoingAway) }, signaling.ReasonClientDisconnected},
		"close 4000": {func(c *client) { closeWith(c, 4000) }, ""},
		"drop":       {func(c *client) { c.drop() }, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, nil)
			a := h.join(testSess, token.Publisher, "")
			b := h.join(testSess, token.Publisher, "")
			b.t = t
			a.t = t
			a.readOp(signaling.OpConnectionCreated)
			tc.leave(a)
			if tc.reason == "" {
				h.waitState(a.id, "grace")
				return
			}
			f := b.readOp(signaling.OpConnectionDestroyed)
			if f.Reason != tc.reason || f.Connection.ConnectionID != a.id {
				t.Fatalf("b got %+v", f)
			}
		})
	}
}

func closeWith(c *client, code int) {
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(time.Second))
	if got := c.readClose(); got != code {
		c.t.Fatalf("relay answered close %d with %d", code, got)
	}
}

// TestForceDisconnect: a moderator (over the socket) and the REST API remove
// a connection: it gets disconnected + 4410, the others connectionDestroyed.
func TestForceDisconnect(t *testing.T) {
	h := newHarness(t, nil)
	mod := h.join(testSess, token.Moderator, "")
	pub := h.join(testSess, token.Publisher, "")
	victim := h.join(testSess, token.Publisher, "")
	mod.readOp(signaling.OpConnectionCreated)
	mod.readOp(signaling.OpConnectionCreated)
	pub.readOp(signaling.OpConnectionCreated)

	pub.write(signaling.Frame{Op: signaling.OpForceDisconnect, ID: "f1", ConnectionID: victim.id})
	if r := pub.result("f1"); r.Code != 403 {
		t.Fatalf("publisher forceDisconnect: %+v", r)
	}
	mod.write(signaling.Frame{Op: signaling.OpForceDisconnect, ID: "f2", ConnectionID: "00000000-0000-4000-8000-000000000000"})
	if r := mod.result("f2"); r.Code != 404 {
		t.Fatalf("forceDisconnect of nobody: %+v", r)
	}
	mod.write(signaling.Frame{Op: signaling.OpForceDisconnect, ID: "f3", ConnectionID: victim.id})
	if r := mod.result("f3"); r.Code != 200 {
		t.Fatalf("moderator forceDisconnect: %+v", r)
	}
	if f := victim.readOp(signaling.OpDisconnected); f.Reason != signaling.ReasonForceDisconnected {
		t.Fatalf("victim got %+v", f)
	}
	if code := victim.readClose(); code != signaling.CloseForceDisconnect {
		t.Fatalf("victim closed with %d", code)
	}
	for _, c := range []*client{mod, pub} {
		if f := c.readOp(signaling.OpConnectionDestroyed); f.Reason != signaling.ReasonForceDisconnected || f.Connection.ConnectionID != victim.id {
			t.Fatalf("got %+v", f)
		}
	}
	// The victim cannot resume.
	v2 := h.dial(url.Values{"resume": {victim.welcome.ResumeKey}, "token": {h.token(testSess, token.Publisher, "")}})
	if v2.welcome.Resumed {
		t.Fatal("a force-disconnected connection resumed")
	}

	// Over REST.
	req := h.rest("DELETE", "/v2/project/"+testKey+"/session/"+testSess+"/connection/"+pub.id, "")
	if code, body := h.do(req); code != 204 {
		t.Fatalf("REST force disconnect: %d %s", code, body)
	}
	if f := pub.readOp(signaling.OpDisconnected, signaling.OpConnectionCreated); f.Reason != signaling.ReasonForceDisconnected {
		t.Fatalf("pub got %+v", f)
	}
	if code := pub.readClose(); code != signaling.CloseForceDisconnect {
		t.Fatalf("pub closed with %d", code)
	}
	if code, _ := h.do(h.rest("DELETE", "/v2/project/"+testKey+"/session/"+testSess+"/connection/"+pub.id, "")); code != 404 {
		t.Fatalf("second REST force disconnect: %d", code)
	}
}

// TestSuperseded: resuming on a second socket closes the first with 4409.
func TestSuperseded(t *testing.T) {
	h := newHarness(t, nil)
	a := h.join(testSess, token.Publisher, "")
	b := h.join(testSess, token.Publisher, "")
	a.readOp(signaling.OpConnectionCreated)
	a2 := h.resume(a, 1)
	if !a2.welcome.Resumed {
		t.Fatalf("welcome %+v", a2.welcome)
	}
	if code := a.readClose(); code != signaling.CloseSuperseded {
		t.Fatalf("first socket closed with %d", code)
	}
	id := b.signal(a.id, "x", "")
	b.result(id)
	if f := a2.readOp(signaling.OpSignal); f.Type != "x" {
		t.Fatalf("a2 got %+v", f)
	}
	if s := h.relay.ConnStateForTest(testSess, a.id); s != "active" {
		t.Fatalf("a is %s after the old socket closed", s)
	}
}

// TestPingTimeout: a client that stops answering pings is dropped with 4408
// and its connection enters the grace period.
func TestPingTimeout(t *testing.T) {
	h := newHarness(t, &relay.Options{PingTimeout: 300 * time.Millisecond})
	a := h.join(testSess, token.Publisher, "")
	a.ws.SetPingHandler(func(string) error { return nil }) // half-open: never pongs
	if code := a.readClose(); code != signaling.ClosePingTimeout {
		t.Fatalf("closed with %d", code)
	}
	h.waitState(a.id, "grace")

	// A client that answers pings stays: after three ping periods (counted
	// by the pings it answered, not by sleeping) it is still active. A relay
	// of its own with a roomier timeout keeps a loaded machine from making
	// an honest pong late.
	h2 := newHarness(t, &relay.Options{PingTimeout: time.Second})
	b := h2.join(testSess, token.Publisher, "")
	pings := make(chan struct{}, 16)
	b.ws.SetPingHandler(func(data string) error {
		pings <- struct{}{}
		return b.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	done := make(chan error, 1)
	go func() {
		_, _, err := b.ws.ReadMessage() // runs the ping handler; returns when the socket closes
		done <- err
	}()
	for i := 0; i < 3; i++ {
		select {
		case <-pings:
		case err := <-done:
			t.Fatalf("a client that pongs lost its socket after %d pings: %v", i, err)
		case <-time.After(waitLong):
			t.Fatalf("no ping %d within %v", i+1, waitLong)
		}
	}
	if s := h2.relay.ConnStateForTest(testSess, b.id); s != "active" {
		t.Fatalf("a client that pongs is %s", s)
	}
	b.ws.Close()
	<-done
}
