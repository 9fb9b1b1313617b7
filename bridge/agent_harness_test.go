package bridge_test

// The end-to-end harness: a real relay on httptest, the agent in process
// (NewAgent + Run), the simulated robot on a real pty, optionally a pty tap
// between them that records every byte the agent writes, and operators that
// are real signaling clients. Waits are bounded by waitLong and are never
// expectations.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/teleop/teleop/bridge"
	"github.com/teleop/teleop/clock"
	"github.com/teleop/teleop/devices"
	"github.com/teleop/teleop/devices/proto"
	"github.com/teleop/teleop/devices/sim"
	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/relay"
	"github.com/teleop/teleop/signaling/token"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	testKey    = "12345678"
	testSecret = "agent-test-secret-0123456789"
	testSess   = "robot-1"
	waitLong   = 10 * time.Second // bounds every wait; never an expectation
)

// ---- the relay ----

type testRelay struct {
	t     *testing.T
	clk   clock.Clock
	grace time.Duration

	mu    sync.Mutex
	addr  string
	relay *relay.Server
	srv   *http.Server
	ln    net.Listener
	done  chan struct{}
}

func newTestRelay(t *testing.T, clk clock.Clock, grace time.Duration) *testRelay {
	t.Helper()
	r := &testRelay{t: t, clk: clk, grace: grace}
	r.start("127.0.0.1:0")
	t.Cleanup(r.stop)
	return r
}

func (r *testRelay) start(addr string) {
	r.t.Helper()
	rl, err := relay.New(&relay.Options{APIKey: testKey, APISecret: testSecret, Clock: r.clk,
		RatePerSec: 1e6, RateBurst: 1e6, Grace: r.grace})
	if err != nil {
		r.t.Fatal(err)
	}
	var ln net.Listener
	for deadline := time.Now().Add(waitLong); ; {
		if ln, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // the old listener's port is being released
	}
	if err != nil {
		r.t.Fatal(err)
	}
	srv := &http.Server{Handler: rl}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	r.mu.Lock()
	r.addr, r.relay, r.srv, r.ln, r.done = ln.Addr().String(), rl, srv, ln, done
	r.mu.Unlock()
}

func (r *testRelay) url() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return "http://" + r.addr
}

// stop ends the relay: every socket closes, every session is forgotten.
func (r *testRelay) stop() {
	r.mu.Lock()
	rl, srv, done := r.relay, r.srv, r.done
	r.relay = nil
	r.mu.Unlock()
	if rl == nil {
		return
	}
	rl.Close()
	srv.Close()
	<-done
}

// restart stops the relay and starts a new one, with no memory of the old
// one's sessions, on the same address.
func (r *testRelay) restart() {
	r.mu.Lock()
	addr := r.addr
	r.mu.Unlock()
	r.stop()
	r.start(addr)
}

func (r *testRelay) token(role token.Role, data string) string {
	r.t.Helper()
	tok, err := token.New(testKey, testSecret, testSess, &token.Options{Role: role, ConnectionData: data, Now: r.clk.Now()})
	if err != nil {
		r.t.Fatal(err)
	}
	return tok
}

// rest sends a signal through the REST API (to everyone).
func (r *testRelay) rest(typ, data string) {
	r.t.Helper()
	jwt, err := token.NewProjectJWT(testKey, testSecret, r.clk.Now(), time.Minute)
	if err != nil {
		r.t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"type": typ, "data": data})
	req, _ := http.NewRequest("POST", r.url()+"/v2/project/"+testKey+"/session/"+testSess+"/signal", strings.NewReader(string(body)))
	req.Header.Set("X-OPENTOK-AUTH", jwt)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		b, _ := io.ReadAll(resp.Body)
		r.t.Fatalf("REST signal: %s %s", resp.Status, b)
	}
}

// forceDisconnect removes a connection through the REST API.
func (r *testRelay) forceDisconnect(id string) {
	r.t.Helper()
	jwt, err := token.NewProjectJWT(testKey, testSecret, r.clk.Now(), time.Minute)
	if err != nil {
		r.t.Fatal(err)
	}
	req, _ := http.NewRequest("DELETE", r.url()+"/v2/project/"+testKey+"/session/"+testSess+"/connection/"+id, nil)
	req.Header.Set("X-OPENTOK-AUTH", jwt)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		r.t.Fatalf("force disconnect: %s", resp.Status)
	}
}

// ---- the pty tap ----

// ptyTap sits between the agent and the simulated robot: the agent opens
// its pty (Path), the tap opens the robot's, and it copies both ways,
// recording every byte the agent writes — what reached the serial line.
type ptyTap struct {
	t      *testing.T
	master *os.File // the agent's side
	slave  *os.File // kept open so the agent's closes do not hang up the master
	robot  *os.File // the robot's pty slave
	path   string

	mu      sync.Mutex
	written []byte        // host → device, every byte
	grew    chan struct{} // closed and replaced when written grows
	wg      sync.WaitGroup
}

func newPtyTap(t *testing.T, robotPath string) *ptyTap {
	t.Helper()
	m, s, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	// A non-blocking duplicate of the master (pty.Open leaves it blocking):
	// the runtime's poller then serves it and Close unblocks its reader.
	fd, err := unix.FcntlInt(m.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	m.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	master := os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := sim.MakeRaw(s); err != nil {
		t.Fatal(err)
	}
	robot, err := os.OpenFile(robotPath, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.MakeRaw(robot); err != nil {
		t.Fatal(err)
	}
	tp := &ptyTap{t: t, master: master, slave: s, robot: robot, path: s.Name(), grew: make(chan struct{})}
	tp.wg.Add(2)
	go tp.copy(robot, master, true)
	go tp.copy(master, robot, false)
	t.Cleanup(tp.close)
	return tp
}

func (tp *ptyTap) copy(dst, src *os.File, record bool) {
	defer tp.wg.Done()
	buf := make([]byte, 512)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if record {
				tp.mu.Lock()
				tp.written = append(tp.written, buf[:n]...)
				close(tp.grew)
				tp.grew = make(chan struct{})
				tp.mu.Unlock()
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (tp *ptyTap) close() {
	tp.master.Close()
	tp.robot.Close()
	tp.slave.Close()
	tp.wg.Wait()
}

// bytes returns everything the agent wrote so far.
func (tp *ptyTap) bytes() []byte {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return slices.Clone(tp.written)
}

// lines returns the command lines the agent wrote, realtime bytes left
// out, without seq and checksum: "VEL 0.400 -0.200", "STOP".
func (tp *ptyTap) lines() []string { return commandLines(tp.bytes()) }

// waitLine waits for a command line (as lines gives it) after the first
// from lines, and returns its index.
func (tp *ptyTap) waitLine(from int, what string, match func(string) bool) int {
	tp.t.Helper()
	deadline := time.After(waitLong)
	for {
		tp.mu.Lock()
		ls := commandLines(tp.written)
		grew := tp.grew
		tp.mu.Unlock()
		for i := from; i < len(ls); i++ {
			if match(ls[i]) {
				return i
			}
		}
		select {
		case <-grew:
		case <-deadline:
			tp.t.Fatalf("no %s on the serial line after line %d; lines: %q", what, from, ls)
		}
	}
}

// waitBytes waits for b among the bytes written from offset on.
func (tp *ptyTap) waitBytes(from int, b []byte) int {
	tp.t.Helper()
	deadline := time.After(waitLong)
	for {
		tp.mu.Lock()
		i := indexFrom(tp.written, from, b)
		grew := tp.grew
		n := len(tp.written)
		tp.mu.Unlock()
		if i >= 0 {
			return i
		}
		select {
		case <-grew:
		case <-deadline:
			tp.t.Fatalf("no %q on the serial line after byte %d of %d", b, from, n)
		}
	}
}

func indexFrom(s []byte, from int, sub []byte) int {
	if from > len(s) {
		return -1
	}
	i := strings.Index(string(s[from:]), string(sub))
	if i < 0 {
		return -1
	}
	return from + i
}

// commandLines splits what a host wrote into its command lines. Realtime
// bytes (0x18, '?', '!') act wherever they are and are left out.
func commandLines(b []byte) []string {
	var out []string
	var cur []byte
	for _, c := range b {
		switch c {
		case proto.ByteResync, proto.ByteTelemetry, proto.ByteEstop:
		case '\n':
			out = append(out, lineBody(string(cur)))
			cur = cur[:0]
		default:
			cur = append(cur, c)
		}
	}
	return out
}

// lineBody drops "<seq> " and "*HH" from a command line.
func lineBody(l string) string {
	if i := strings.IndexByte(l, ' '); i > 0 {
		if _, err := strconv.Atoi(l[:i]); err == nil {
			l = l[i+1:]
		}
	}
	if i := strings.LastIndexByte(l, '*'); i >= 0 && len(l)-i == 3 {
		l = l[:i]
	}
	return l
}

// checkWire asserts safety invariant 5 on everything a host wrote: each
// line is one the firmware parses in strict mode (seq, upper-case verb,
// arguments, checksum), at most 64 bytes, printable ASCII only; the only
// other bytes are the realtime ones.
func checkWire(t *testing.T, b []byte) {
	t.Helper()
	var line []byte
	for i, c := range b {
		switch {
		case c == proto.ByteResync || c == proto.ByteTelemetry || c == proto.ByteEstop:
		case c == '\n':
			var cmd proto.Command
			if len(line)+1 > 64 {
				t.Errorf("line %q at byte %d is %d bytes with its newline", line, i, len(line)+1)
			}
			if err := proto.ParseCommand(line, &cmd, true); err != nil {
				t.Errorf("line %q at byte %d does not parse as a strict command: %v", line, i, err)
			}
			line = line[:0]
		case c < 0x20 || c > 0x7e:
			t.Errorf("byte 0x%02x at %d: a control or non-ASCII byte reached the serial line", c, i)
		default:
			line = append(line, c)
		}
	}
}

// ---- the whole stack ----

type stackOptions struct {
	fake       bool   // the agent, relay and operators share a fake clock; the serial link and robot keep the wall clock
	tap        bool   // record the agent's bytes through a pty tap
	config     string // YAML after the session and devices sections (safety, access, mappings, …)
	device     string // YAML of the one device "base", after its port; default settings
	simOpts    *sim.Options
	grace      time.Duration // the relay's; default 20s
	noStart    bool          // build everything but do not run the agent
	agentToken string        // the agent's connection data; default role=robot,name=sim-1
	agentProxy bool          // the agent dials the relay through a cutProxy (stack.proxy)
	session    string        // the session section without server; default a token
}

type stack struct {
	t     *testing.T
	clk   clock.Clock
	fake  *clock.Fake // nil with the wall clock
	relay *testRelay
	robot *sim.Robot
	tap   *ptyTap
	link  string
	cfg   *bridge.Config
	yaml  string
	agent *bridge.Agent
	proxy *cutProxy // the agent's way to the relay, with agentProxy
	reg   *prometheus.Registry
	log   *logSink

	cancel context.CancelFunc
	done   chan error
}

func newStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	s := &stack{t: t, clk: clock.Real, log: newLogSink(t)}
	if o.fake {
		s.fake = clock.NewFake()
		s.clk = s.fake
	}
	grace := o.grace
	if grace == 0 {
		grace = 20 * time.Second
	}
	s.relay = newTestRelay(t, s.clk, grace)

	so := sim.Options{WdogMs: 1000, TLMHz: 10, Logger: s.log.logger.With("side", "robot")}
	if o.simOpts != nil {
		so = *o.simOpts
		if so.Logger == nil {
			so.Logger = s.log.logger.With("side", "robot")
		}
	}
	s.link = filepath.Join(t.TempDir(), "robot")
	so.Link = s.link
	robot, err := sim.New(&so)
	if err != nil {
		t.Fatal(err)
	}
	s.robot = robot
	t.Cleanup(func() { robot.Close() })
	port := s.link
	if o.tap {
		s.tap = newPtyTap(t, robot.Path())
		port = s.tap.path
	}

	data := o.agentToken
	if data == "" {
		data = "role=robot,name=sim-1"
	}
	session := o.session
	if session == "" {
		session = "  token: " + s.relay.token(token.Publisher, data) + "\n"
	}
	device := o.device
	if device == "" {
		device = "    settings: {wdog_ms: 1000, tlm_hz: 10}\n"
	}
	s.yaml = "version: 1\nsession:\n  server: " + s.relay.url() + "\n" + session +
		"devices:\n  base:\n    port: " + port + "\n" + device + o.config
	cfg, err := bridge.Parse("test.yaml", []byte(s.yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v\n%s", err, s.yaml)
	}
	s.cfg = cfg
	s.reg = prometheus.NewRegistry()
	var sessionHook func(*signaling.Options)
	if o.agentProxy {
		s.proxy = newCutProxy(t, s.relay.url)
		sessionHook = func(so *signaling.Options) { so.NetDialContext = s.proxy.dial }
	}
	s.agent, err = bridge.NewAgent(cfg, &bridge.AgentOptions{
		Session: sessionHook,
		Logger:  s.log.logger, Clock: s.clk, Registry: s.reg,
		Device: func(name string, c *devices.Config, opts *devices.Options) {
			c.BootWait = 20 * time.Millisecond // the robot booted before the port was opened
			opts.Clock = clock.Real            // the serial link runs on the robot's time
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !o.noStart {
		s.start()
	}
	return s
}

// start runs the agent and waits until its device is ready and it has
// joined the session.
func (s *stack) start() {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan error, 1)
	go func() { s.done <- s.agent.Run(ctx) }()
	s.t.Cleanup(func() {
		if s.cancel != nil {
			s.stopAgent()
		}
	})
	s.waitReady()
}

func (s *stack) waitReady() {
	s.t.Helper()
	waitFor(s.t, "the device ready and the agent in the session", func() bool {
		st := s.agent.Status()
		return st.Devices["base"].State == "ready" && s.robot.State().Executed > 0 && s.agent.Connection() != ""
	})
}

// stopAgent cancels Run and waits for it to return nil.
func (s *stack) stopAgent() {
	s.t.Helper()
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("Run: %v", err)
		}
	case <-time.After(waitLong):
		s.t.Fatal("Run did not return after its context ended")
	}
}

// advance moves the fake clock in steps small enough for the session's
// liveness timers, letting the goroutines that the steps wake run.
func (s *stack) advance(d time.Duration) {
	s.t.Helper()
	const step = 50 * time.Millisecond
	for d > 0 {
		n := min(d, step)
		s.fake.Advance(n)
		d -= n
	}
}

// metric returns the value of a counter or gauge with the given labels.
func (s *stack) metric(name string, labels ...string) float64 {
	s.t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		s.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

// ---- operators ----

// ack is an ack signal as an operator reads it.
type ack struct {
	ID       json.RawMessage `json:"id"`
	Type     string          `json:"type"`
	Status   string          `json:"status"`
	Code     json.RawMessage `json:"code"`
	Reason   string          `json:"reason"`
	DeviceMs *float64        `json:"device_ms"`
	BridgeMs *float64        `json:"bridge_ms"`
	From     string          `json:"-"`
	raw      string
}

func (a ack) code() string {
	var s string
	if json.Unmarshal(a.Code, &s) == nil {
		return s
	}
	return string(a.Code)
}

func (a ack) String() string { return a.raw }

// op is an operator: a signaling client that records what the agent sends.
type op struct {
	t    *testing.T
	s    *stack
	sess *signaling.Session
	id   string

	mu         sync.Mutex
	nextID     int
	acks       map[string]ack // by id text
	allAcks    []ack
	statuses   []bridge.Status
	statusSeen int // waitStatus looks at statuses[statusSeen:]
	telemetry  []map[string]any
	tlmTo      []string
	tlmAt      []time.Time // on the stack's clock
	changed    chan struct{}
}

func (s *stack) operator(data string) *op {
	s.t.Helper()
	return s.operatorWith(data, nil)
}

func (s *stack) operatorWith(data string, adjust func(*signaling.Options)) *op {
	s.t.Helper()
	o := &op{t: s.t, s: s, acks: map[string]ack{}, changed: make(chan struct{})}
	so := signaling.Options{Clock: s.clk, Logger: s.log.logger.With("side", "operator "+data)}
	if adjust != nil {
		adjust(&so)
	}
	o.sess = signaling.NewSession(&so)
	o.sess.OnSignalType("ack", func(sig signaling.Signal) {
		var a ack
		if err := json.Unmarshal([]byte(sig.Data), &a); err != nil {
			o.t.Errorf("ack is not JSON: %q", sig.Data)
			return
		}
		a.raw, a.From = sig.Data, sig.From
		o.mu.Lock()
		o.allAcks = append(o.allAcks, a)
		if len(a.ID) > 0 {
			o.acks[string(a.ID)] = a
		}
		o.notifyLocked()
		o.mu.Unlock()
	})
	o.sess.OnSignalType("status", func(sig signaling.Signal) {
		var st bridge.Status
		if err := json.Unmarshal([]byte(sig.Data), &st); err != nil {
			o.t.Errorf("status is not JSON: %q", sig.Data)
			return
		}
		o.mu.Lock()
		o.statuses = append(o.statuses, st)
		o.notifyLocked()
		o.mu.Unlock()
	})
	o.sess.OnSignalType("telemetry", func(sig signaling.Signal) {
		var m map[string]any
		if err := json.Unmarshal([]byte(sig.Data), &m); err != nil {
			o.t.Errorf("telemetry is not JSON: %q", sig.Data)
			return
		}
		o.mu.Lock()
		o.telemetry = append(o.telemetry, m)
		o.tlmTo = append(o.tlmTo, sig.To)
		o.tlmAt = append(o.tlmAt, s.clk.Now())
		o.notifyLocked()
		o.mu.Unlock()
	})
	if err := o.sess.Connect(context.Background(), s.relay.url(), s.relay.token(token.Publisher, data)); err != nil {
		s.t.Fatal(err)
	}
	o.id = o.sess.ID()
	s.t.Cleanup(func() { o.sess.Close() })
	return o
}

func (o *op) notifyLocked() {
	close(o.changed)
	o.changed = make(chan struct{})
}

// send sends a signal of typ with data to everyone and returns nil or the
// relay's refusal.
func (o *op) send(typ, data string) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	return o.sess.Signal(ctx, signaling.Signal{Type: typ, Data: data})
}

// signal sends typ with an id spliced into fields ("" or `"linear":0.4`)
// and returns the id's text.
func (o *op) signal(typ, fields string) string {
	o.t.Helper()
	o.mu.Lock()
	o.nextID++
	id := strconv.Itoa(o.nextID)
	o.mu.Unlock()
	data := `{"id":` + id
	if fields != "" {
		data += "," + fields
	}
	data += "}"
	if err := o.send(typ, data); err != nil {
		o.t.Fatalf("send %s %s: %v", typ, data, err)
	}
	return id
}

func (o *op) drive(lin, ang float64) string {
	return o.signal("drive", fmt.Sprintf(`"linear":%g,"angular":%g`, lin, ang))
}

// waitAck waits for the ack of id.
func (o *op) waitAck(id string) ack {
	o.t.Helper()
	var a ack
	o.wait("the ack of id "+id, func() bool {
		var ok bool
		a, ok = o.acks[id]
		return ok
	})
	return a
}

// expectAck waits for the ack of id and checks its status (and code).
func (o *op) expectAck(id, status, code string) ack {
	o.t.Helper()
	a := o.waitAck(id)
	if a.Status != status || (code != "" && a.code() != code) {
		o.t.Fatalf("ack of %s: %s; want status %s code %q", id, a, status, code)
	}
	return a
}

// waitStatus waits for a status that satisfies ok and returns it.
// waitStatus waits for a status with what, looking only at statuses newer
// than the one the previous waitStatus matched: "the lease free" after
// "alice holding the lease" must not be answered by a status from before
// alice took it.
func (o *op) waitStatus(what string, ok func(bridge.Status) bool) bridge.Status {
	o.t.Helper()
	var st bridge.Status
	o.wait("a status with "+what, func() bool {
		for i := o.statusSeen; i < len(o.statuses); i++ {
			if ok(o.statuses[i]) {
				st = o.statuses[i]
				o.statusSeen = i + 1
				return true
			}
		}
		return false
	})
	return st
}

// wait waits until cond, called with o.mu held, holds.
func (o *op) wait(what string, cond func() bool) {
	o.t.Helper()
	deadline := time.After(waitLong)
	for {
		o.mu.Lock()
		ok := cond()
		ch := o.changed
		o.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			o.mu.Lock()
			defer o.mu.Unlock()
			o.t.Fatalf("operator %s: no %s within %v; acks %v; %d statuses", o.id, what, waitLong, o.allAcks, len(o.statuses))
		}
	}
}

func (o *op) hasAck(id string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, ok := o.acks[id]
	return ok
}

func (o *op) ackCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.allAcks)
}

// ---- small helpers ----

// waitFor polls cond until it holds; for state that has no event to wait on
// (the robot's and the agent's snapshots).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// logSink sends the stack's logs to t.Log and keeps them for assertions.
type logSink struct {
	t      *testing.T
	logger *slog.Logger

	mu    sync.Mutex
	lines []string
	done  bool
}

func newLogSink(t *testing.T) *logSink {
	ls := &logSink{t: t}
	ls.logger = slog.New(slog.NewTextHandler(ls, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		ls.mu.Lock()
		ls.done = true
		ls.mu.Unlock()
	})
	return ls
}

func (ls *logSink) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.lines = append(ls.lines, line)
	if !ls.done && testing.Verbose() {
		ls.t.Log(line)
	}
	return len(p), nil
}

// count counts lines with verb.
func count(lines []string, verb string) int {
	n := 0
	for _, l := range lines {
		if l == verb || strings.HasPrefix(l, verb+" ") {
			n++
		}
	}
	return n
}

func isVerb(v string) func(string) bool {
	return func(l string) bool { return l == v || strings.HasPrefix(l, v+" ") }
}

var _ = httptest.NewServer

// ---- a TCP proxy that can cut and refuse connections ----

type cutProxy struct {
	t      *testing.T
	target func() string // the relay's address now
	ln     net.Listener

	mu     sync.Mutex
	refuse bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newCutProxy(t *testing.T, target func() string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{t: t, target: target, ln: ln}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.refuse {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", strings.TrimPrefix(p.target(), "http://"))
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, up)
		p.wg.Add(2)
		p.mu.Unlock()
		go func() { defer p.wg.Done(); io.Copy(up, c); up.Close() }()
		go func() { defer p.wg.Done(); io.Copy(c, up); c.Close() }()
	}
}

// dial is a signaling.Options.NetDialContext through the proxy.
func (p *cutProxy) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, p.ln.Addr().String())
}

// cut closes every connection through the proxy.
func (p *cutProxy) cut() {
	p.mu.Lock()
	cs := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

func (p *cutProxy) setRefuse(on bool) {
	p.mu.Lock()
	p.refuse = on
	p.mu.Unlock()
}

// waitSockets waits until the relay has exactly n WebSockets open (its
// teleop_relay_sockets gauge). A test that cuts a connection and then moves
// the fake clock past the relay's grace must first know the relay noticed
// the cut: its grace timer is armed only then.
func (r *testRelay) waitSockets(n int) {
	r.t.Helper()
	want := fmt.Sprintf("teleop_relay_sockets %d\n", n)
	deadline := time.Now().Add(waitLong)
	for {
		resp, err := http.Get(r.url() + "/metrics")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), want) {
				return
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("the relay never had %d sockets open (last error %v)", n, err)
		}
		time.Sleep(5 * time.Millisecond) // polling the relay's state, not ordering events
	}
}
