package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teleop/teleop/demo"
	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/token"
)

// The demo stack is real in these tests: the relay and console, the
// simulated robot on a pty and the agent that drives it. Each test gives
// the robot a private link, so a `teleop demo` or `teleop sim` running on
// the machine keeps /tmp/teleop-sim.

// startDemoStack runs demo.Start on a free loopback port until the test ends.
func startDemoStack(t *testing.T, opts *demo.Options) *demo.Stack {
	t.Helper()
	var o demo.Options
	if opts != nil {
		o = *opts
	}
	o.APIKey, o.APISecret = sessKey, sessSecret
	if o.Link == "" {
		o.Link = filepath.Join(t.TempDir(), "sim")
	}
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st, err := demo.Start(ln, &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close the demo: %v", err)
		}
	})
	return st
}

// waitDeviceReady waits until the agent has done its handshake with the
// robot: drives before that are rejected not_ready.
func waitDeviceReady(t *testing.T, st *demo.Stack) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for st.Agent().Status().Devices["base"].State != "ready" {
		if time.Now().After(deadline) {
			t.Fatalf("the agent's device never became ready: %+v", st.Agent().Status())
		}
		<-tick.C
	}
}

// demoClient is a Go client of the demo session that records the signals
// it receives and wakes waiters on every signal and connection change.
type demoClient struct {
	t *testing.T
	s *signaling.Session

	mu      sync.Mutex
	got     []signaling.Signal // guarded by mu
	changed chan struct{}      // cap 1
	nextID  int                // guarded by mu: the id of the next drive
}

func joinDemo(t *testing.T, url, tok string) *demoClient {
	t.Helper()
	c := &demoClient{t: t, s: signaling.NewSession(nil), changed: make(chan struct{}, 1), nextID: 1000}
	c.s.OnSignal(func(sig signaling.Signal) {
		c.mu.Lock()
		c.got = append(c.got, sig)
		c.mu.Unlock()
		c.poke()
	})
	c.s.OnConnectionCreated(func(signaling.Connection) { c.poke() })
	c.s.OnConnectionDestroyed(func(signaling.Connection, string) { c.poke() })
	if err := c.s.Connect(t.Context(), url, tok); err != nil {
		t.Fatalf("join the demo session: %v", err)
	}
	t.Cleanup(func() { c.s.Close() })
	return c
}

func (c *demoClient) poke() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// until waits for ok, re-checking it on every change and every tick; it
// fails the test after waitLong.
func (c *demoClient) until(what string, tick time.Duration, ok func() bool) {
	c.t.Helper()
	deadline := time.NewTimer(waitLong)
	defer deadline.Stop()
	tk := time.NewTicker(tick)
	defer tk.Stop()
	for !ok() {
		select {
		case <-c.changed:
		case <-tk.C:
		case <-deadline.C:
			c.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// robot waits for the agent's connection and returns it.
func (c *demoClient) robot() signaling.Connection {
	c.t.Helper()
	var robot signaling.Connection
	c.until("the robot's connection ("+demo.RobotData+")", time.Second, func() bool {
		for _, conn := range c.s.Connections() {
			if conn.Data == demo.RobotData {
				robot = conn
				return true
			}
		}
		return false
	})
	return robot
}

// ack is the agent's answer to a signal (docs/configuration.md, outputs).
type ack struct {
	ID       int      `json:"id"`
	Type     string   `json:"type"`
	Status   string   `json:"status"`
	Code     string   `json:"code"`
	Reason   string   `json:"reason"`
	DeviceMs *float64 `json:"device_ms"`
}

func (c *demoClient) ackFor(id int) (ack, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.got {
		if s.Type != "ack" {
			continue
		}
		var a ack
		if json.Unmarshal([]byte(s.Data), &a) == nil && a.ID == id {
			return a, true
		}
	}
	return ack{}, false
}

// send signals, failing the test on error, and returns the id it used.
func (c *demoClient) send(typ, to, format string, args ...any) int {
	c.t.Helper()
	c.mu.Lock()
	id := c.nextID
	c.nextID++
	c.mu.Unlock()
	data := fmt.Sprintf(`{"id":%d`, id) + fmt.Sprintf(format, args...) + "}"
	if err := c.s.Signal(c.t.Context(), signaling.Signal{Type: typ, Data: data, To: to}); err != nil {
		c.t.Fatalf("signal %s %s: %v", typ, data, err)
	}
	return id
}

// waitAck waits for the agent's ack of id.
func (c *demoClient) waitAck(id int) ack {
	c.t.Helper()
	var a ack
	c.until(fmt.Sprintf("the ack of #%d", id), time.Second, func() (ok bool) { a, ok = c.ackFor(id); return ok })
	return a
}

// driveUntil sends drive to the robot at 10 Hz (inside the agent's 500 ms
// deadman), as an operator holding a key does, until done holds; it
// returns the acks it got.
func (c *demoClient) driveUntil(robot string, linear, angular float64, what string, done func() bool) []ack {
	c.t.Helper()
	var ids []int
	deadline := time.NewTimer(waitLong)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !done() {
		ids = append(ids, c.send("drive", robot, `,"linear":%g,"angular":%g`, linear, angular))
		select {
		case <-tick.C:
		case <-deadline.C:
			c.t.Fatalf("timed out waiting for %s", what)
		}
	}
	var acks []ack
	for _, id := range ids {
		if a, ok := c.ackFor(id); ok {
			acks = append(acks, a)
		}
	}
	return acks
}

// TestDemo runs `teleop demo` in-process: it prints the console URL with a
// token, a real client with that token sees the robot, its drive is acked
// ok and moves the simulated robot, and Ctrl-C ends it with exit 0 after
// the agent stopped the robot.
func TestDemo(t *testing.T) {
	t.Parallel()
	var out, logs lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan *demo.Stack, 1)
	c := &demoConfig{
		listen: "127.0.0.1:0", link: filepath.Join(t.TempDir(), "sim"),
		logFormat: "text", logLevel: "info", self: "bin/teleop",
		started: func(st *demo.Stack) { started <- st },
	}
	done := make(chan error, 1)
	go func() { done <- runDemo(ctx, &out, &logs, c) }()
	var st *demo.Stack
	select {
	case st = <-started:
	case err := <-done:
		t.Fatalf("teleop demo ended before it started: %v\nstdout:\n%s\nlog:\n%s", err, out.String(), logs.String())
	case <-time.After(waitLong):
		t.Fatalf("teleop demo did not start\nstdout:\n%s\nlog:\n%s", out.String(), logs.String())
	}
	defer func() {
		if t.Failed() {
			t.Logf("stdout:\n%s\nlog:\n%s", out.String(), logs.String())
		}
	}()

	intro := out.String()
	m := regexp.MustCompile(`(?m)^  (http://127\.0\.0\.1:\d+)/#token=(\S+)$`).FindStringSubmatch(intro)
	if m == nil {
		t.Fatalf("no console URL with a token on a line of its own:\n%s", intro)
	}
	url, tok := m[1], m[2]
	claims, err := token.Verify(tok, st.APIKey(), st.APISecret(), time.Now())
	if err != nil || claims.ConnectionData != demo.OperatorData || claims.SessionID != "demo" {
		t.Fatalf("the console's token: %+v, %v", claims, err)
	}
	for _, want := range []string{
		"bin/teleop drive --server " + url + " --token ",
		"bin/teleop listen --server " + url + " --token ",
		"export TELEOP_API_KEY=" + st.APIKey() + " TELEOP_API_SECRET=" + st.APISecret() + " TELEOP_SERVER=" + url,
		"port     " + c.link + "\n",
		"listening on " + url,
	} {
		if !strings.Contains(intro, want) {
			t.Errorf("the intro lacks %q:\n%s", want, intro)
		}
	}

	op := joinDemo(t, url, tok)
	robot := op.robot()
	rob := st.Robot()
	start := rob.State()
	acks := op.driveUntil(robot.ConnectionID, 0.3, 0, "the simulated robot to move 5 cm", func() bool {
		s := rob.State()
		return s.X-start.X > 0.05 && s.Linear > 0
	})
	if len(acks) == 0 || acks[len(acks)-1].Status != "ok" {
		t.Fatalf("acks of the drives: %+v, want the newest ok", acks)
	}
	moving := rob.State()
	t.Logf("the robot moved from (%.3f, %.3f) to (%.3f, %.3f); %d acks, the last %+v", start.X, start.Y, moving.X, moving.Y, len(acks), acks[len(acks)-1])

	// Ctrl-C while the robot moves: the agent stops it before anything
	// else closes.
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("teleop demo after Ctrl-C: %v, want nil (exit 0)", err)
		}
	case <-time.After(waitLong):
		t.Fatal("teleop demo did not stop")
	}
	end := rob.State()
	if end.Linear != 0 || end.Left != 0 || end.Right != 0 || end.Executed <= moving.Executed {
		t.Errorf("after the demo stopped the robot's setpoint is %.2f m/s (wheels %.2f %.2f), %d one-shot commands run (%d before): want a STOP run",
			end.Linear, end.Left, end.Right, end.Executed, moving.Executed)
	}
	if !strings.HasSuffix(out.String(), "stopped\n") {
		t.Errorf("stdout does not end with \"stopped\":\n%s", out.String())
	}
	if end.Plugged {
		t.Error("the robot is still plugged in after the demo stopped")
	}
}

// TestDemoRefusesRemoteListen: throwaway credentials stay on loopback
// unless asked.
func TestDemoRefusesRemoteListen(t *testing.T) {
	_, err := runSessionCmd(t, "demo", "--listen", "0.0.0.0:0")
	if err == nil || !strings.Contains(err.Error(), "--dev-allow-remote") {
		t.Fatalf("teleop demo --listen 0.0.0.0:0: %v, want a refusal naming --dev-allow-remote", err)
	}
}

// TestDemoBadConfig: a --config the agent cannot run stops the demo before
// it prints anything, with the file's line in the error.
func TestDemoBadConfig(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\nsession:\n  server: ${TELEOP_SERVER}\n  token: ${TELEOP_TOKEN}\ndevices:\n  base:\n    port: ${TELEOP_PORT}\n    baud: 7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, err := runSessionCmd(t, "demo", "--listen", "127.0.0.1:0", "--link", filepath.Join(t.TempDir(), "sim"), "--config", bad)
	if err == nil || !strings.Contains(err.Error(), bad+":8: devices.base.baud") {
		t.Fatalf("teleop demo --config bad.yaml: %v, want the bad line", err)
	}
	if stdout != "" {
		t.Errorf("stdout %q, want nothing", stdout)
	}
}

// testLogger sends the stack's log lines (info and up) to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tLog{t}, nil))
}

type tLog struct{ t *testing.T }

func (w tLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
