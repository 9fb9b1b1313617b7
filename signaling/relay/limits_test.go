package relay_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/relay"
	"github.com/teleop/teleop/signaling/token"
)

// TestRateLimit: over the token bucket a send gets 429 and the connection
// stays; the bucket refills with time.
func TestRateLimit(t *testing.T) {
	h := newHarness(t, &relay.Options{RatePerSec: 2, RateBurst: 5})
	a := h.join(testSess, token.Publisher, "")
	for i := 1; i <= 6; i++ {
		id := a.signal("", "n", "")
		want := 200
		if i == 6 {
			want = 429
		}
		if r := a.result(id); r.Code != want {
			t.Fatalf("send %d: %+v, want %d", i, r, want)
		}
	}
	a.write(signaling.Frame{Op: signaling.OpPing, ID: "p"})
	if f := a.readOp(signaling.OpPong, signaling.OpSignal); f.ID != "p" {
		t.Fatalf("got %+v", f)
	}
	h.clock.Advance(500 * time.Millisecond) // one token
	if r := a.result(a.signal("", "n", "")); r.Code != 200 {
		t.Fatalf("after refill: %+v", r)
	}
	if r := a.result(a.signal("", "n", "")); r.Code != 429 {
		t.Fatalf("after one refilled token: %+v", r)
	}
}

// TestFrameTooBig: a frame over the limit closes the socket with 1009 and
// the connection waits for a resume.
func TestFrameTooBig(t *testing.T) {
	h := newHarness(t, nil)
	a := h.join(testSess, token.Publisher, "")
	big := fmt.Sprintf(`{"op":"signal","id":"x","data":"%s"}`, strings.Repeat("a", signaling.MaxFrameBytes))
	a.writeRaw(websocket.TextMessage, []byte(big))
	if code := a.readClose(); code != websocket.CloseMessageTooBig {
		t.Fatalf("closed with %d", code)
	}
	h.waitState(a.id, "grace")
	// Just under the limit is a frame like any other (here: too much data).
	b := h.join(testSess, token.Publisher, "")
	ok := fmt.Sprintf(`{"op":"signal","id":"x","data":"%s"}`, strings.Repeat("a", signaling.MaxFrameBytes-40))
	b.writeRaw(websocket.TextMessage, []byte(ok))
	if r := b.result("x"); r.Code != 413 {
		t.Fatalf("got %+v", r)
	}
}

// TestSessionFull: past the connection limit a connect gets an error frame
// (503) and close 4429.
func TestSessionFull(t *testing.T) {
	h := newHarness(t, &relay.Options{MaxConnectionsPerSession: 2})
	h.join(testSess, token.Publisher, "")
	h.join(testSess, token.Publisher, "")
	c := h.dialRaw(url.Values{"token": {h.token(testSess, token.Publisher, "")}}, nil)
	f := c.read()
	if f.Op != signaling.OpError || f.Code != signaling.CodeSessionFull || !strings.Contains(f.Message, "full") {
		t.Fatalf("got %+v", f)
	}
	if code := c.readClose(); code != signaling.CloseSessionFull {
		t.Fatalf("closed with %d", code)
	}
	// Other sessions are not affected.
	h.join("other", token.Publisher, "")
}

// TestSlowConsumer: a client that does not read fills its queue and is
// closed with 4008, while the others keep receiving everything; it resumes
// and gets what the replay buffer holds, in order.
func TestSlowConsumer(t *testing.T) {
	const n = 1200 // × 8 KB: more than socket buffers and the queue hold
	h := newHarness(t, &relay.Options{SendQueue: 256})
	sender := h.join(testSess, token.Publisher, "")
	slow := h.join(testSess, token.Publisher, "")
	var fast []*client
	for i := 0; i < 3; i++ {
		fast = append(fast, h.join(testSess, token.Publisher, ""))
	}
	data := strings.Repeat("x", 8000)
	var wg sync.WaitGroup
	errs := make([]error, len(fast))
	for i, c := range fast {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for got := 0; got < n; {
				_ = c.ws.SetReadDeadline(time.Now().Add(waitLong))
				_, b, err := c.ws.ReadMessage()
				if err != nil {
					errs[i] = err
					return
				}
				if bytes.HasPrefix(b, []byte(`{"op":"signal"`)) {
					got++
				}
			}
		}()
	}
	// The sender waits for each result, so it never outruns the fast
	// receivers by a queue; the slow one never reads.
	for i := 0; i < n; i++ {
		id := strconv.Itoa(i)
		sender.writeRaw(websocket.TextMessage, fmt.Appendf(nil, `{"op":"signal","id":"%s","type":"t","data":"%s"}`, id, data))
		want := fmt.Appendf(nil, `{"op":"result","id":"%s","code":200}`, id)
		for {
			_ = sender.ws.SetReadDeadline(time.Now().Add(waitLong))
			_, b, err := sender.ws.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(b, want) {
				break
			}
			if bytes.HasPrefix(b, []byte(`{"op":"result"`)) {
				t.Fatalf("got %s, want %s", b, want)
			}
		}
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("fast client %d: %v", i, err)
		}
	}
	eventually(t, "a slow consumer", func() bool { return h.relay.SlowConsumersForTest() == 1 })

	// Now the slow client reads what reached it, then the close.
	var last uint64
	var code int
	for {
		f, err := slow.readErr()
		if err != nil {
			ce, ok := err.(*websocket.CloseError)
			if !ok {
				t.Fatalf("slow client: %v", err)
			}
			code = ce.Code
			break
		}
		if f.Seq != 0 {
			if last != 0 && f.Seq != last+1 {
				t.Fatalf("seq %d after %d", f.Seq, last)
			}
			last = f.Seq
		}
	}
	if code != signaling.CloseSlowConsumer {
		t.Fatalf("slow client closed with %d", code)
	}
	h.waitState(slow.id, "grace")
	r := h.resume(slow, last)
	w := r.welcome
	if !w.Resumed || w.Seq != uint64(len(fast))+n {
		t.Fatalf("resumed welcome %+v (last %d)", w, last)
	}
	next := last + w.Missed + 1
	for next <= w.Seq {
		f := r.read()
		if f.Seq != next {
			t.Fatalf("replay seq %d, want %d (last %d, missed %d)", f.Seq, next, last, w.Missed)
		}
		next++
	}
	t.Logf("slow client read up to seq %d, then %d missed, %d replayed", last, w.Missed, w.Seq-last-w.Missed)
}

// TestOrigin: with AllowedOrigins set, other browser origins get 403
// before the upgrade; requests without Origin are allowed.
func TestOrigin(t *testing.T) {
	h := newHarness(t, &relay.Options{AllowedOrigins: []string{"https://console.example"}})
	tok := url.Values{"token": {h.token(testSess, token.Publisher, "")}}
	u := h.ws + "?" + tok.Encode()
	_, resp, err := websocket.DefaultDialer.Dial(u, http.Header{"Origin": {"https://evil.example"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("evil origin: err %v, resp %v", err, resp)
	}
	h.dialRaw(tok, http.Header{"Origin": {"https://console.example"}}).read()
	h.dialRaw(tok, nil).read()
}

// TestBadInput: malformed frames get an error frame and the connection
// stays; bad tokens get an error frame (401) and close 4401.
func TestBadInput(t *testing.T) {
	h := newHarness(t, nil)
	t.Run("frames", func(t *testing.T) {
		a := h.join(testSess, token.Publisher, "")
		a.t = t
		tests := map[string]struct {
			typ  int
			body string
			code int
			msg  string // part of the message
		}{
			"malformed json":        {websocket.TextMessage, `{"op":`, 400, "malformed"},
			"not an object":         {websocket.TextMessage, `[1,2]`, 400, "malformed"},
			"no op":                 {websocket.TextMessage, `{"id":"1"}`, 400, "op"},
			"op not a string":       {websocket.TextMessage, `{"op":5}`, 400, "malformed"},
			"unknown op":            {websocket.TextMessage, `{"op":"publish","id":"1"}`, 400, "unknown op"},
			"signal without id":     {websocket.TextMessage, `{"op":"signal","type":"x"}`, 400, "no id"},
			"force without id":      {websocket.TextMessage, `{"op":"forceDisconnect","connectionId":"x"}`, 400, "no id"},
			"binary frame":          {websocket.BinaryMessage, `{"op":"signal","id":"1"}`, 400, "binary"},
			"data not a string":     {websocket.TextMessage, `{"op":"signal","id":"1","data":{}}`, 400, "malformed"},
			"empty frame":           {websocket.TextMessage, ``, 400, "malformed"},
			"invalid utf-8 literal": {websocket.TextMessage, "{\"op\":\"sig\xffnal\"}", 400, "unknown op"},
		}
		for name, tc := range tests {
			t.Run(name, func(t *testing.T) {
				a.t = t
				a.writeRaw(tc.typ, []byte(tc.body))
				f := a.read()
				if f.Op != signaling.OpError || f.Code != tc.code || !strings.Contains(f.Message, tc.msg) {
					t.Fatalf("got %+v, want error %d containing %q", f, tc.code, tc.msg)
				}
				a.write(signaling.Frame{Op: signaling.OpPing, ID: "alive"})
				if f := a.read(); f.Op != signaling.OpPong || f.ID != "alive" {
					t.Fatalf("connection did not stay: %+v", f)
				}
			})
		}
	})
	t.Run("tokens", func(t *testing.T) {
		now := h.clock.Now()
		mint := func(key, secret, sess string, o *token.Options) string {
			if o == nil {
				o = &token.Options{}
			}
			if o.Now.IsZero() {
				o.Now = now
			}
			tok, err := token.New(key, secret, sess, o)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
		otherKeySession, err := token.NewSessionID("87654321", "", now, bytes.NewReader(make([]byte, 64)))
		if err != nil {
			t.Fatal(err)
		}
		tests := map[string]struct {
			q    url.Values
			hdr  http.Header
			want string // part of the message
		}{
			"missing":                {url.Values{}, nil, "no token"},
			"garbage":                {url.Values{"token": {"garbage"}}, nil, ""},
			"expired":                {url.Values{"token": {mint(testKey, testSecret, testSess, &token.Options{Now: now.Add(-48 * time.Hour)})}}, nil, "expired"},
			"wrong signature":        {url.Values{"token": {mint(testKey, "another-secret", testSess, nil)}}, nil, ""},
			"wrong key":              {url.Values{"token": {mint("87654321", testSecret, testSess, nil)}}, nil, ""},
			"session of another key": {url.Values{"token": {mint("87654321", testSecret, otherKeySession, nil)}}, nil, ""},
			"legacy wrong secret":    {url.Values{"token": {mint(testKey, "x-secret", testSess, &token.Options{Legacy: true})}}, nil, ""},
			"bad bearer":             {url.Values{}, http.Header{"Authorization": {"Bearer nope"}}, ""},
			"unknown resume key":     {url.Values{"resume": {"nope"}}, nil, "no token"},
		}
		for name, tc := range tests {
			t.Run(name, func(t *testing.T) {
				c := h.dialRaw(tc.q, tc.hdr)
				c.t = t
				f := c.read()
				if f.Op != signaling.OpError || f.Code != 401 || f.Message == "" || !strings.Contains(f.Message, tc.want) {
					t.Fatalf("got %+v", f)
				}
				if code := c.readClose(); code != signaling.CloseTokenRefused {
					t.Fatalf("closed with %d", code)
				}
			})
		}
		// Good tokens, both ways, both formats.
		h.dialRaw(nil, http.Header{"Authorization": {"Bearer " + mint(testKey, testSecret, testSess, nil)}}).readOp(signaling.OpWelcome)
		h.dialRaw(url.Values{"token": {mint(testKey, testSecret, testSess, &token.Options{Legacy: true})}}, nil).readOp(signaling.OpWelcome)
	})
	t.Run("not an upgrade", func(t *testing.T) {
		code, body := h.do(h.rest("GET", "/v1/connect", ""))
		if code != 400 || !strings.Contains(body, `"code":400`) {
			t.Fatalf("%d %s", code, body)
		}
	})
}
