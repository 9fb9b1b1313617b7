package relay_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/teleop/teleop/clock"
	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/relay"
	"github.com/teleop/teleop/signaling/token"
)

const (
	testKey    = "12345678"
	testSecret = "test-secret-0123456789abcdef"
	testSess   = "robot-1"
	waitLong   = 10 * time.Second // bounds every wait in these tests; never an expectation
)

// harness is a relay on a loopback httptest server with a fake clock.
type harness struct {
	t     *testing.T
	relay *relay.Server
	srv   *httptest.Server
	clock *clock.Fake
	ws    string // ws://…/v1/connect
}

func newHarness(t *testing.T, o *relay.Options) *harness {
	t.Helper()
	var opts relay.Options
	if o != nil {
		opts = *o
	}
	fc := clock.NewFake()
	if opts.Clock == nil {
		opts.Clock = fc
	}
	opts.APIKey, opts.APISecret = testKey, testSecret
	if opts.RatePerSec == 0 {
		opts.RatePerSec, opts.RateBurst = 1e6, 1e6 // the fake clock does not refill buckets
	}
	r, err := relay.New(&opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r)
	h := &harness{t: t, relay: r, srv: srv, clock: fc, ws: "ws" + strings.TrimPrefix(srv.URL, "http") + "/v1/connect"}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("close relay: %v", err)
		}
		srv.Close()
	})
	return h
}

// token mints a token for session sess at the fake clock's time.
func (h *harness) token(sess string, role token.Role, data string) string {
	h.t.Helper()
	tok, err := token.New(testKey, testSecret, sess, &token.Options{Role: role, ConnectionData: data, Now: h.clock.Now()})
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

// client is a raw protocol client over gorilla/websocket.
type client struct {
	t       *testing.T
	ws      *websocket.Conn
	welcome *signaling.Frame
	id      string             // connection ID
	n       int                // ids of sends
	pending []*signaling.Frame // events read while waiting for a result
}

// dial connects with query q (token, resume, last) and reads the welcome.
func (h *harness) dial(q url.Values) *client {
	h.t.Helper()
	c := h.dialRaw(q, nil)
	f := c.read()
	if f.Op != signaling.OpWelcome {
		h.t.Fatalf("first frame is %s (%+v), want welcome", f.Op, f)
	}
	c.welcome, c.id = f, f.Connection.ConnectionID
	return c
}

// join connects a new connection to sess with role and data.
func (h *harness) join(sess string, role token.Role, data string) *client {
	h.t.Helper()
	return h.dial(url.Values{"token": {h.token(sess, role, data)}})
}

// resume reconnects c's connection with its resume key after seq last.
func (h *harness) resume(c *client, last uint64) *client {
	h.t.Helper()
	return h.dial(url.Values{"resume": {c.welcome.ResumeKey}, "last": {itoa(last)}})
}

func (h *harness) dialRaw(q url.Values, hdr http.Header) *client {
	h.t.Helper()
	u := h.ws
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	ws, resp, err := websocket.DefaultDialer.Dial(u, hdr)
	if err != nil {
		if resp != nil {
			h.t.Fatalf("dial: %v (HTTP %d)", err, resp.StatusCode)
		}
		h.t.Fatalf("dial: %v", err)
	}
	h.t.Cleanup(func() { ws.Close() })
	return &client{t: h.t, ws: ws}
}

// readErr reads one frame; it fails on timeouts only through the error.
func (c *client) readErr() (*signaling.Frame, error) {
	_ = c.ws.SetReadDeadline(time.Now().Add(waitLong))
	typ, b, err := c.ws.ReadMessage()
	if err != nil {
		return nil, err
	}
	if typ != websocket.TextMessage {
		c.t.Fatalf("relay sent a binary frame")
	}
	f, err := signaling.DecodeFrame(b)
	if err != nil {
		c.t.Fatalf("relay sent an undecodable frame %q: %v", b, err)
	}
	return f, nil
}

func (c *client) read() *signaling.Frame {
	c.t.Helper()
	if len(c.pending) > 0 {
		f := c.pending[0]
		c.pending = c.pending[1:]
		return f
	}
	f, err := c.readErr()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

// readOp reads frames until one with op, failing on any other op not in skip.
func (c *client) readOp(op string, skip ...string) *signaling.Frame {
	c.t.Helper()
	for {
		f := c.read()
		if f.Op == op {
			return f
		}
		ok := false
		for _, s := range skip {
			ok = ok || s == f.Op
		}
		if !ok {
			c.t.Fatalf("got %s frame %+v while waiting for %s", f.Op, f, op)
		}
	}
}

// readClose reads until the socket closes and returns the close code.
func (c *client) readClose() int {
	c.t.Helper()
	for {
		_, err := c.readErr()
		if err == nil {
			continue
		}
		if ce, ok := err.(*websocket.CloseError); ok {
			return ce.Code
		}
		c.t.Fatalf("socket ended without a close frame: %v", err)
	}
}

func (c *client) write(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.writeRaw(websocket.TextMessage, b)
}

func (c *client) writeRaw(typ int, b []byte) {
	c.t.Helper()
	_ = c.ws.SetWriteDeadline(time.Now().Add(waitLong))
	if err := c.ws.WriteMessage(typ, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// signal sends a signal frame and returns its id.
func (c *client) signal(to, typ, data string) string {
	c.t.Helper()
	c.n++
	id := "s" + itoa(uint64(c.n))
	c.write(signaling.Frame{Op: signaling.OpSignal, ID: id, To: to, Type: typ, Data: data})
	return id
}

// result reads frames until the result for id; events read on the way
// are kept for later reads.
func (c *client) result(id string) *signaling.Frame {
	c.t.Helper()
	for {
		f, err := c.readErr()
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		switch {
		case f.Op == signaling.OpResult && f.ID == id:
			return f
		case f.Op == signaling.OpSignal || f.Op == signaling.OpConnectionCreated || f.Op == signaling.OpConnectionDestroyed:
			c.pending = append(c.pending, f)
		default:
			c.t.Fatalf("got %+v while waiting for the result of %q", f, id)
		}
	}
}

// drop closes the TCP connection without a close frame: a network loss.
func (c *client) drop() { c.ws.NetConn().Close() }

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// eventually polls cond until it holds or waitLong passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// rest builds a REST request with a valid project JWT.
func (h *harness) rest(method, path, body string) *http.Request {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	jwt, err := token.NewProjectJWT(testKey, testSecret, h.clock.Now(), 3*time.Minute)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("X-OPENTOK-AUTH", jwt)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// do sends req and returns the status and body.
func (h *harness) do(req *http.Request) (int, string) {
	h.t.Helper()
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
