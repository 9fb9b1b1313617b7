package relay_test

import (
	"fmt"
	"strconv"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/relay"
	"github.com/teleop/teleop/signaling/token"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestWelcome(t *testing.T) {
	h := newHarness(t, nil)
	a := h.join(testSess, token.Publisher, "name=alice")
	w := a.welcome
	if w.SessionID != testSess || w.Role != "publisher" || w.Seq != 0 || w.Resumed || w.ResumeKey == "" {
		t.Fatalf("welcome = %+v", w)
	}
	if w.Connection.Data != "name=alice" || len(w.Connections) != 1 || w.Connections[0] != *w.Connection {
		t.Fatalf("welcome connections = %+v, self %+v", w.Connections, w.Connection)
	}
	l := w.Limits
	if l == nil || l.MaxTypeLen != 128 || l.MaxDataBytes != 8192 || l.PingIntervalMs != 9000 || l.GraceMs != 20000 || l.ReplayFrames != 1024 {
		t.Fatalf("limits = %+v", l)
	}
	b := h.join(testSess, token.Subscriber, "name=bob")
	if n := len(b.welcome.Connections); n != 2 || b.welcome.Connections[0].ConnectionID != a.id || b.welcome.Connections[1].ConnectionID != b.id {
		t.Fatalf("bob's welcome lists %+v, want alice then bob", b.welcome.Connections)
	}
	f := a.readOp(signaling.OpConnectionCreated)
	if f.Seq != 1 || f.Connection.ConnectionID != b.id || f.Connection.Data != "name=bob" {
		t.Fatalf("alice got %+v, want connectionCreated seq 1 for bob", f)
	}
}

func TestSignalBroadcastAndTo(t *testing.T) {
	h := newHarness(t, nil)
	a := h.join(testSess, token.Publisher, "")
	b := h.join(testSess, token.Publisher, "")
	c := h.join(testSess, token.Publisher, "")
	a.readOp(signaling.OpConnectionCreated)
	a.readOp(signaling.OpConnectionCreated)
	b.readOp(signaling.OpConnectionCreated)

	id := a.signal("", "chat", "hello \"world\"\n✓")
	if r := a.result(id); r.Code != 200 {
		t.Fatalf("result %+v", r)
	}
	for name, cl := range map[string]*client{"a": a, "b": b, "c": c} {
		f := cl.readOp(signaling.OpSignal)
		if f.Type != "chat" || f.Data != "hello \"world\"\n✓" || signaling.Deref(f.From) != a.id || f.To != "" {
			t.Fatalf("%s got %+v", name, f)
		}
	}
	// A ping signal: no type, no data.
	id = b.signal("", "", "")
	if r := b.result(id); r.Code != 200 {
		t.Fatalf("ping signal result %+v", r)
	}
	for _, cl := range []*client{a, b, c} {
		if f := cl.readOp(signaling.OpSignal); f.Type != "" || f.Data != "" || signaling.Deref(f.From) != b.id {
			t.Fatalf("ping signal delivered as %+v", f)
		}
	}
	// To one connection: only c gets it, with to set.
	id = a.signal(c.id, "drive", `{"linear":0.4}`)
	if r := a.result(id); r.Code != 200 {
		t.Fatalf("result %+v", r)
	}
	f := c.readOp(signaling.OpSignal)
	if f.To != c.id || f.Type != "drive" || f.Data != `{"linear":0.4}` {
		t.Fatalf("c got %+v", f)
	}
	// b sees nothing more: its next frame is the answer to a ping.
	b.write(signaling.Frame{Op: signaling.OpPing, ID: "p1"})
	if f := b.read(); f.Op != signaling.OpPong || f.ID != "p1" {
		t.Fatalf("b got %+v, want only the pong", f)
	}
	// Seq counts every event of a connection: a saw 2 joins and 2 signals,
	// c saw 3 signals.
	id = a.signal(a.id, "self", "")
	a.result(id)
	if f := a.readOp(signaling.OpSignal); f.Seq != 5 {
		t.Fatalf("a's 5th event has seq %d", f.Seq)
	}
	if f.Seq != 3 {
		t.Fatalf("c's 3rd event has seq %d", f.Seq)
	}
}

func TestSignalCodes(t *testing.T) {
	h := newHarness(t, nil)
	a := h.join(testSess, token.Publisher, "")
	only := h.join(testSess, token.PublisherOnly, "")
	long := func(n int) string { return string(make([]byte, n)) }
	letters := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = 'a'
		}
		return string(b)
	}
	tests := map[string]struct {
		c     *client
		frame signaling.Frame
		code  int
	}{
		"valid type chars":     {a, signaling.Frame{Type: "Az09-_~"}, 200},
		"type 128":             {a, signaling.Frame{Type: letters(128)}, 200},
		"type 129":             {a, signaling.Frame{Type: letters(129)}, 413},
		"type with dot":        {a, signaling.Frame{Type: "a.b"}, 400},
		"type with space":      {a, signaling.Frame{Type: "bad type!"}, 400},
		"data 8192":            {a, signaling.Frame{Data: letters(8192)}, 200},
		"data 8193":            {a, signaling.Frame{Data: letters(8193)}, 413},
		"data with NULs":       {a, signaling.Frame{Data: long(10)}, 200},
		"to unknown":           {a, signaling.Frame{To: "00000000-0000-4000-8000-000000000000"}, 404},
		"to malformed":         {a, signaling.Frame{To: "not a connection!"}, 400},
		"id 65":                {a, signaling.Frame{ID: letters(65)}, 400},
		"negative queuedMs":    {a, signaling.Frame{QueuedMs: -1}, 400},
		"publisheronly signal": {only, signaling.Frame{Type: "x"}, 403},
	}
	n := 0
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			n++
			f := tc.frame
			f.Op = signaling.OpSignal
			if f.ID == "" {
				f.ID = "t" + strconv.Itoa(n)
			}
			tc.c.write(f)
			r := tc.c.result(f.ID)
			if r.Code != tc.code {
				t.Fatalf("code %d (%q), want %d", r.Code, r.Message, tc.code)
			}
			if tc.code != 200 && r.Message == "" {
				t.Fatalf("code %d without a message", r.Code)
			}
		})
	}
}

// TestPerSenderOrder: several senders broadcast concurrently; every
// receiver sees each sender's signals in order and seq without gaps.
func TestPerSenderOrder(t *testing.T) {
	const senders, perSender, receivers = 4, 300, 3
	// Senders do not wait for anything here: a queue that holds everything
	// keeps a receiver that the scheduler starves from being a slow consumer.
	h := newHarness(t, &relay.Options{SendQueue: senders * perSender * 3})
	var all []*client
	for i := 0; i < senders+receivers; i++ {
		all = append(all, h.join(testSess, token.Publisher, ""))
	}
	total := senders * perSender
	type got struct {
		last map[string]int
		err  error
	}
	results := make([]got, len(all))
	var wg sync.WaitGroup
	for i, cl := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := map[string]int{}
			seq := cl.welcome.Seq
			signals := 0
			for signals < total {
				f, err := cl.readErr()
				if err != nil {
					results[i].err = err
					return
				}
				if f.Seq != 0 {
					if f.Seq != seq+1 {
						results[i].err = fmt.Errorf("seq %d after %d", f.Seq, seq)
						return
					}
					seq = f.Seq
				}
				if f.Op != signaling.OpSignal {
					continue
				}
				signals++
				n, _ := strconv.Atoi(f.Data)
				from := signaling.Deref(f.From)
				if n != last[from]+1 {
					results[i].err = fmt.Errorf("from %s: %d after %d", from, n, last[from])
					return
				}
				last[from] = n
			}
			results[i].last = last
		}()
	}
	var sw sync.WaitGroup
	for _, cl := range all[:senders] {
		sw.Add(1)
		go func() {
			defer sw.Done()
			for n := 1; n <= perSender; n++ {
				cl.n++
				b := fmt.Appendf(nil, `{"op":"signal","id":"%d","type":"n","data":"%d"}`, n, n)
				if err := cl.ws.WriteMessage(1, b); err != nil {
					return
				}
			}
		}()
	}
	sw.Wait()
	wg.Wait()
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("client %d: %v", i, r.err)
		}
		for _, s := range all[:senders] {
			if r.last[s.id] != perSender {
				t.Fatalf("client %d got %d signals from %s", i, r.last[s.id], s.id)
			}
		}
	}
}

// TestPresenceBeforeSignal: a connection that signals right after joining
// is announced to every receiver before its signal.
func TestPresenceBeforeSignal(t *testing.T) {
	h := newHarness(t, nil)
	a := h.join(testSess, token.Publisher, "")
	for i := 0; i < 20; i++ {
		b := h.dialRaw(map[string][]string{"token": {h.token(testSess, token.Publisher, "")}}, nil)
		b.write(signaling.Frame{Op: signaling.OpSignal, ID: "x", Type: "hi"})
		created := a.readOp(signaling.OpConnectionCreated)
		sig := a.readOp(signaling.OpSignal)
		if signaling.Deref(sig.From) != created.Connection.ConnectionID {
			t.Fatalf("signal from %s after connectionCreated of %s", signaling.Deref(sig.From), created.Connection.ConnectionID)
		}
		b.write(signaling.Frame{Op: signaling.OpDisconnect})
		a.readOp(signaling.OpConnectionDestroyed)
	}
}
