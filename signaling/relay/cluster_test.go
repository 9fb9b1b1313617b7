package relay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/teleop/teleop/internal/natstest"
	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/relay"
	"github.com/teleop/teleop/signaling/token"
)

// Cluster tests run real nodes (relays on loopback listeners, wall clock)
// on a real nats-server, with Go clients. Timings are short so a node's
// death and a grace period pass quickly; nothing is asserted about time.
const (
	clusterGrace     = 1500 * time.Millisecond
	clusterHeartbeat = 100 * time.Millisecond
)

type node struct {
	name string
	srv  *relay.Server
	hs   *httptest.Server
	reg  *prometheus.Registry
}

func (n *node) url() string  { return n.hs.URL }
func (n *node) addr() string { return n.hs.Listener.Addr().String() }

type testCluster struct {
	t     *testing.T
	nats  *natstest.Server
	nodes []*node
}

func newCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, nats: natstest.ForTest(t)}
	for i := range n {
		tc.nodes = append(tc.nodes, tc.start(fmt.Sprintf("n%d", i+1)))
	}
	return tc
}

func (tc *testCluster) start(name string) *node {
	tc.t.Helper()
	reg := prometheus.NewRegistry()
	srv, err := relay.New(&relay.Options{
		APIKey: testKey, APISecret: testSecret, Grace: clusterGrace, Registry: reg, Logger: testLogger(tc.t).With("n", name),
		Cluster: &relay.ClusterOptions{URLs: tc.nats.URL(), NodeName: name, Heartbeat: clusterHeartbeat},
	})
	if err != nil {
		tc.t.Fatal(err)
	}
	n := &node{name: name, srv: srv, hs: httptest.NewServer(srv), reg: reg}
	tc.t.Cleanup(func() {
		n.srv.Close()
		n.hs.Close()
	})
	eventuallyLong(tc.t, name+" in sync with NATS", func() bool { return n.health().Cluster.Connected })
	return n
}

func (n *node) health() relay.Health {
	resp, err := http.Get(n.url() + "/healthz")
	if err != nil {
		return relay.Health{Cluster: &relay.ClusterHealth{}}
	}
	defer resp.Body.Close()
	var h relay.Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || h.Cluster == nil {
		return relay.Health{Cluster: &relay.ClusterHealth{}}
	}
	return h
}

// kill makes n die as a killed process: its listener and every socket and
// its NATS connection are cut, without a word to anyone.
func (n *node) kill() {
	n.hs.Listener.Close()
	n.srv.CrashForTest()
	n.hs.CloseClientConnections()
}

// eventuallyLong polls cond until it holds or 20 s pass (node deaths and
// grace periods run on the wall clock).
func eventuallyLong(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lb is what a load balancer does for a client: it dials the first node of
// prefer that accepts a connection.
type lb struct {
	mu     sync.Mutex
	prefer []*node
}

func (l *lb) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	l.mu.Lock()
	prefer := l.prefer
	l.mu.Unlock()
	var d net.Dialer
	var last error
	for _, n := range prefer {
		c, err := d.DialContext(ctx, network, n.addr())
		if err == nil {
			return c, nil
		}
		last = err
	}
	return nil, last
}

// cclient is a Go client that records what it receives, in order.
type cclient struct {
	*signaling.Session
	name   string
	mu     sync.Mutex
	events []string // "created <data>", "destroyed <data> <reason>", "signal <from data> <type> <data>", "reconnected …"
	byID   map[string]string
	recs   []signaling.Reconnected
}

func (tc *testCluster) client(sess, name string, prefer ...*node) *cclient {
	tc.t.Helper()
	l := &lb{prefer: prefer}
	return tc.clientWith(sess, name, prefer[0], &signaling.Options{NetDialContext: l.dial})
}

// clientWith connects a recording client to n with options o.
func (tc *testCluster) clientWith(sess, name string, n *node, o *signaling.Options) *cclient {
	tc.t.Helper()
	c := &cclient{name: name, byID: make(map[string]string)}
	o.InitialBackoff, o.MaxBackoff = 20*time.Millisecond, 100*time.Millisecond
	c.Session = signaling.NewSession(o)
	c.OnConnectionCreated(func(x signaling.Connection) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.byID[x.ConnectionID] = x.Data
		c.events = append(c.events, "created "+x.Data)
	})
	c.OnConnectionDestroyed(func(x signaling.Connection, reason string) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.events = append(c.events, "destroyed "+x.Data+" "+reason)
	})
	c.OnSignal(func(s signaling.Signal) {
		c.mu.Lock()
		defer c.mu.Unlock()
		from := "rest"
		if s.From != "" {
			from = c.byID[s.From]
		}
		c.events = append(c.events, "signal "+from+" "+s.Type+" "+s.Data)
	})
	c.OnReconnected(func(r signaling.Reconnected) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.recs = append(c.recs, r)
	})
	tok, err := token.New(testKey, testSecret, sess, &token.Options{Role: token.Moderator, ConnectionData: name})
	if err != nil {
		tc.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx, n.url(), tok); err != nil {
		tc.t.Fatalf("%s: connect: %v", name, err)
	}
	c.mu.Lock()
	c.byID[c.ID()] = name
	for _, x := range c.Connections() {
		c.byID[x.ConnectionID] = x.Data
	}
	c.mu.Unlock()
	tc.t.Cleanup(func() { c.Close() })
	return c
}

func (c *cclient) snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.events...)
}

// signals returns the data of the signals of type typ from sender, in
// order.
func (c *cclient) signals(from, typ string) []string {
	var out []string
	for _, e := range c.snapshot() {
		if p := "signal " + from + " " + typ + " "; strings.HasPrefix(e, p) {
			out = append(out, strings.TrimPrefix(e, p))
		}
	}
	return out
}

func (c *cclient) count(event string) int {
	n := 0
	for _, e := range c.snapshot() {
		if e == event {
			n++
		}
	}
	return n
}

func (c *cclient) send(t *testing.T, sig signaling.Signal) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Signal(ctx, sig); err != nil {
		t.Fatalf("%s: signal %+v: %v", c.name, sig, err)
	}
}

// knownEverywhere waits until every node has heard of every client.
func (tc *testCluster) knownEverywhere(sess string, clients ...*cclient) {
	tc.t.Helper()
	for _, x := range clients {
		eventuallyLong(tc.t, x.name+" known everywhere", func() bool {
			for _, n := range tc.nodes {
				if !knows(n, sess, x) {
					return false
				}
			}
			return true
		})
	}
}

func knows(n *node, sess string, c *cclient) bool {
	known, _ := n.srv.KnowsForTest(sess, c.ID())
	return known
}

// TestClusterBehavesAsOneRelay: three nodes, clients spread over them. The
// welcome lists the other nodes' connections; broadcasts reach every
// receiver once, in each sender's order; `to` reaches a connection on
// another node; presence comes before a sender's first signal; REST
// signals and force disconnect work through any node.
func TestClusterBehavesAsOneRelay(t *testing.T) {
	tc := newCluster(t, 3)
	n1, n2, n3 := tc.nodes[0], tc.nodes[1], tc.nodes[2]
	const sess = "one-relay"
	a := tc.client(sess, "a", n1)
	b := tc.client(sess, "b", n2)
	eventuallyLong(t, "n3 knows a and b", func() bool { return knows(n3, sess, a) && knows(n3, sess, b) })
	c := tc.client(sess, "c", n3)
	var listed []string
	for _, x := range c.Connections() {
		listed = append(listed, x.Data)
	}
	if strings.Join(listed, ",") != "a,b,c" {
		t.Fatalf("c's welcome lists %v, want a, b and c", listed)
	}
	a2 := tc.client(sess, "a2", n1)
	everyone := []*cclient{a, b, c, a2}
	tc.knownEverywhere(sess, everyone...)

	// Two senders on two nodes, 200 broadcasts each, at once.
	const n = 200
	var wg sync.WaitGroup
	for _, s := range []*cclient{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				if err := s.Post(signaling.Signal{Type: "seq", Data: fmt.Sprint(i)}); err != nil {
					t.Errorf("%s: post %d: %v", s.name, i, err)
					return
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.Flush(ctx); err != nil {
				t.Errorf("%s: flush: %v", s.name, err)
			}
		}()
	}
	wg.Wait()
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprint(i)
	}
	for _, r := range everyone {
		for _, s := range []string{"a", "b"} {
			eventuallyLong(t, fmt.Sprintf("%s has %s's %d signals", r.name, s, n), func() bool { return len(r.signals(s, "seq")) >= n })
		}
	}
	b.send(t, signaling.Signal{Type: "barrier"}) // anything duplicated would have arrived by now
	for _, r := range everyone {
		eventuallyLong(t, r.name+" has the barrier", func() bool { return len(r.signals("b", "barrier")) == 1 })
		for _, s := range []string{"a", "b"} {
			if got := r.signals(s, "seq"); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("%s got %s's signals %v: want each of 0..%d once, in order", r.name, s, got, n-1)
			}
		}
	}

	// To one connection on another node, and only to it.
	b.send(t, signaling.Signal{Type: "private", Data: "for c", To: c.ID()})
	b.send(t, signaling.Signal{Type: "barrier2"})
	for _, r := range everyone {
		eventuallyLong(t, r.name+" has barrier2", func() bool { return len(r.signals("b", "barrier2")) == 1 })
	}
	for _, r := range everyone {
		want := 0
		if r == c {
			want = 1
		}
		if got := len(r.signals("b", "private")); got != want {
			t.Fatalf("%s got %d private signals, want %d", r.name, got, want)
		}
	}

	// A newcomer on n2 signals at once: everyone sees it join first.
	d := tc.client(sess, "d", n2)
	d.send(t, signaling.Signal{Type: "hello"})
	for _, r := range []*cclient{a, c, a2} {
		eventuallyLong(t, r.name+" has d's hello", func() bool { return len(r.signals("d", "hello")) == 1 })
		ev := r.snapshot()
		created, hello := -1, -1
		for i, e := range ev {
			switch e {
			case "created d":
				created = i
			case "signal d hello ":
				hello = i
			}
		}
		if created < 0 || created > hello {
			t.Fatalf("%s saw d's hello at %d and d join at %d: %v", r.name, hello, created, ev[max(0, len(ev)-5):])
		}
	}

	// REST through n3: to everyone, and to a on n1.
	rest := func(n *node, method, path, body string) int {
		t.Helper()
		jwt, err := token.NewProjectJWT(testKey, testSecret, time.Now(), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(method, n.url()+path, strings.NewReader(body))
		req.Header.Set("X-OPENTOK-AUTH", jwt)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	base := "/v2/project/" + testKey + "/session/" + sess
	if code := rest(n3, "POST", base+"/signal", `{"type":"all","data":"x"}`); code != http.StatusNoContent {
		t.Fatalf("REST signal: %d", code)
	}
	if code := rest(n3, "POST", base+"/connection/"+a.ID()+"/signal", `{"type":"one","data":"y"}`); code != http.StatusNoContent {
		t.Fatalf("REST signal to a: %d", code)
	}
	everyone = append(everyone, d)
	for _, r := range everyone {
		eventuallyLong(t, r.name+" has the REST signal", func() bool { return len(r.signals("rest", "all")) == 1 })
	}
	eventuallyLong(t, "a has its REST signal", func() bool { return len(a.signals("rest", "one")) == 1 })

	// Force disconnect of b (on n2) through n1.
	if code := rest(n1, "DELETE", base+"/connection/"+b.ID(), ""); code != http.StatusNoContent {
		t.Fatalf("REST force disconnect: %d", code)
	}
	select {
	case <-b.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("b was not disconnected")
	}
	var ce *signaling.CloseError
	if err := b.Err(); !errors.As(err, &ce) || ce.Code != 4410 {
		t.Fatalf("b ended with %v, want close 4410", err)
	}
	for _, r := range []*cclient{a, c, a2, d} {
		eventuallyLong(t, r.name+" sees b leave", func() bool { return r.count("destroyed b "+signaling.ReasonForceDisconnected) == 1 })
	}
	if code := rest(n3, "DELETE", base+"/connection/"+b.ID(), ""); code != http.StatusNotFound {
		t.Fatalf("second force disconnect: %d, want 404", code)
	}
}

// TestClusterNodeDies: a node is killed mid-stream. Its client that
// reconnects in time resumes its connection on another node (same ID; the
// others see no change); the one that never comes back is announced
// destroyed, networkDisconnected, once to everyone, after the grace period.
func TestClusterNodeDies(t *testing.T) {
	tc := newCluster(t, 3)
	n1, n2, n3 := tc.nodes[0], tc.nodes[1], tc.nodes[2]
	const sess = "node-dies"
	a := tc.client(sess, "a", n1, n2)                                                    // on n1; its load balancer knows n2 too
	f := tc.clientWith(sess, "f", n1, &signaling.Options{Fallbacks: []string{n3.url()}}) // on n1; knows n3 itself
	gone := tc.client(sess, "gone", n1)
	b := tc.client(sess, "b", n2)
	c := tc.client(sess, "c", n3)
	tc.knownEverywhere(sess, a, f, gone, b, c)
	aID := a.ID()

	// a and b stream to c; n1 dies in the middle of it.
	const n = 300
	var wg sync.WaitGroup
	for _, s := range []*cclient{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				if i == n/3 && s == a {
					n1.kill()
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				err := s.Signal(ctx, signaling.Signal{Type: "seq", Data: fmt.Sprint(i), To: c.ID()})
				cancel()
				if err != nil {
					t.Errorf("%s: signal %d: %v", s.name, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if a.ID() != aID {
		t.Fatalf("a came back as %s, want its connection %s", a.ID(), aID)
	}
	// f moved to its fallback, n3, and kept its connection too.
	eventuallyLong(t, "f resumed on n3", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.recs) == 1
	})
	if f.recs[0].Connection.ConnectionID != f.recs[0].Previous.ConnectionID || !f.recs[0].Resumed {
		t.Fatalf("f's reconnect: %+v", f.recs[0])
	}
	if _, remote := n3.srv.KnowsForTest(sess, f.ID()); remote {
		t.Fatal("f is not on n3")
	}
	f.send(t, signaling.Signal{Type: "from-f", To: b.ID()})
	eventuallyLong(t, "b has f's signal", func() bool { return len(b.signals("f", "from-f")) == 1 })
	a.mu.Lock()
	recs := a.recs
	a.mu.Unlock()
	if len(recs) != 1 || !recs[0].Resumed || !recs[0].MissedUnknown {
		t.Fatalf("a's reconnects: %+v, want one resume on another node, with missedUnknown", recs)
	}
	b.send(t, signaling.Signal{Type: "barrier", To: c.ID()})
	eventuallyLong(t, "c has the barrier", func() bool { return len(c.signals("b", "barrier")) == 1 })

	// b's stream (n2 → n3) is untouched. a's keeps its order; around the
	// crash it may repeat a signal (n1 delivered it, its result was lost,
	// a resent it to n2) or lack one (n1 answered 200, then died before
	// its NATS buffer went out): docs/cluster.md.
	if got := c.signals("b", "seq"); len(got) != n {
		t.Fatalf("c got %d of b's %d signals", len(got), n)
	}
	prev, repeated, lost := -1, 0, 0
	for _, d := range c.signals("a", "seq") {
		var i int
		fmt.Sscan(d, &i)
		switch {
		case i < prev:
			t.Fatalf("c got a's %d after %d: %v", i, prev, c.signals("a", "seq"))
		case i == prev:
			repeated++
		default:
			lost += i - prev - 1
		}
		prev = i
	}
	if prev != n-1 || lost > n/10 {
		t.Fatalf("c's signals from a end at %d (want %d), %d lost: %v", prev, n-1, lost, c.signals("a", "seq"))
	}
	t.Logf("a's stream across the crash: %d repeated, %d lost", repeated, lost)

	// gone never comes back: after the grace period, b and c see it leave,
	// once; nobody sees a leave.
	for _, r := range []*cclient{b, c} {
		eventuallyLong(t, r.name+" sees gone leave", func() bool {
			return r.count("destroyed gone "+signaling.ReasonNetworkDisconnected) == 1
		})
	}
	a.send(t, signaling.Signal{Type: "after", To: c.ID()})
	eventuallyLong(t, "c has a's signal after the resume", func() bool { return len(c.signals("a", "after")) == 1 })
	for _, r := range []*cclient{a, b, c} {
		for _, e := range r.snapshot() {
			if strings.HasPrefix(e, "destroyed a ") || strings.HasPrefix(e, "created a") && r != a {
				t.Fatalf("%s saw %q: a's connection should have carried on", r.name, e)
			}
		}
		if got := r.count("destroyed gone " + signaling.ReasonNetworkDisconnected); r != a && got != 1 {
			t.Fatalf("%s saw gone leave %d times", r.name, got)
		}
	}
	if h := n2.health(); h.Cluster.Nodes != 2 {
		t.Fatalf("n2 sees %d nodes, want 2", h.Cluster.Nodes)
	}
}

// TestClusterWithoutNATS: when NATS is unreachable, nodes go on serving
// their own connections and say so; when it returns they re-sync.
func TestClusterWithoutNATS(t *testing.T) {
	tc := newCluster(t, 2)
	n1, n2 := tc.nodes[0], tc.nodes[1]
	const sess = "no-nats"
	a := tc.client(sess, "a", n1)
	b := tc.client(sess, "b", n2)
	eventuallyLong(t, "n1 knows b", func() bool { return knows(n1, sess, b) })

	tc.nats.Kill()
	for _, n := range []*node{n1, n2} {
		eventuallyLong(t, n.name+" reports NATS lost", func() bool {
			h := n.health()
			return h.Status == "degraded" && !h.Cluster.Connected
		})
	}
	// Local traffic goes on.
	a2 := tc.client(sess, "a2", n1)
	a.send(t, signaling.Signal{Type: "local", To: a2.ID()})
	eventuallyLong(t, "a2 has a's local signal", func() bool { return len(a2.signals("a", "local")) == 1 })

	if err := tc.nats.Restart(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node{n1, n2} {
		eventuallyLong(t, n.name+" back in sync", func() bool { return n.health().Status == "ok" })
	}
	// b hears of a2, who joined while NATS was away, and signals cross
	// nodes again.
	eventuallyLong(t, "b sees a2", func() bool { return b.count("created a2") == 1 })
	a2.send(t, signaling.Signal{Type: "across", To: b.ID()})
	eventuallyLong(t, "b has a2's signal", func() bool { return len(b.signals("a2", "across")) == 1 })
	b.send(t, signaling.Signal{Type: "back"})
	for _, r := range []*cclient{a, a2} {
		eventuallyLong(t, r.name+" has b's broadcast", func() bool { return len(r.signals("b", "back")) == 1 })
	}
	for _, r := range []*cclient{a, b, a2} {
		for _, e := range r.snapshot() {
			if strings.HasPrefix(e, "destroyed") {
				t.Fatalf("%s saw %q across the NATS outage", r.name, e)
			}
		}
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestClusterNodeRestartsUnderItsName: a node killed and restarted at once
// under the same name is a new node: the connections of the old one end
// after their grace period unless resumed (on the new node, here).
func TestClusterNodeRestartsUnderItsName(t *testing.T) {
	tc := newCluster(t, 2)
	n1, n2 := tc.nodes[0], tc.nodes[1]
	const sess = "restart"
	x := tc.client(sess, "x", n1)
	b := tc.client(sess, "b", n2)
	eventuallyLong(t, "n2 knows x", func() bool { return knows(n2, sess, x) })
	n1.kill()
	n1again := tc.start("n1")
	r := tc.client(sess, "r", n1again)
	r.send(t, signaling.Signal{Type: "hi", To: b.ID()})
	eventuallyLong(t, "b hears r on the new n1", func() bool { return len(b.signals("r", "hi")) == 1 })
	eventuallyLong(t, "b sees x leave", func() bool { return b.count("destroyed x "+signaling.ReasonNetworkDisconnected) == 1 })
	if known, _ := n1again.srv.KnowsForTest(sess, x.ID()); known {
		t.Fatal("the restarted n1 still has x")
	}
}

// TestClusterSignalsRightAfterARemoteJoin: a connection that joined another
// node a moment ago (its node has not told the sender's node yet) already
// gets broadcasts, and a signal sent to it is delivered, not refused.
func TestClusterSignalsRightAfterARemoteJoin(t *testing.T) {
	tc := newCluster(t, 2)
	n1, n2 := tc.nodes[0], tc.nodes[1]
	const sess = "right-after"
	s := tc.client(sess, "s", n1)
	unheard := 0
	defer func() { t.Logf("n1 had not heard of the newcomer yet in %d of 10 rounds", unheard) }()
	for i := range 10 {
		name := fmt.Sprintf("x%d", i)
		x := tc.client(sess, name, n2)
		if !knows(n1, sess, x) {
			unheard++
		}
		s.send(t, signaling.Signal{Type: "to", To: x.ID()})
		s.send(t, signaling.Signal{Type: "all"})
		eventuallyLong(t, name+" has both", func() bool {
			return len(x.signals("s", "to")) == 1 && len(x.signals("s", "all")) == 1
		})
	}
}

// TestClusterSlowNodeIsNotDead: a node silent for longer than the node
// timeout but back within the grace period keeps its connections: the
// others' grace periods for them stop when it is heard again.
func TestClusterSlowNodeIsNotDead(t *testing.T) {
	tc := newCluster(t, 2)
	n1, n2 := tc.nodes[0], tc.nodes[1]
	const sess = "slow"
	x := tc.client(sess, "x", n1)
	b := tc.client(sess, "b", n2)
	eventuallyLong(t, "n2 knows x", func() bool { return knows(n2, sess, x) })

	n1.srv.PauseHeartbeatsForTest(true)
	eventuallyLong(t, "n2 takes n1 for dead", func() bool { return n2.srv.InGraceForTest(sess, x.ID()) })
	n1.srv.PauseHeartbeatsForTest(false)
	eventuallyLong(t, "n2 hears n1 again", func() bool { return !n2.srv.InGraceForTest(sess, x.ID()) })
	if known, _ := n2.srv.KnowsForTest(sess, x.ID()); !known {
		t.Fatal("n2 dropped x")
	}
	x.send(t, signaling.Signal{Type: "still", To: b.ID()})
	eventuallyLong(t, "b hears x", func() bool { return len(b.signals("x", "still")) == 1 })
	for _, e := range b.snapshot() {
		if strings.HasPrefix(e, "destroyed") {
			t.Fatalf("b saw %q", e)
		}
	}
}
