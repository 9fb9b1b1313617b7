package relay

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/teleop/teleop/clock"
	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/token"
)

var frameSeeds = []string{
	`{"op":"signal","id":"1","type":"drive","data":"{\"linear\":0.4}"}`,
	`{"op":"signal","id":"2","to":"$PEER","type":"x","data":"y","queuedMs":12}`,
	`{"op":"signal","id":"3"}`,
	`{"op":"signal","id":"4","type":"bad type"}`,
	`{"op":"signal","id":"5","to":"00000000-0000-4000-8000-000000000000"}`,
	`{"op":"signal","type":"no id"}`,
	`{"op":"signal","id":"6","data":null,"type":null}`,
	`{"op":"signal","id":"7","queuedMs":-1}`,
	`{"op":"signal","id":"9","type":"ack","data":"{}","quiet":true}`,
	`{"op":"signal","id":"10","type":"x","quiet":false}`,
	`{"op":"ping","id":"p"}`,
	`{"op":"ping"}`,
	`{"op":"forceDisconnect","id":"f","connectionId":"$PEER"}`,
	`{"op":"forceDisconnect","id":"f2","connectionId":"$SELF"}`,
	`{"op":"forceDisconnect","connectionId":"x"}`,
	`{"op":"disconnect"}`,
	`{"op":"welcome"}`,
	`{"op":""}`,
	`{"op":5}`,
	`{"op":"signal","id":"8","data":"\ud800"}`,
	`[]`, `null`, ``, `{`, "\xff\xfe",
}

// FuzzDecodeFrame: the decoder never panics, and what it accepts re-encodes
// to a frame it accepts again with the same content.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range frameSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := signaling.DecodeFrame(b)
		if err != nil {
			if _, ok := err.(*signaling.Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if fr.Op == "" {
			t.Fatal("accepted a frame without op")
		}
		again, err := json.Marshal(fr)
		if err != nil {
			t.Fatal(err)
		}
		fr2, err := signaling.DecodeFrame(again)
		if err != nil {
			t.Fatalf("re-encoded %s does not decode: %v", again, err)
		}
		if fr2.Op != fr.Op || fr2.ID != fr.ID || fr2.Type != fr.Type || fr2.Data != fr.Data || fr2.To != fr.To {
			t.Fatalf("round trip changed %+v into %+v", fr, fr2)
		}
	})
}

// FuzzAppendJSONString: the relay's string encoder agrees with
// encoding/json on every valid UTF-8 string.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "a", "\"\\", "\n\r\t\x00\x1f", "\u2028\u2029", "✓ é", "\xff", "<>&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q encoded as %s: %v", s, b, err)
		}
		if utf8.ValidString(s) && got != s {
			t.Fatalf("%q encoded as %s decodes to %q", s, b, got)
		}
	})
}

// FuzzHandleFrame feeds arbitrary frames into a live connection of a relay
// (its socket queue stands in for the network) and checks that it never
// panics and answers every frame exactly once: a result with the frame's
// id, an error, a pong or a disconnected frame.
func FuzzHandleFrame(f *testing.F) {
	for _, s := range frameSeeds {
		f.Add(true, []byte(s), string(token.Moderator))
	}
	f.Add(false, []byte(`{"op":"signal","id":"1"}`), string(token.Publisher))
	f.Add(true, []byte(`{"op":"signal","id":"1"}`), string(token.PublisherOnly))
	f.Fuzz(func(t *testing.T, text bool, b []byte, role string) {
		r, err := token.ParseRole(role)
		if err != nil {
			return
		}
		s, err := New(&Options{APIKey: "k", APISecret: "s", Clock: clock.NewFake(), Registry: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		newSock := func() *sock {
			return &sock{srv: s, wake: make(chan struct{}, 1), readerDone: make(chan struct{})}
		}
		me, peer := newSock(), newSock()
		if me.c, err = s.join(me, &token.Claims{SessionID: "fuzz", Role: r}); err != nil {
			t.Fatal(err)
		}
		if peer.c, err = s.join(peer, &token.Claims{SessionID: "fuzz"}); err != nil {
			t.Fatal(err)
		}
		in := strings.NewReplacer("$PEER", peer.c.id, "$SELF", me.c.id).Replace(string(b))
		me.q = nil
		typ := websocket.BinaryMessage
		if text {
			typ = websocket.TextMessage
		}
		s.handleFrame(me, typ, []byte(in))

		answers := 0
		for _, it := range me.q {
			if it.ev.kind != evRaw {
				continue // a signal echo
			}
			var out signaling.Frame
			if err := json.Unmarshal(it.ev.body, &out); err != nil {
				t.Fatalf("relay queued invalid JSON %q: %v", it.ev.body, err)
			}
			switch out.Op {
			case signaling.OpResult:
				sent, err := signaling.DecodeFrame([]byte(in))
				if err != nil || sent.ID != out.ID || out.Code == 0 || sent.Quiet && out.Code == signaling.CodeOK {
					t.Fatalf("result %+v for %q", out, in)
				}
				answers++
			case signaling.OpError:
				if out.Code != signaling.CodeInvalid || out.Message == "" {
					t.Fatalf("error %+v for %q", out, in)
				}
				answers++
			case signaling.OpPong, signaling.OpDisconnected:
				answers++
			default:
				t.Fatalf("relay queued %s for %q", out.Op, in)
			}
		}
		quiet := false // a quiet signal that succeeded is not answered
		if sent, err := signaling.DecodeFrame([]byte(in)); err == nil && text {
			quiet = sent.Op == signaling.OpSignal && sent.Quiet
		}
		if answers != 1 && !(answers == 0 && quiet) {
			t.Fatalf("%d answers to %q: %v", answers, in, me.q)
		}
		for _, it := range me.q {
			_ = appendFrame(nil, it, 0) // every queued item encodes
		}
		s.Close()
	})
}
