package signaling_test

import (
	"context"
	"log/slog"
	"net"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/relay"
	"github.com/teleop/teleop/signaling/token"
)

const (
	apiKey    = "123456"
	apiSecret = "test-secret"
	// wait bounds every wait for an event; nothing in these tests should
	// take more than a fraction of it.
	wait = 10 * time.Second
)

// testLogger sends slog output to t.Logf.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Logf("%s", strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// relayEnv is a real relay on a loopback httptest server.
type relayEnv struct {
	t     testing.TB
	relay *relay.Server
	srv   *httptest.Server
	URL   string
}

// startRelay starts a relay. With ln nil it listens on a fresh port.
func startRelay(t testing.TB, o *relay.Options, ln net.Listener) *relayEnv {
	t.Helper()
	var opts relay.Options
	if o != nil {
		opts = *o
	}
	opts.APIKey, opts.APISecret = apiKey, apiSecret
	if opts.Logger == nil {
		opts.Logger = testLogger(t).With("side", "relay")
	}
	r, err := relay.New(&opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(r)
	if ln != nil {
		srv.Listener.Close()
		srv.Listener = ln
	}
	srv.Start()
	e := &relayEnv{t: t, relay: r, srv: srv, URL: srv.URL}
	t.Cleanup(e.Stop)
	return e
}

// Stop closes the relay (every socket gets 1001) and its listener.
func (e *relayEnv) Stop() {
	e.relay.Close()
	e.srv.Close()
}

// Addr returns the relay's host:port.
func (e *relayEnv) Addr() string { return e.srv.Listener.Addr().String() }

// mint returns a token for session with connection data and role.
func mint(t testing.TB, session, data string, role token.Role) string {
	t.Helper()
	tok, err := token.New(apiKey, apiSecret, session, &token.Options{Role: role, ConnectionData: data, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// client is a Session with every event recorded in order.
type client struct {
	*signaling.Session
	t      testing.TB
	events chan any
}

// Recorded events.
type (
	created   struct{ c signaling.Connection }
	destroyed struct {
		c      signaling.Connection
		reason string
	}
	reconnecting struct{ err error }
	disconnected struct{ err error }
)

// dial connects a recorded client to session on e with connection data
// data. It closes the client at the end of the test.
func dial(t testing.TB, url, session, data string, o *signaling.Options) *client {
	t.Helper()
	return dialToken(t, url, mint(t, session, data, token.Publisher), o)
}

func dialToken(t testing.TB, url, tok string, o *signaling.Options) *client {
	t.Helper()
	var opts signaling.Options
	if o != nil {
		opts = *o
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t).With("side", "client")
	}
	c := &client{Session: signaling.NewSession(&opts), t: t, events: make(chan any, 10000)}
	c.OnSignal(func(s signaling.Signal) { c.events <- s })
	c.OnConnectionCreated(func(x signaling.Connection) { c.events <- created{x} })
	c.OnConnectionDestroyed(func(x signaling.Connection, r string) { c.events <- destroyed{x, r} })
	c.OnReconnecting(func(err error) { c.events <- reconnecting{err} })
	c.OnReconnected(func(r signaling.Reconnected) { c.events <- r })
	c.OnDisconnected(func(err error) { c.events <- disconnected{err} })
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.Connect(ctx, url, tok); err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// next returns the next event.
func (c *client) next() any {
	c.t.Helper()
	select {
	case e := <-c.events:
		return e
	case <-time.After(wait):
		c.t.Fatalf("%s: no event within %v", c.ID(), wait)
		return nil
	}
}

// nextOf returns the next event, which must be a T.
func nextOf[T any](c *client) T {
	c.t.Helper()
	e := c.next()
	v, ok := e.(T)
	if !ok {
		var zero T
		c.t.Fatalf("%s: got event %T %+v, want a %T", c.ID(), e, e, zero)
	}
	return v
}

// quiet fails if an event is pending right now. Call it after a barrier.
func (c *client) quiet() {
	c.t.Helper()
	select {
	case e := <-c.events:
		c.t.Fatalf("%s: unexpected event %T %+v", c.ID(), e, e)
	default:
	}
}

// send signals and fails the test on error.
func (c *client) send(sig signaling.Signal) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.Signal(ctx, sig); err != nil {
		c.t.Fatalf("%s: signal %+v: %v", c.ID(), sig, err)
	}
}

// conns records the net.Conns a client dials so a test can break them: a
// real network failure as the client sees one.
type conns struct {
	mu    sync.Mutex
	all   []*testConn
	dials int
}

// testConn is a real TCP connection that a test can cut or stall.
type testConn struct {
	net.Conn
	stalled atomic.Bool
	once    sync.Once
	closed  chan struct{}
}

// Read returns what the relay sent, unless the connection is stalled: then
// what arrives is lost, as on a black-holed network, until Close.
func (c *testConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.stalled.Load() {
		<-c.closed
		return 0, net.ErrClosed
	}
	return n, err
}

func (c *testConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

func (cs *conns) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	cs.mu.Lock()
	cs.dials++
	cs.mu.Unlock()
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := &testConn{Conn: nc, closed: make(chan struct{})}
	cs.mu.Lock()
	cs.all = append(cs.all, tc)
	cs.mu.Unlock()
	return tc, nil
}

// last returns the newest connection.
func (cs *conns) last(t testing.TB) *testConn {
	t.Helper()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if len(cs.all) == 0 {
		t.Fatal("no connection dialed")
	}
	return cs.all[len(cs.all)-1]
}

// breakLast closes the newest connection under the client.
func (cs *conns) breakLast(t testing.TB) { t.Helper(); cs.last(t).Close() }

func (cs *conns) count() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.dials
}

// recv waits for a value on ch.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("no %s within %v", what, wait)
		var zero T
		return zero
	}
}

// checkGoroutines fails the test if goroutines of the signaling client
// outlive it. Register it first so that it runs after every other cleanup.
func checkGoroutines(t testing.TB) {
	t.Cleanup(func() {
		deadline := time.Now().Add(wait)
		for {
			left := clientGoroutines()
			if len(left) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d client goroutines left after the test:\n%s", len(left), strings.Join(left, "\n\n"))
				return
			}
			runtime.Gosched()
			time.Sleep(10 * time.Millisecond) // polling for exit, not ordering events
		}
	})
}

// clientGoroutines returns the stacks of goroutines running code of the
// client (package signaling, not its subpackages).
func clientGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "teleop/signaling.(*Session)") || strings.Contains(g, "teleop/signaling.(*sconn)") {
			out = append(out, g)
		}
	}
	return out
}
