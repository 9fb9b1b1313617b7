package relay_test

import (
	"net/url"
	"testing"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/token"
)

// TestClose: Close sends 1001 to every socket, stops grace timers, refuses
// new connects and returns after every goroutine of the relay has ended.
func TestClose(t *testing.T) {
	h := newHarness(t, nil)
	reader := h.join(testSess, token.Publisher, "")
	h.join(testSess, token.Publisher, "") // never reads
	h.join("other", token.Subscriber, "") // another session
	inGrace := h.join(testSess, token.Publisher, "")
	inGrace.drop()
	h.waitState(inGrace.id, "grace")
	// A connect that is refused leaves nothing behind either.
	h.dialRaw(url.Values{"token": {"garbage"}}, nil).readClose()

	if err := h.relay.Close(); err != nil {
		t.Fatal(err)
	}
	if code := reader.readClose(); code != websocket.CloseGoingAway {
		t.Fatalf("closed with %d", code)
	}
	if n := h.relay.SocketsForTest(); n != 0 {
		t.Fatalf("%d sockets open after Close", n)
	}
	if n := h.clock.Waiters(); n != 0 {
		t.Fatalf("%d timers armed after Close", n)
	}
	h.srv.Close()
	goleak.VerifyNone(t)
	if err := h.relay.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
}

// TestConnectAfterClose: a closed relay answers connects with 503.
func TestConnectAfterClose(t *testing.T) {
	h := newHarness(t, nil)
	h.relay.Close()
	_, resp, err := websocket.DefaultDialer.Dial(h.ws+"?token=x", nil)
	if err == nil || resp == nil || resp.StatusCode != 503 {
		t.Fatalf("dial after close: %v %v", err, resp)
	}
	_ = signaling.OpWelcome
}
