package signaling_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/relay"
	"github.com/teleop/teleop/signaling/token"
)

// advanceBackoff moves clk past the client's reconnect wait, once the
// client has armed it.
func advanceBackoff(t *testing.T, clk interface {
	BlockUntil(int) <-chan struct{}
	Advance(time.Duration)
}) {
	t.Helper()
	recv(t, clk.BlockUntil(1), "backoff timer")
	clk.Advance(2 * time.Second)
}

func TestResumeAfterDrop(t *testing.T) {
	checkGoroutines(t)
	clk := newFakeClock()
	r := startRelay(t, nil, nil)
	var cs conns
	a := dial(t, r.URL, "resume", "a", &signaling.Options{Clock: clk, NetDialContext: cs.dial})
	b := dial(t, r.URL, "resume", "b", nil)
	nextOf[created](a)
	b.send(signaling.Signal{Type: "n", Data: "0", To: a.ID()})
	last := nextOf[signaling.Signal](a).Seq

	queued := make(chan struct{}, 10)
	signaling.SetQueuedHook(a.Session, func() { queued <- struct{}{} })

	cs.breakLast(t)
	if e := nextOf[reconnecting](a); e.err == nil {
		t.Fatal("reconnecting without a cause")
	}
	if a.Connected() {
		t.Fatal("Connected while reconnecting")
	}
	// While a is away the relay holds what b sends it.
	for i := 1; i <= 3; i++ {
		b.send(signaling.Signal{Type: "n", Data: strconv.Itoa(i), To: a.ID()})
	}
	// a's sends wait in its queue; a NoRetry send fails at once.
	errc := make(chan error, 1)
	go func() { errc <- a.Signal(context.Background(), signaling.Signal{Type: "queued", To: b.ID()}) }()
	recv(t, queued, "queued send")
	if err := a.Signal(context.Background(), signaling.Signal{Type: "x", NoRetry: true}); !errors.Is(err, &signaling.Error{Code: 500}) {
		t.Fatalf("NoRetry signal while reconnecting: %v, want 500", err)
	}

	advanceBackoff(t, clk)
	rec := nextOf[signaling.Reconnected](a)
	if !rec.Resumed || rec.Missed != 0 || rec.Connection != rec.Previous || rec.Connection.ConnectionID != a.ID() {
		t.Fatalf("reconnected %+v, want the same connection resumed", rec)
	}
	if rec.Downtime < 200*time.Millisecond {
		t.Fatalf("downtime %v on the fake clock, want at least the backoff", rec.Downtime)
	}
	for i := 1; i <= 3; i++ {
		s := nextOf[signaling.Signal](a)
		if s.Data != strconv.Itoa(i) || s.Seq != last+1 {
			t.Fatalf("after resume got %q seq %d, want %d seq %d", s.Data, s.Seq, i, last+1)
		}
		last = s.Seq
	}
	if err := recv(t, errc, "queued send result"); err != nil {
		t.Fatalf("queued send: %v", err)
	}
	s := nextOf[signaling.Signal](b)
	if s.Type != "queued" || s.From != a.ID() {
		t.Fatalf("b got %+v", s)
	}
	// queuedMs: the send waited at least the backoff on a's clock.
	if s.Age < 200*time.Millisecond || s.Age > time.Minute {
		t.Fatalf("queued send arrived with age %v, want the time it waited", s.Age)
	}
	a.send(signaling.Signal{Type: "barrier", To: b.ID()})
	if s := nextOf[signaling.Signal](b); s.Type != "barrier" {
		t.Fatalf("b got %+v, want the barrier (the queued send once)", s)
	}
	a.quiet()
}

func TestResendAfterLostResult(t *testing.T) {
	checkGoroutines(t)
	clk := newFakeClock()
	r := startRelay(t, nil, nil)
	var cs conns
	a := dial(t, r.URL, "lost", "a", &signaling.Options{Clock: clk, NetDialContext: cs.dial})
	b := dial(t, r.URL, "lost", "b", nil)
	nextOf[created](a)

	// From now on what the relay sends a is lost: results included.
	cs.last(t).stalled.Store(true)
	retried := make(chan error, 1)
	go func() { retried <- a.Signal(context.Background(), signaling.Signal{Type: "once", To: b.ID()}) }()
	if s := nextOf[signaling.Signal](b); s.Type != "once" {
		t.Fatalf("b got %+v", s)
	}
	noRetry := make(chan error, 1)
	go func() {
		noRetry <- a.Signal(context.Background(), signaling.Signal{Type: "noretry", To: b.ID(), NoRetry: true})
	}()
	if s := nextOf[signaling.Signal](b); s.Type != "noretry" {
		t.Fatalf("b got %+v", s)
	}

	cs.breakLast(t)
	nextOf[reconnecting](a)
	if err := recv(t, noRetry, "NoRetry result"); !errors.Is(err, &signaling.Error{Code: 500}) {
		t.Fatalf("NoRetry send with its result lost: %v, want 500", err)
	}
	advanceBackoff(t, clk)
	if rec := nextOf[signaling.Reconnected](a); !rec.Resumed {
		t.Fatalf("%+v", rec)
	}
	// a resent "once" with the same id; the relay answered from memory.
	if err := recv(t, retried, "resent send result"); err != nil {
		t.Fatalf("resent send: %v", err)
	}
	a.send(signaling.Signal{Type: "barrier", To: b.ID()})
	if s := nextOf[signaling.Signal](b); s.Type != "barrier" {
		t.Fatalf("b got %+v: the resent signal was delivered twice", s)
	}
}

func TestRelayRestartGivesNewConnection(t *testing.T) {
	checkGoroutines(t)
	clk := newFakeClock()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	r1 := startRelay(t, nil, ln)

	var minted atomic.Int32
	ts := func(context.Context) (string, error) {
		return mint(t, "restart", fmt.Sprintf("gen=%d", minted.Add(1)), token.Publisher), nil
	}
	a := dialToken(t, r1.URL, "", &signaling.Options{Clock: clk, TokenSource: ts})
	first := a.Connection()
	if first.Data != "gen=1" {
		t.Fatalf("first connection data %q", first.Data)
	}
	queued := make(chan struct{}, 10)
	signaling.SetQueuedHook(a.Session, func() { queued <- struct{}{} })

	r1.Stop()
	e := nextOf[reconnecting](a)
	var ce *signaling.CloseError
	if !errors.As(e.err, &ce) || ce.Code != 1001 {
		t.Fatalf("relay shutdown seen as %v, want close 1001", e.err)
	}
	errc := make(chan error, 1)
	go func() { errc <- a.Signal(context.Background(), signaling.Signal{Type: "hello"}) }()
	recv(t, queued, "queued send")

	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	startRelay(t, nil, ln2)
	advanceBackoff(t, clk)

	rec := nextOf[signaling.Reconnected](a)
	if rec.Resumed || rec.Previous != first || rec.Connection.ConnectionID == first.ConnectionID {
		t.Fatalf("reconnected %+v, want a new connection replacing %s", rec, first.ConnectionID)
	}
	if rec.Connection.Data != "gen=2" || minted.Load() != 2 {
		t.Fatalf("new connection data %q after %d tokens: the token source was not asked again", rec.Connection.Data, minted.Load())
	}
	if got := a.Connections(); len(got) != 1 || got[0] != rec.Connection {
		t.Fatalf("connections %+v, want only the new one", got)
	}
	if a.Connection() != rec.Connection {
		t.Fatalf("Connection() = %+v", a.Connection())
	}
	// A send that was never written is sent on the new connection.
	if err := recv(t, errc, "queued send result"); err != nil {
		t.Fatal(err)
	}
	if s := nextOf[signaling.Signal](a); s.Type != "hello" || s.From != rec.Connection.ConnectionID {
		t.Fatalf("got %+v", s)
	}
}

func TestTokenRefusedOnReconnectStops(t *testing.T) {
	checkGoroutines(t)
	clk := newFakeClock()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	r1 := startRelay(t, nil, ln)
	var calls atomic.Int32
	ts := func(context.Context) (string, error) {
		if calls.Add(1) == 1 {
			return mint(t, "refuse", "a", token.Publisher), nil
		}
		return token.New(apiKey, "not-the-secret", "refuse", nil)
	}
	var cs conns
	a := dialToken(t, r1.URL, "", &signaling.Options{Clock: clk, TokenSource: ts, NetDialContext: cs.dial})

	r1.Stop()
	nextOf[reconnecting](a)
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	startRelay(t, nil, ln2) // does not know a's resume key: the token decides
	advanceBackoff(t, clk)

	e := nextOf[disconnected](a)
	if !errors.Is(e.err, &signaling.Error{Code: 401}) {
		t.Fatalf("disconnected with %v, want 401", e.err)
	}
	recv(t, a.Done(), "Done")
	if n := clk.Waiters(); n != 0 {
		t.Fatalf("%d timers armed after a refusal: the client would retry", n)
	}
	if n := cs.count(); n != 2 {
		t.Fatalf("%d dials, want 2", n)
	}
}

func TestSilentSocketIsDead(t *testing.T) {
	checkGoroutines(t)
	clk := newFakeClock()
	// The relay pings every 54 s of real time: never during this test.
	r := startRelay(t, &relay.Options{PingTimeout: time.Minute}, nil)
	a := dial(t, r.URL, "silent", "a", &signaling.Options{Clock: clk})
	ping := time.Duration(a.Limits().PingIntervalMs) * time.Millisecond
	if ping != 54*time.Second {
		t.Fatalf("ping interval %v", ping)
	}
	recv(t, clk.BlockUntil(1), "liveness timer")
	clk.Advance(2*ping - time.Second)
	a.quiet()
	clk.Advance(time.Second)
	if e := nextOf[reconnecting](a); e.err == nil || !strings.Contains(e.err.Error(), "nothing from the relay") {
		t.Fatalf("reconnecting because %v", e.err)
	}
	advanceBackoff(t, clk)
	if rec := nextOf[signaling.Reconnected](a); !rec.Resumed {
		t.Fatalf("%+v", rec)
	}
}

func TestSlowHandlerCatchesUpByResuming(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, nil, nil)
	var cs conns
	a := dial(t, r.URL, "slow", "a", &signaling.Options{EventBuffer: 4, InitialBackoff: time.Millisecond, NetDialContext: cs.dial})
	b := dial(t, r.URL, "slow", "b", nil)
	nextOf[created](a)
	first := cs.last(t)

	// a's handler acks every command, as the robot agent does, and is stuck
	// on the first one until the gate opens.
	gate := make(chan struct{})
	a.OnSignalType("load", func(s signaling.Signal) {
		if s.Data == "1" {
			<-gate
		}
		if err := a.Signal(context.Background(), signaling.Signal{Type: "ack", Data: s.Data, To: s.From}); err != nil {
			t.Errorf("ack %s: %v", s.Data, err)
		}
	})
	const n = 20
	for i := 1; i <= n; i++ {
		b.send(signaling.Signal{Type: "load", Data: strconv.Itoa(i), To: a.ID()})
	}
	// The pong follows the 20 events on a's socket: a has read them all,
	// holds 1 in the handler and 4 in its buffer, and discarded the rest,
	// yet still answers.
	if _, err := a.Ping(context.Background()); err != nil {
		t.Fatalf("ping with the handlers stuck: %v", err)
	}
	select {
	case <-first.closed:
		t.Fatal("a dropped its socket before its handlers caught up")
	default:
	}
	close(gate)

	var got []string
	var lastSeq uint64
	sawResume := false
	for len(got) < n {
		switch e := a.next().(type) {
		case signaling.Signal:
			if lastSeq != 0 && e.Seq != lastSeq+1 {
				t.Fatalf("seq %d after %d", e.Seq, lastSeq)
			}
			lastSeq = e.Seq
			got = append(got, e.Data)
		case reconnecting:
			if !strings.Contains(e.err.Error(), "fell behind") {
				t.Fatalf("reconnecting because %v", e.err)
			}
		case signaling.Reconnected:
			sawResume = e.Resumed && e.Missed == 0
		default:
			t.Fatalf("event %T %+v", e, e)
		}
	}
	for i, d := range got {
		if d != strconv.Itoa(i+1) {
			t.Fatalf("signals in order %v", got)
		}
	}
	if !sawResume {
		t.Fatal("no resume without missed events after the handlers caught up")
	}
	for i := 1; i <= n; i++ {
		if s := nextOf[signaling.Signal](b); s.Type != "ack" || s.Data != strconv.Itoa(i) {
			t.Fatalf("b got %+v, want ack %d", s, i)
		}
	}
}

func TestQueueLimitAndCancel(t *testing.T) {
	checkGoroutines(t)
	clk := newFakeClock()
	r := startRelay(t, nil, nil)
	var cs conns
	a := dial(t, r.URL, "queue", "a", &signaling.Options{Clock: clk, NetDialContext: cs.dial, QueueLimit: 2})
	queued := make(chan struct{}, 10)
	signaling.SetQueuedHook(a.Session, func() { queued <- struct{}{} })

	cs.breakLast(t)
	nextOf[reconnecting](a)
	kept := make(chan error, 1)
	go func() { kept <- a.Signal(context.Background(), signaling.Signal{Type: "kept"}) }()
	recv(t, queued, "first queued send")
	ctx, cancel := context.WithCancel(context.Background())
	dropped := make(chan error, 1)
	go func() { dropped <- a.Signal(ctx, signaling.Signal{Type: "dropped"}) }()
	recv(t, queued, "second queued send")

	if err := a.Signal(context.Background(), signaling.Signal{Type: "x"}); !errors.Is(err, signaling.ErrQueueFull) {
		t.Fatalf("third send with QueueLimit 2: %v, want ErrQueueFull", err)
	}
	cancel()
	if err := recv(t, dropped, "cancelled send"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled send: %v", err)
	}
	advanceBackoff(t, clk)
	nextOf[signaling.Reconnected](a)
	if err := recv(t, kept, "kept send"); err != nil {
		t.Fatal(err)
	}
	if s := nextOf[signaling.Signal](a); s.Type != "kept" {
		t.Fatalf("got %+v", s)
	}
	a.send(signaling.Signal{Type: "barrier"})
	if s := nextOf[signaling.Signal](a); s.Type != "barrier" {
		t.Fatalf("got %+v: the cancelled send was delivered", s)
	}
}

func TestCloseWhileReconnecting(t *testing.T) {
	checkGoroutines(t)
	clk := newFakeClock()
	r := startRelay(t, nil, nil)
	var cs conns
	a := dial(t, r.URL, "closing", "a", &signaling.Options{Clock: clk, NetDialContext: cs.dial})
	cs.breakLast(t)
	nextOf[reconnecting](a)
	errc := make(chan error, 1)
	go func() { errc <- a.Signal(context.Background(), signaling.Signal{Type: "never"}) }()
	recv(t, clk.BlockUntil(1), "backoff timer")
	a.Close()
	if e := nextOf[disconnected](a); e.err != nil {
		t.Fatalf("disconnected with %v after Close", e.err)
	}
	if err := recv(t, errc, "queued send result"); !errors.Is(err, &signaling.Error{Code: 500}) {
		t.Fatalf("queued send at Close: %v, want 500", err)
	}
}

func TestReconnectTimeout(t *testing.T) {
	checkGoroutines(t)
	clk := newFakeClock()
	r := startRelay(t, nil, nil)
	a := dial(t, r.URL, "giveup", "a", &signaling.Options{Clock: clk, ReconnectTimeout: 3 * time.Second})
	r.Stop()
	nextOf[reconnecting](a)
	for attempts := 0; ; attempts++ {
		select {
		case <-clk.BlockUntil(1):
			clk.Advance(time.Second)
			continue
		case <-a.Done():
		case <-time.After(wait):
			t.Fatal("neither a backoff timer nor the end")
		}
		if attempts < 2 {
			t.Fatalf("gave up after %d waits", attempts)
		}
		break
	}
	e := nextOf[disconnected](a)
	if e.err == nil || !strings.Contains(e.err.Error(), "gave up") {
		t.Fatalf("disconnected with %v", e.err)
	}
}

func TestResumeReportsMissed(t *testing.T) {
	checkGoroutines(t)
	clk := newFakeClock()
	r := startRelay(t, &relay.Options{ReplayFrames: 2}, nil)
	var cs conns
	a := dial(t, r.URL, "missed", "a", &signaling.Options{Clock: clk, NetDialContext: cs.dial})
	b := dial(t, r.URL, "missed", "b", nil)
	nextOf[created](a)

	cs.breakLast(t)
	nextOf[reconnecting](a)
	for i := 1; i <= 5; i++ {
		b.send(signaling.Signal{Type: "n", Data: strconv.Itoa(i), To: a.ID()})
	}
	advanceBackoff(t, clk)
	rec := nextOf[signaling.Reconnected](a)
	if !rec.Resumed || rec.Missed != 3 {
		t.Fatalf("reconnected %+v, want resumed with 3 missed", rec)
	}
	for _, want := range []string{"4", "5"} {
		s := nextOf[signaling.Signal](a)
		if s.Data != want || !s.Received.Equal(clk.Now()) {
			t.Fatalf("got %q received %v, want %s received at %v", s.Data, s.Received, want, clk.Now())
		}
	}
}
