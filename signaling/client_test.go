package signaling_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/relay"
	"github.com/teleop/teleop/signaling/token"
)

func TestSignalToAllAndToOne(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, nil, nil)
	a := dial(t, r.URL, "s1", "name=alice", nil)
	b := dial(t, r.URL, "s1", "name=robot", nil)

	if got := nextOf[created](a).c; got.ConnectionID != b.ID() || got.Data != "name=robot" {
		t.Fatalf("alice saw %+v join, want the robot %s", got, b.ID())
	}
	if n := len(b.Connections()); n != 2 {
		t.Fatalf("robot sees %d connections at connect, want 2", n)
	}

	// To all: the sender gets it too.
	a.send(signaling.Signal{Type: "chat", Data: "hello"})
	for _, c := range []*client{a, b} {
		s := nextOf[signaling.Signal](c)
		if s.Type != "chat" || s.Data != "hello" || s.From != a.ID() || s.To != "" {
			t.Fatalf("%s got %+v", c.ID(), s)
		}
	}

	// To one: only the robot, with To set.
	a.send(signaling.Signal{Type: "drive", Data: `{"id":1}`, To: b.ID()})
	s := nextOf[signaling.Signal](b)
	if s.Type != "drive" || s.Data != `{"id":1}` || s.From != a.ID() || s.To != b.ID() {
		t.Fatalf("robot got %+v", s)
	}
	// A signal without type or data is valid.
	b.send(signaling.Signal{})
	if s := nextOf[signaling.Signal](a); s.Type != "" || s.Data != "" || s.From != b.ID() {
		t.Fatalf("alice got %+v, want an empty signal from the robot", s)
	}
	a.quiet() // the directed drive did not reach alice
}

func TestSignalErrors(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, nil, nil)
	a := dial(t, r.URL, "errs", "a", nil)
	ro := dialToken(t, r.URL, mint(t, "errs", "ro", token.PublisherOnly), nil)

	tests := map[string]struct {
		c       *client
		sig     signaling.Signal
		code    int
		message string
	}{
		"bad type":         {a, signaling.Signal{Type: "bad type!"}, 400, "type may contain only"},
		"type too long":    {a, signaling.Signal{Type: strings.Repeat("t", 129)}, 413, "type is 129 characters"},
		"data too long":    {a, signaling.Signal{Data: strings.Repeat("d", 9000)}, 413, "data is 9000 bytes, the limit is 8192"},
		"data not utf-8":   {a, signaling.Signal{Data: "\xff"}, 400, "UTF-8"},
		"no such to":       {a, signaling.Signal{Type: "x", To: "nobody"}, 404, ""},
		"publisheronly":    {ro, signaling.Signal{Type: "x"}, 403, ""},
		"max data is fine": {a, signaling.Signal{Type: strings.Repeat("t", 128), Data: strings.Repeat("d", 8192)}, 200, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.c.Signal(context.Background(), tc.sig)
			if tc.code == 200 {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				return
			}
			var se *signaling.Error
			if !errors.As(err, &se) || se.Code != tc.code || !strings.Contains(se.Message, tc.message) {
				t.Fatalf("got %v, want code %d with %q", err, tc.code, tc.message)
			}
			if !errors.Is(err, &signaling.Error{Code: tc.code}) {
				t.Fatalf("errors.Is(%v, code %d) is false", err, tc.code)
			}
		})
	}
}

func TestRateLimited(t *testing.T) {
	checkGoroutines(t)
	// The relay's clock does not move, so its token bucket never refills.
	r := startRelay(t, &relay.Options{RatePerSec: 1, RateBurst: 2, Clock: newFakeClock()}, nil)
	a := dial(t, r.URL, "rate", "a", nil)
	a.send(signaling.Signal{Type: "x"})
	a.send(signaling.Signal{Type: "x"})
	err := a.Signal(context.Background(), signaling.Signal{Type: "x"})
	if !errors.Is(err, &signaling.Error{Code: 429}) {
		t.Fatalf("third signal over a burst of 2: got %v, want 429", err)
	}
	if !a.Connected() {
		t.Fatal("a rate-limited connection must stay connected")
	}
}

func TestOnSignalType(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, nil, nil)
	a := dial(t, r.URL, "types", "a", nil)
	var order []string
	done := make(chan struct{})
	a.OnSignalType("drive", func(s signaling.Signal) { order = append(order, "drive:"+s.Data) })
	a.OnSignalType("", func(s signaling.Signal) { order = append(order, "untyped") })
	a.OnSignal(func(s signaling.Signal) {
		order = append(order, "all:"+s.Type)
		if s.Type == "end" {
			close(done)
		}
	})
	a.send(signaling.Signal{Type: "drive", Data: "1"})
	a.send(signaling.Signal{Type: "stop"})
	a.send(signaling.Signal{})
	a.send(signaling.Signal{Type: "end"})
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("end signal not handled")
	}
	want := "drive:1 all:drive all:stop untyped all: all:end"
	if got := strings.Join(order, " "); got != want {
		t.Fatalf("handlers ran as\n%s\nwant\n%s", got, want)
	}
}

func TestConnectionEvents(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, nil, nil)
	a := dial(t, r.URL, "presence", "name=a", nil)
	b := dial(t, r.URL, "presence", "name=b", nil)
	if c := nextOf[created](a).c; c.ConnectionID != b.ID() || c.Data != "name=b" || c.CreationTime == 0 {
		t.Fatalf("created %+v", c)
	}
	if got := a.Connections(); len(got) != 2 || got[0].ConnectionID != a.ID() || got[1].ConnectionID != b.ID() {
		t.Fatalf("connections %+v, want a then b", got)
	}
	bid := b.ID()
	b.Close()
	if e := nextOf[disconnected](b); e.err != nil {
		t.Fatalf("b's own disconnected event carries %v, want nil after Close", e.err)
	}
	d := nextOf[destroyed](a)
	if d.c.ConnectionID != bid || d.reason != signaling.ReasonClientDisconnected {
		t.Fatalf("destroyed %+v, want %s clientDisconnected", d, bid)
	}
	if got := a.Connections(); len(got) != 1 || got[0].ConnectionID != a.ID() {
		t.Fatalf("connections after b left: %+v", got)
	}
	select {
	case <-b.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	if b.Err() != nil {
		t.Fatalf("Err after Close = %v, want nil", b.Err())
	}
	if err := b.Signal(context.Background(), signaling.Signal{Type: "x"}); !errors.Is(err, &signaling.Error{Code: 500}) {
		t.Fatalf("signal after Close: %v, want 500", err)
	}
}

func TestPing(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, nil, nil)
	a := dial(t, r.URL, "ping", "a", nil)
	rtt, err := a.Ping(context.Background())
	if err != nil || rtt <= 0 {
		t.Fatalf("ping: %v, %v", rtt, err)
	}
}

func TestTokenRefused(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, nil, nil)
	bad, err := token.New(apiKey, "wrong-secret", "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	var cs conns
	_, err = signaling.Dial(context.Background(), r.URL, bad, &signaling.Options{NetDialContext: cs.dial, Logger: testLogger(t)})
	var se *signaling.Error
	if !errors.As(err, &se) || se.Code != 401 || se.Message == "" {
		t.Fatalf("dial with a bad token: %v, want a 401 with a reason", err)
	}
	t.Logf("refusal: %v", err)
	if n := cs.count(); n != 1 {
		t.Fatalf("%d dials, want 1 (no retry)", n)
	}
}

func TestForceDisconnectEndsSession(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, nil, nil)
	mod := dialToken(t, r.URL, mint(t, "fd", "mod", token.Moderator), nil)
	var cs conns
	a := dial(t, r.URL, "fd", "a", &signaling.Options{NetDialContext: cs.dial})
	nextOf[created](mod)

	if err := a.ForceDisconnect(context.Background(), mod.ID()); !errors.Is(err, &signaling.Error{Code: 403}) {
		t.Fatalf("publisher force-disconnecting: %v, want 403", err)
	}
	if err := mod.ForceDisconnect(context.Background(), "nobody"); !errors.Is(err, &signaling.Error{Code: 404}) {
		t.Fatalf("force-disconnecting nobody: %v, want 404", err)
	}
	if err := mod.ForceDisconnect(context.Background(), a.ID()); err != nil {
		t.Fatal(err)
	}
	e := nextOf[disconnected](a)
	var ce *signaling.CloseError
	if !errors.As(e.err, &ce) || ce.Code != signaling.CloseForceDisconnect || ce.Reason != signaling.ReasonForceDisconnected {
		t.Fatalf("a disconnected with %v, want close 4410 forceDisconnected", e.err)
	}
	<-a.Done()
	if !errors.As(a.Err(), &ce) {
		t.Fatalf("Err = %v", a.Err())
	}
	if n := cs.count(); n != 1 {
		t.Fatalf("a dialed %d times, want 1: a forced disconnect is permanent", n)
	}
	if d := nextOf[destroyed](mod); d.reason != signaling.ReasonForceDisconnected {
		t.Fatalf("moderator saw %+v", d)
	}
}

// Connect tries Options.Fallbacks in order when the first relay cannot be
// reached.
func TestConnectFallsBack(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, nil, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() // nothing accepts there once closed
	ln.Close()
	c := dialToken(t, dead, mint(t, "fallback", "a", token.Publisher), &signaling.Options{Fallbacks: []string{r.URL}})
	if c.ID() == "" {
		t.Fatal("no connection")
	}
	if _, err := signaling.Dial(context.Background(), r.URL, "x", &signaling.Options{Fallbacks: []string{"ftp://nope"}}); err == nil {
		t.Fatal("a malformed fallback was accepted")
	}
}
