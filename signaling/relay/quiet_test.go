package relay_test

import (
	"testing"

	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/token"
)

// TestQuietSignal: a quiet signal is delivered like any other but answered
// only when it fails; a ping after it is answered in order; a resent quiet
// id is neither delivered again nor answered.
func TestQuietSignal(t *testing.T) {
	h := newHarness(t, nil)
	a := h.join(testSess, token.Publisher, "name=a")
	b := h.join(testSess, token.Publisher, "name=b")
	a.readOp(signaling.OpConnectionCreated)

	quiet := func(id, to, typ string) {
		b.write(signaling.Frame{Op: signaling.OpSignal, ID: id, To: to, Type: typ, Data: "d", Quiet: true})
	}
	quiet("q1", a.id, "one")
	quiet("q2", "00000000-0000-4000-8000-000000000000", "nobody") // 404: answered
	quiet("q1", a.id, "one")                                      // a resend: remembered, not answered
	quiet("q3", a.id, "bad type")                                 // 400: answered
	b.write(signaling.Frame{Op: signaling.OpPing, ID: "p"})

	if f := b.read(); f.Op != signaling.OpResult || f.ID != "q2" || f.Code != signaling.CodeNotFound {
		t.Fatalf("first answer %+v, want the 404 of q2", f)
	}
	if f := b.read(); f.Op != signaling.OpResult || f.ID != "q3" || f.Code != signaling.CodeInvalid {
		t.Fatalf("second answer %+v, want the 400 of q3", f)
	}
	if f := b.read(); f.Op != signaling.OpPong || f.ID != "p" {
		t.Fatalf("third answer %+v, want the pong", f)
	}
	if f := a.readOp(signaling.OpSignal); f.Type != "one" || signaling.Deref(f.From) != b.id {
		t.Fatalf("a got %+v", f)
	}
	id := b.signal(a.id, "after", "")
	if r := b.result(id); r.Code != signaling.CodeOK {
		t.Fatalf("%+v", r)
	}
	if f := a.readOp(signaling.OpSignal); f.Type != "after" {
		t.Fatalf("a got %+v: the resent quiet signal was delivered twice", f)
	}
}
