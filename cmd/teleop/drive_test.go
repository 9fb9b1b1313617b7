package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teleop/teleop/clock"
	"github.com/teleop/teleop/operator"
	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/token"
)

// These tests run the real binary in a real terminal: a detached tmux
// session on a private server (tmux -L), against a real relay on loopback
// and a Go client standing in for the agent. They skip when tmux is absent
// (and fail instead when TELEOP_REQUIRE_TMUX is set).

const waitLong = 20 * time.Second

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// teleopBinary builds the teleop binary once per test run.
func teleopBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "teleop-drive-test-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "teleop")
		out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

var tmuxCount atomic.Int64

// tmuxServer is a private tmux server: its own socket name, no user config.
type tmuxServer struct {
	t    *testing.T
	sock string
	conf string
}

func newTmux(t *testing.T) *tmuxServer {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		const msg = "tmux is not installed: the terminal tests of teleop drive need it (apt-get install tmux)"
		if os.Getenv("TELEOP_REQUIRE_TMUX") != "" {
			t.Fatal(msg + " (TELEOP_REQUIRE_TMUX is set)")
		}
		t.Skip(msg)
	}
	x := &tmuxServer{t: t, sock: fmt.Sprintf("teleop-test-%d-%d", os.Getpid(), tmuxCount.Add(1))}
	x.conf = filepath.Join(t.TempDir(), "tmux.conf")
	// Keep a pane whose command ended, so its last screen can be read.
	if err := os.WriteFile(x.conf, []byte("set -g remain-on-exit on\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.run("kill-server") })
	return x
}

func (x *tmuxServer) run(args ...string) (string, error) {
	cmd := exec.Command("tmux", append([]string{"-L", x.sock, "-f", x.conf}, args...)...)
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "TMUX=") && !strings.HasPrefix(e, "TMUX_PANE=") {
			env = append(env, e)
		}
	}
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (x *tmuxServer) must(args ...string) string {
	x.t.Helper()
	out, err := x.run(args...)
	if err != nil {
		x.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (x *tmuxServer) screen() string { return x.must("capture-pane", "-p", "-t", "drive") }

// waitScreen polls the pane until re matches its text.
func (x *tmuxServer) waitScreen(re string) string {
	x.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(waitLong)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s := x.screen()
		if rx.MatchString(s) {
			return s
		}
		if time.Now().After(deadline) {
			x.t.Fatalf("the screen never matched %q:\n%s", re, s)
		}
		<-tick.C
	}
}

func (x *tmuxServer) keys(keys ...string) {
	x.t.Helper()
	x.must(append([]string{"send-keys", "-t", "drive"}, keys...)...)
}

// driveRun is `teleop drive` in a tmux pane, inside a shell that records
// the terminal's settings before and after, the exit code and the pid.
type driveRun struct {
	*tmuxServer
	dir string
}

func startDrive(t *testing.T, args ...string) *driveRun {
	t.Helper()
	x := newTmux(t)
	bin := teleopBinary(t)
	dir := t.TempDir()
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	var cmdline []string
	for _, a := range append([]string{bin, "drive"}, args...) {
		cmdline = append(cmdline, q(a))
	}
	script := fmt.Sprintf(`cd %s || exit 1
stty -g > stty.before
sh -c 'echo $$ > pid; exec "$@"' drive %s 2> stderr
echo $? > rc.tmp
stty -g > stty.after
stty -a > stty-a.after
mv rc.tmp rc
`, q(dir), strings.Join(cmdline, " "))
	if err := os.WriteFile(filepath.Join(dir, "run.sh"), []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	x.must("new-session", "-d", "-s", "drive", "-x", "120", "-y", "30", "sh "+q(filepath.Join(dir, "run.sh")))
	return &driveRun{x, dir}
}

func (r *driveRun) file(name string) string {
	b, _ := os.ReadFile(filepath.Join(r.dir, name))
	return string(b)
}

// wait waits for teleop drive and its shell to end and returns the exit code.
func (r *driveRun) wait() string {
	r.t.Helper()
	deadline := time.Now().Add(waitLong)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if rc := r.file("rc"); rc != "" {
			return strings.TrimSpace(rc)
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("teleop drive did not exit; screen:\n%s\nstderr:\n%s", r.screen(), r.file("stderr"))
		}
		<-tick.C
	}
}

// checkRestored asserts that the terminal is as it was before teleop drive.
func (r *driveRun) checkRestored() {
	r.t.Helper()
	before, after := r.file("stty.before"), r.file("stty.after")
	if before == "" || before != after {
		r.t.Errorf("terminal not restored: stty -g was %q before, %q after", before, after)
	}
	a := " " + strings.Join(strings.Fields(r.file("stty-a.after")), " ") + " "
	for _, want := range []string{" icanon ", " echo ", " isig ", " opost "} {
		if !strings.Contains(a, want) {
			r.t.Errorf("after teleop drive, stty -a lacks %q:\n%s", strings.TrimSpace(want), a)
		}
	}
}

// paneSettings returns `stty -a` of the pane's terminal now.
func (r *driveRun) paneSettings() string {
	r.t.Helper()
	tty := strings.TrimSpace(r.must("display-message", "-p", "-t", "drive", "#{pane_tty}"))
	out, err := exec.Command("stty", "-F", tty, "-a").CombinedOutput()
	if err != nil {
		r.t.Fatalf("stty -F %s: %v\n%s", tty, err, out)
	}
	return " " + strings.Join(strings.Fields(string(out)), " ") + " "
}

// robotDouble is a Go client that answers the way the agent does: an ack
// to the sender for every drive, stop, estop, clear and control, and a
// status to everyone when the e-stop latches or clears. (The agent itself,
// bridge/, is being written; this double follows docs/console.md.)
type robotDouble struct {
	t *testing.T
	s *signaling.Session

	mu      sync.Mutex
	got     []signaling.Signal // guarded by mu
	changed chan struct{}      // cap 1
}

func startRobot(t *testing.T, url, session string) *robotDouble {
	t.Helper()
	r := &robotDouble{t: t, changed: make(chan struct{}, 1)}
	r.s = signaling.NewSession(nil)
	ctx := context.Background()
	r.s.OnSignal(func(sig signaling.Signal) {
		switch sig.Type {
		case "drive", "stop", "estop", "clear", "control":
		default:
			return
		}
		r.mu.Lock()
		r.got = append(r.got, sig)
		r.mu.Unlock()
		select {
		case r.changed <- struct{}{}:
		default:
		}
		var d struct {
			ID json.RawMessage `json:"id"`
		}
		json.Unmarshal([]byte(sig.Data), &d)
		if len(d.ID) > 0 {
			ack := fmt.Sprintf(`{"id":%s,"type":%q,"status":"ok","device_ms":1}`, d.ID, sig.Type)
			r.s.Signal(ctx, signaling.Signal{Type: "ack", Data: ack, To: sig.From})
		}
		switch sig.Type {
		case "estop":
			r.s.Signal(ctx, signaling.Signal{Type: "status", Data: fmt.Sprintf(`{"estop":{"latched":true,"by":%q}}`, sig.From)})
		case "clear":
			r.s.Signal(ctx, signaling.Signal{Type: "status", Data: `{"estop":{"latched":false}}`})
		}
	})
	if err := r.s.Connect(t.Context(), url, sessToken(t, session, "role=robot,name=rover-1")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.s.Close() })
	return r
}

func (r *robotDouble) received() []signaling.Signal {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]signaling.Signal(nil), r.got...)
}

// waitFor waits until ok holds for what the robot has received.
func (r *robotDouble) waitFor(what string, ok func([]signaling.Signal) bool) []signaling.Signal {
	r.t.Helper()
	t := time.NewTimer(waitLong)
	defer t.Stop()
	for {
		got := r.received()
		if ok(got) {
			return got
		}
		select {
		case <-r.changed:
		case <-t.C:
			r.t.Fatalf("the robot never received %s; it has %s", what, sigTypes(got))
		}
	}
}

func sigTypes(ss []signaling.Signal) string {
	var b []string
	for _, s := range ss {
		b = append(b, s.Type)
	}
	return "[" + strings.Join(b, " ") + "]"
}

func count(ss []signaling.Signal, typ string) int {
	n := 0
	for _, s := range ss {
		if s.Type == typ {
			n++
		}
	}
	return n
}

func TestDriveInTmux(t *testing.T) {
	t.Parallel()
	url := sessRelay(t)
	rob := startRobot(t, url, "drive-1")
	// Generous holds: a loaded machine may take a while between send-keys.
	r := startDrive(t, "--server", url, "--token", sessToken(t, "drive-1", "role=operator,name=alice"),
		"--hold", "2s", "--repeat-hold", "1s")

	r.waitScreen(`connected to drive-1 as alice · robot rover-1 · idle\n.*speed 2/4 0\.25 m/s 0\.75 rad/s · no telemetry yet`)
	r.waitScreen(`w a s d or arrows`)
	if s := r.paneSettings(); !strings.Contains(s, " -icanon ") || !strings.Contains(s, " -echo ") {
		t.Fatalf("while teleop drive runs the terminal is not raw: %s", s)
	}

	// Hold w: press it again each time a drive arrives, as auto-repeat would.
	const held = 8
	for n := 0; n < held; {
		r.keys("w")
		got := rob.waitFor("another drive", func(ss []signaling.Signal) bool { return count(ss, "drive") > n })
		n = count(got, "drive")
	}
	got := rob.waitFor("the release's stop", func(ss []signaling.Signal) bool { return count(ss, "stop") > 0 })
	last := got[len(got)-1]
	if last.Type != "stop" || count(got, "stop") != 1 || count(got, "drive") != len(got)-1 {
		t.Fatalf("the robot received %s: want drives, then one stop", sigTypes(got))
	}
	for i, s := range got[:len(got)-1] {
		var d struct {
			ID              int
			Linear, Angular float64
		}
		if err := json.Unmarshal([]byte(s.Data), &d); err != nil || d.ID != i+1 || d.Linear != 0.25 || d.Angular != 0 {
			t.Fatalf("drive %d: %s (%v)", i, s.Data, err)
		}
		if s.To != rob.s.ID() {
			t.Fatalf("drive %d was sent to %q, not to the robot", i, s.To)
		}
	}
	if last.Data != fmt.Sprintf(`{"id":%d}`, len(got)) {
		t.Fatalf("stop data %s", last.Data)
	}
	r.waitScreen(`· stopped · ack stop #\d+ ok \d+(\.\d)? ms, device 1 ms`)

	// Telemetry from the robot.
	rob.s.Signal(t.Context(), signaling.Signal{Type: "telemetry", Data: `{"st":"RDY","bat":12.1,"vl":0.25,"vr":0.25,"x":1.2,"y":0.3,"th":0.7854}`})
	r.waitScreen(`RDY bat 12\.1 V wheels 0\.25 0\.25 m/s pose 1\.20 0\.30 45°`)

	// e: the e-stop goes to everyone, right after the stop (nothing between).
	r.keys("e")
	got = rob.waitFor("the e-stop", func(ss []signaling.Signal) bool { return count(ss, "estop") > 0 })
	if es := got[len(got)-1]; es.Type != "estop" || es.To != "" || got[len(got)-2].Type != "stop" {
		t.Fatalf("the robot received %s, the e-stop to %q: want the e-stop to everyone right after the stop", sigTypes(got), es.To)
	}
	r.waitScreen(`E-STOP LATCHED by you \(c clears\)`)
	r.waitScreen(`ack estop #\d+ ok`)

	// Latched: w drives nothing and says why; c clears.
	r.keys("w")
	r.waitScreen(`e-stop latched: press c to clear it before driving`)
	r.keys("c")
	got = rob.waitFor("the clear", func(ss []signaling.Signal) bool { return count(ss, "clear") > 0 })
	if got[len(got)-1].Type != "clear" || got[len(got)-2].Type != "estop" {
		t.Fatalf("the robot received %s: want the clear right after the e-stop (no drive while latched)", sigTypes(got))
	}
	r.waitScreen(`ack clear #\d+ ok`)
	if s := r.screen(); strings.Contains(s, "E-STOP LATCHED") {
		t.Fatalf("the e-stop still shows after the clear:\n%s", s)
	}

	// Hold w once more and quit while it is held: the stop goes out first.
	r.keys("w")
	rob.waitFor("a drive after the clear", func(ss []signaling.Signal) bool { return ss[len(ss)-1].Type == "drive" })
	r.keys("q")
	if rc := r.wait(); rc != "0" {
		t.Fatalf("exit code %s; stderr:\n%s", rc, r.file("stderr"))
	}
	got = rob.waitFor("the stop at exit", func(ss []signaling.Signal) bool { return ss[len(ss)-1].Type == "stop" })
	r.checkRestored()
	t.Logf("robot received %d signals: %s", len(got), sigTypes(got))
	t.Logf("last screen:\n%s", r.screen())
}

func TestDriveExitsCleanly(t *testing.T) {
	for name, tc := range map[string]struct {
		quit func(r *driveRun)
	}{
		"ctrl-c":  {quit: func(r *driveRun) { r.keys("C-c") }},
		"sigterm": {quit: func(r *driveRun) { r.signal("TERM") }},
		"sighup":  {quit: func(r *driveRun) { r.signal("HUP") }},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url := sessRelay(t)
			rob := startRobot(t, url, "exit")
			r := startDrive(t, "--server", url, "--token", sessToken(t, "exit", "role=operator"), "--hold", "1h")
			r.waitScreen(`connected to exit · robot rover-1`)
			r.keys("Up") // held for an hour, unless the command ends
			rob.waitFor("a drive", func(ss []signaling.Signal) bool { return count(ss, "drive") > 0 })
			tc.quit(r)
			if rc := r.wait(); rc != "0" {
				t.Fatalf("exit code %s; stderr:\n%s", rc, r.file("stderr"))
			}
			rob.waitFor("the stop at exit", func(ss []signaling.Signal) bool { return ss[len(ss)-1].Type == "stop" })
			r.checkRestored()
		})
	}
}

func (r *driveRun) signal(sig string) {
	r.t.Helper()
	pid := strings.TrimSpace(r.file("pid"))
	if out, err := exec.Command("kill", "-"+sig, pid).CombinedOutput(); err != nil {
		r.t.Fatalf("kill -%s %s: %v %s", sig, pid, err, out)
	}
}

func TestDriveNoRobotYet(t *testing.T) {
	t.Parallel()
	url := sessRelay(t)
	r := startDrive(t, "--server", url, "--token", sessToken(t, "empty", "role=operator,name=alice"))
	r.waitScreen(`connected to empty as alice · No robot in this session yet — start the agent`)
	r.keys("w")
	r.waitScreen(`No robot in this session yet — start the agent.*\n.*No robot in this session yet`)

	rob := startRobot(t, url, "empty")
	r.waitScreen(`robot rover-1 · idle`)
	r.keys("q")
	if rc := r.wait(); rc != "0" {
		t.Fatalf("exit code %s; stderr:\n%s", rc, r.file("stderr"))
	}
	if got := rob.received(); len(got) != 0 {
		t.Fatalf("the robot received %s; w was pressed before it joined, and nothing after", sigTypes(got))
	}
	r.checkRestored()
}

func TestDriveSeveralRobotsNeedTo(t *testing.T) {
	t.Parallel()
	url := sessRelay(t)
	startRobot(t, url, "two")
	startRobot(t, url, "two")
	r := startDrive(t, "--server", url, "--token", sessToken(t, "two", "role=operator"))
	r.waitScreen(`2 robots in this session: pass --to with a name or ID \(rover-1 \S+…, rover-1 \S+…\)`)
	r.keys("q")
	r.wait()
	r.checkRestored()
	// On the way out, the full IDs to pass to --to.
	if stderr := r.file("stderr"); !regexp.MustCompile(`^2 robots in session two; pass --to with one of:\n  \S{20,}  rover-1\n  \S{20,}  rover-1\n$`).MatchString(stderr) {
		t.Fatalf("stderr %q", stderr)
	}
}

func TestDriveRefusedToken(t *testing.T) {
	t.Parallel()
	url := sessRelay(t)
	expired, err := token.New(sessKey, sessSecret, "s", &token.Options{Now: time.Now().Add(-2 * time.Hour), TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	r := startDrive(t, "--server", url, "--token", expired)
	if rc := r.wait(); rc != "1" {
		t.Fatalf("exit code %s, want 1", rc)
	}
	stderr := r.file("stderr")
	if !regexp.MustCompile(`^teleop: the relay at \S+ refused the token: token expired at `).MatchString(stderr) {
		t.Fatalf("stderr: %q", stderr)
	}
	r.checkRestored()
}

func TestDriveNeedsATerminal(t *testing.T) {
	root := newRootCmd(&bytes.Buffer{}, &bytes.Buffer{})
	root.SetIn(strings.NewReader("wwww"))
	root.SetArgs([]string{"drive", "--token", "x"})
	err := root.ExecuteContext(t.Context())
	if err == nil || !strings.Contains(err.Error(), "stdin is not one") {
		t.Fatalf("err = %v", err)
	}
}

func TestDriveFlagValidation(t *testing.T) {
	for _, args := range [][]string{{"--rate", "0"}, {"--steps", "10"}, {"--step", "5"}, {"--max-linear", "-1"}, {"--hold", "0s"}} {
		root := newRootCmd(&bytes.Buffer{}, &bytes.Buffer{})
		root.SetArgs(append([]string{"drive", "--token", "x"}, args...))
		if err := root.ExecuteContext(t.Context()); err == nil || !strings.Contains(err.Error(), "--") {
			t.Errorf("%v: err = %v", args, err)
		}
	}
}

func TestSignalSenderQueue(t *testing.T) {
	q := newSignalSender(nil)
	sig := func(typ, data string) signaling.Signal { return signaling.Signal{Type: typ, Data: data} }
	q.enqueue(sig("drive", "1"))
	q.enqueue(sig("drive", "2"))
	q.enqueue(sig("control", "3"))
	q.enqueue(sig("drive", "4"))
	q.enqueue(sig("stop", "5"))
	q.enqueue(sig("estop", "6"))
	var got []string
	for _, s := range q.queue {
		got = append(got, s.Type+s.Data)
	}
	if want := "estop6 control3 stop5"; strings.Join(got, " ") != want {
		t.Fatalf("queue %v, want %s (newest drive only, superseded by the stop; the e-stop first)", got, want)
	}
}

func TestStatusLines(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ack := &operator.AckEvent{Ack: operator.Ack{ID: "17", Type: "drive", Status: "ok", DeviceMs: operator.Value{V: 1.25, OK: true}}, Latency: 3400 * time.Microsecond, HasLatency: true, At: now}
	rej := &operator.AckEvent{Ack: operator.Ack{ID: "18", Type: "drive", Status: "rejected", Reason: "lease held by alice"}, At: now.Add(-time.Second)}
	info := screenInfo{server: "http://127.0.0.1:7420", session: "demo", self: "c1", name: "bob"}
	for name, tc := range map[string]struct {
		v      operator.View
		l1, l2 string
	}{
		"connecting": {
			v:  operator.View{Now: now, Link: operator.LinkConnecting, Step: 2, Steps: 4, Linear: 0.25, Angular: 0.75},
			l1: "connecting to http://127.0.0.1:7420… · idle",
			l2: "speed 2/4 0.25 m/s 0.75 rad/s",
		},
		"no robot": {
			v:  operator.View{Now: now, Link: operator.LinkConnected, Problem: "No robot in this session yet — start the agent", Step: 1, Steps: 4, Linear: 0.125, Angular: 0.375},
			l1: "connected to demo as bob · No robot in this session yet — start the agent · idle",
			l2: "speed 1/4 0.12 m/s 0.38 rad/s",
		},
		"driving": {
			v: operator.View{Now: now, Link: operator.LinkConnected, Robot: operator.Robot{ID: "r", Name: "rover-1"}, Step: 2, Steps: 4, Linear: 0.25, Angular: 0.75,
				Command: operator.Command{Type: "drive", Linear: 0.25, Holding: true}, LastAck: ack, LastReject: rej, Acked: 5, Rejected: 1,
				Estop: true, EstopBy: "alice", HasLease: true, LeaseHolder: "alice", HasTelemetry: true,
				Telemetry: operator.Telemetry{St: "RDY", Bat: operator.Value{V: 12.06, OK: true}, Vl: operator.Value{V: 0.2, OK: true}}},
			l1: "connected to demo as bob · robot rover-1 · drive +0.25 +0.00 · ack drive #17 ok 3.4 ms, device 1.3 ms",
			l2: "E-STOP LATCHED by alice (c clears) · rejected: lease held by alice (drive #18) · speed 2/4 0.25 m/s 0.75 rad/s · control: alice · RDY bat 12.1 V wheels 0.20 — m/s",
		},
		"reconnecting, old rejection": {
			v: operator.View{Now: now.Add(time.Minute), Link: operator.LinkReconnecting, LinkReason: "read: EOF", Robot: operator.Robot{ID: "r", Name: "rover-1"}, Step: 4, Steps: 4, Linear: 0.5, Angular: 1.5,
				Command: operator.Command{Type: "stop"}, LastReject: rej, HasLease: true},
			l1: "reconnecting (read: EOF) · robot rover-1 · stopped",
			l2: "speed 4/4 0.50 m/s 1.50 rad/s · control: nobody · no telemetry yet",
		},
	} {
		t.Run(name, func(t *testing.T) {
			l1, l2 := statusLines(tc.v, info)
			if l1 != tc.l1 || l2 != tc.l2 {
				t.Fatalf("got\n%s\n%s\nwant\n%s\n%s", l1, l2, tc.l1, tc.l2)
			}
		})
	}
}

func TestCut(t *testing.T) {
	if got := cut("connected · robot", 12); got != "connected ·" {
		t.Fatalf("cut = %q", got)
	}
	if got := cut("short", 80); got != "short" {
		t.Fatalf("cut = %q", got)
	}
}

// TestDriveAcrossAReconnect wires the Driver, the link and the sender to a
// real session (as runDrive does, without the terminal) and breaks its
// socket while a key is held: the hold ends with one stop, which waits for
// the reconnect; no drive is replayed or sent while reconnecting, and the
// key still held does not drive again until it is released.
func TestDriveAcrossAReconnect(t *testing.T) {
	t.Parallel()
	url := sessRelay(t)
	rob := startRobot(t, url, "cut")

	var mu sync.Mutex
	var conns []net.Conn
	sess := signaling.NewSession(&signaling.Options{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
		return c, err
	}})
	clk := clock.NewFake()
	snd := newSignalSender(sess)
	d := operator.NewDriver(&operator.Options{Clock: clk, Send: snd.enqueue})
	snd.failed = d.SendFailed
	link := newDriveLink(sess, d)
	if err := sess.Connect(t.Context(), url, sessToken(t, "cut", "role=operator")); err != nil {
		t.Fatal(err)
	}
	link.connected()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); snd.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; sess.Close() })

	waitView := func(what string, ok func(operator.View) bool) operator.View {
		t.Helper()
		timeout := time.NewTimer(waitLong)
		defer timeout.Stop()
		for {
			if v := d.View(); ok(v) {
				return v
			}
			select {
			case <-d.Changed():
			case <-timeout.C:
				t.Fatalf("the view never showed %s: %+v", what, d.View())
			}
		}
	}
	waitView("the robot", func(v operator.View) bool { return v.Robot.Name == "rover-1" })

	// The sender keeps only the newest drive waiting, so let each arrive
	// before the next.
	d.Key('w')
	rob.waitFor("a drive", func(ss []signaling.Signal) bool { return count(ss, "drive") == 1 })
	for n := 2; n <= 4; n++ {
		clk.Advance(operator.DefaultRate)
		d.Key('w')
		rob.waitFor("another drive", func(ss []signaling.Signal) bool { return count(ss, "drive") == n })
	}

	mu.Lock()
	conns[0].Close()
	mu.Unlock()
	waitView("reconnecting", func(v operator.View) bool { return v.Link == operator.LinkReconnecting })
	// Held on: repeats keep coming while reconnecting, and after.
	for range 3 {
		clk.Advance(operator.DefaultRate)
		d.Key('w')
	}
	waitView("connected again", func(v operator.View) bool { return v.Link == operator.LinkConnected })
	for range 3 {
		clk.Advance(operator.DefaultRate)
		d.Key('w')
	}
	rob.waitFor("the stop", func(ss []signaling.Signal) bool { return count(ss, "stop") == 1 })
	// Released, then pressed again: that drives, after the stop.
	clk.Advance(time.Minute)
	d.Key('w')
	got := rob.waitFor("the new press's drive", func(ss []signaling.Signal) bool { return len(ss) == 6 })
	if sigTypes(got) != "[drive drive drive drive stop drive]" {
		t.Fatalf("the robot received %s: want 4 drives, the stop, and only the new press's drive", sigTypes(got))
	}
	if s := got[4]; s.Age <= 0 {
		t.Fatalf("the stop's age is %v: it should have waited for the reconnect", s.Age)
	}
}
