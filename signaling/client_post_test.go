package signaling_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/teleop/teleop/signaling"
)

type postFailed struct {
	sig signaling.Signal
	err error
}

// TestPost: posts arrive in order with signals, Flush returns once the
// relay has processed them, and only failures come back.
func TestPost(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, nil, nil)
	a := dial(t, r.URL, "post", "a", nil)
	b := dial(t, r.URL, "post", "b", nil)
	nextOf[created](a)
	failed := make(chan postFailed, 10)
	a.OnPostFailed(func(sig signaling.Signal, err error) { failed <- postFailed{sig, err} })

	for i := range 3 {
		if err := a.Post(signaling.Signal{Type: "p", Data: fmt.Sprint(i), To: b.ID()}); err != nil {
			t.Fatal(err)
		}
	}
	a.send(signaling.Signal{Type: "s", To: b.ID()})
	if err := a.Post(signaling.Signal{Type: "gone", To: "00000000-0000-4000-8000-000000000000"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := a.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if n := signaling.Pending(a.Session); n != 0 {
		t.Fatalf("%d sends pending after Flush", n)
	}
	for i, want := range []string{"p0", "p1", "p2", "s"} {
		s := nextOf[signaling.Signal](b)
		if s.Type+s.Data != want && !(i == 3 && s.Type == "s") {
			t.Fatalf("b got %+v, want %s", s, want)
		}
	}
	f := recv(t, failed, "failed post")
	if f.sig.Type != "gone" || !errors.Is(f.err, &signaling.Error{Code: signaling.CodeNotFound}) {
		t.Fatalf("failed post %+v", f)
	}
	if err := a.Post(signaling.Signal{Type: "bad type"}); !errors.Is(err, &signaling.Error{Code: signaling.CodeInvalid}) {
		t.Fatalf("invalid post: %v", err)
	}
}

// TestPostsConfirmThemselves: a client that only posts is not left holding
// them: every PostsPerBarrier posts the writer adds a ping of its own,
// whose pong confirms them.
func TestPostsConfirmThemselves(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, nil, nil)
	a := dial(t, r.URL, "posts", "a", nil)
	b := dial(t, r.URL, "posts", "b", nil)
	nextOf[created](a)
	post := func(n int) {
		t.Helper()
		for i := range n {
			if err := a.Post(signaling.Signal{Type: "p", Data: fmt.Sprint(i), To: b.ID()}); err != nil {
				t.Fatal(err)
			}
		}
		for i := range n {
			if s := nextOf[signaling.Signal](b); s.Data != fmt.Sprint(i) {
				t.Fatalf("b got %+v, want data %d", s, i)
			}
		}
		// The writer's ping went out right after the post that made it;
		// this ping's pong comes after that one's.
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if _, err := a.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
	post(signaling.PostsPerBarrier)
	if n := signaling.Pending(a.Session); n != 0 {
		t.Fatalf("%d posts pending after a barrier", n)
	}
	post(1)
	if n := signaling.Pending(a.Session); n != 1 {
		t.Fatalf("%d posts pending, want the one too few for a barrier", n)
	}
}

// TestPostAcrossResume: posts written just before the socket dropped are
// resent on the resumed socket and delivered once; a NoRetry post written
// then is reported as maybe delivered.
func TestPostAcrossResume(t *testing.T) {
	checkGoroutines(t)
	clk := newFakeClock()
	r := startRelay(t, nil, nil)
	var cs conns
	a := dial(t, r.URL, "postresume", "a", &signaling.Options{Clock: clk, NetDialContext: cs.dial})
	b := dial(t, r.URL, "postresume", "b", nil)
	nextOf[created](a)
	failed := make(chan postFailed, 10)
	a.OnPostFailed(func(sig signaling.Signal, err error) { failed <- postFailed{sig, err} })

	cs.last(t).stalled.Store(true) // nothing from the relay reaches a any more
	a.Post(signaling.Signal{Type: "once", To: b.ID()})
	a.Post(signaling.Signal{Type: "noretry", To: b.ID(), NoRetry: true})
	for _, want := range []string{"once", "noretry"} {
		if s := nextOf[signaling.Signal](b); s.Type != want {
			t.Fatalf("b got %+v, want %s", s, want)
		}
	}
	cs.breakLast(t)
	nextOf[reconnecting](a)
	if f := recv(t, failed, "NoRetry post"); f.sig.Type != "noretry" || !errors.Is(f.err, &signaling.Error{Code: 500}) {
		t.Fatalf("failed post %+v", f)
	}
	advanceBackoff(t, clk)
	if rec := nextOf[signaling.Reconnected](a); !rec.Resumed {
		t.Fatalf("%+v", rec)
	}
	a.send(signaling.Signal{Type: "barrier", To: b.ID()})
	if s := nextOf[signaling.Signal](b); s.Type != "barrier" {
		t.Fatalf("b got %+v: the resent post was delivered twice", s)
	}
	if n := signaling.Pending(a.Session); n != 0 {
		t.Fatalf("%d sends pending", n)
	}
	select {
	case f := <-failed:
		t.Fatalf("unexpected failure %+v", f)
	default:
	}
}
