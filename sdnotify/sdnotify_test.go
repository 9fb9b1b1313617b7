package sdnotify

import (
	"context"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/teleop/teleop/clock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// listen plays systemd's side: a unixgram socket at addr (a path, or
// "@name") whose datagrams the returned function reads, one per call.
func listen(t *testing.T, addr string) func() string {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return func() string {
		t.Helper()
		buf := make([]byte, 4096)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
}

func socketPath(t *testing.T) string {
	// sun_path holds 108 bytes: keep the path short.
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "notify")
}

func TestNilOutsideSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := New(nil)
	if n != nil {
		t.Fatalf("New without NOTIFY_SOCKET = %+v, want nil", n)
	}
	for name, err := range map[string]error{
		"Ready": n.Ready("x"), "Stopping": n.Stopping(), "Status": n.Status("x"),
		"Watchdog": n.Watchdog(), "Notify": n.Notify("A=1"),
	} {
		if err != nil {
			t.Errorf("nil %s: %v", name, err)
		}
	}
	if d := n.WatchdogInterval(); d != 0 {
		t.Errorf("nil WatchdogInterval = %v", d)
	}
	n.Supervise(context.Background(), func() Probe { t.Error("probe called on a nil Notifier"); return Probe{} })
}

func TestMessages(t *testing.T) {
	for _, kind := range []string{"path", "abstract"} {
		t.Run(kind, func(t *testing.T) {
			addr := socketPath(t)
			if kind == "abstract" {
				addr = "@teleop-sdnotify-test-" + strconv.Itoa(os.Getpid())
			}
			next := listen(t, addr)
			t.Setenv("NOTIFY_SOCKET", addr)
			n := New(nil)
			if n == nil {
				t.Fatal("New with NOTIFY_SOCKET set returned nil")
			}
			for _, tc := range []struct {
				name string
				send func() error
				want string
			}{
				{"ready", func() error { return n.Ready("joined demo") }, "READY=1\nSTATUS=joined demo\n"},
				{"ready without status", func() error { return n.Ready("") }, "READY=1\n"},
				{"status", func() error { return n.Status("2 devices") }, "STATUS=2 devices\n"},
				{"status newline", func() error { return n.Status("a\nREADY=1") }, "STATUS=a READY=1\n"},
				{"watchdog", n.Watchdog, "WATCHDOG=1\n"},
				{"stopping", n.Stopping, "STOPPING=1\n"},
				{"several", func() error { return n.Notify("RELOADING=1", "STATUS=reloading") }, "RELOADING=1\nSTATUS=reloading\n"},
			} {
				if err := tc.send(); err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				if got := next(); got != tc.want {
					t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
				}
			}
		})
	}
}

func TestNoListener(t *testing.T) {
	n := New(&Options{Socket: socketPath(t)})
	err := n.Ready("")
	if err == nil || !strings.Contains(err.Error(), "sd_notify") {
		t.Fatalf("Ready to a missing socket: %v, want an sd_notify error", err)
	}
}

func TestWatchdogFromEnv(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name, usec, pid string
		want            time.Duration
		ok              bool
	}{
		{"unset", "", "", 0, false},
		{"set", "2000000", "", 2 * time.Second, true},
		{"for this process", "500000", self, 500 * time.Millisecond, true},
		{"for another process", "2000000", "1", 0, false},
		{"garbage", "2s", "", 0, false},
		{"zero", "0", "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("WATCHDOG_USEC", tc.usec)
			t.Setenv("WATCHDOG_PID", tc.pid)
			got, ok := WatchdogFromEnv()
			if got != tc.want || ok != tc.ok {
				t.Errorf("WatchdogFromEnv() = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestSupervise walks Supervise through start-up, an unhealthy spell and
// shutdown on a fake clock, reading what reaches a real socket.
func TestSupervise(t *testing.T) {
	addr := socketPath(t)
	next := listen(t, addr)
	clk := clock.NewFake()
	n := New(&Options{Socket: addr, Watchdog: time.Second, Clock: clk})

	probes := make(chan Probe)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Supervise(ctx, func() Probe { return <-probes })
	}()

	steps := []struct {
		advance time.Duration // before the probe
		probe   Probe
		want    string // "" when nothing is sent
	}{
		{0, Probe{Healthy: true, Status: "joining"}, "STATUS=joining\nWATCHDOG=1\n"},
		{ReadyPoll, Probe{Healthy: true, Status: "joining"}, "WATCHDOG=1\n"},
		{ReadyPoll, Probe{Ready: true, Healthy: true, Status: "ready"}, "READY=1\nSTATUS=ready\nWATCHDOG=1\n"},
		{500 * time.Millisecond, Probe{Ready: true, Status: "ready"}, ""}, // unhealthy: no ping
		{500 * time.Millisecond, Probe{Ready: true, Status: "ready"}, ""},
		{500 * time.Millisecond, Probe{Ready: true, Healthy: true, Status: "base down"}, "STATUS=base down\nWATCHDOG=1\n"},
	}
	for i, s := range steps {
		if s.advance > 0 {
			<-clk.BlockUntil(1) // Supervise has armed its timer
			clk.Advance(s.advance - time.Nanosecond)
			select {
			case probes <- Probe{}:
				t.Fatalf("step %d: probed before %v had passed", i, s.advance)
			default:
			}
			clk.Advance(time.Nanosecond)
		}
		probes <- s.probe
		if s.want != "" {
			if got := next(); got != s.want {
				t.Errorf("step %d: got %q, want %q", i, got, s.want)
			}
		}
	}
	cancel()
	<-done
	if got, want := next(), "STOPPING=1\nSTATUS=stopping\n"; got != want {
		t.Errorf("on cancel: got %q, want %q", got, want)
	}
}

// TestSuperviseWatchdogEnv: with WATCHDOG_USEC as systemd sets it, pings
// come at half the interval on the wall clock.
func TestSuperviseWatchdogEnv(t *testing.T) {
	addr := socketPath(t)
	next := listen(t, addr)
	t.Setenv("NOTIFY_SOCKET", addr)
	t.Setenv("WATCHDOG_USEC", "100000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	n := New(nil)
	if d := n.WatchdogInterval(); d != 100*time.Millisecond {
		t.Fatalf("WatchdogInterval = %v, want 100ms", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Supervise(ctx, func() Probe { return Probe{Ready: true, Healthy: true} })
	}()
	if got := next(); got != "READY=1\nWATCHDOG=1\n" {
		t.Errorf("first message %q", got)
	}
	start := time.Now()
	for i := range 3 {
		if got := next(); got != "WATCHDOG=1\n" {
			t.Errorf("ping %d: %q", i, got)
		}
	}
	cancel()
	<-done
	t.Logf("3 pings in %v (want about 150ms)", time.Since(start).Round(time.Millisecond))
	for got := next(); got != "STOPPING=1\nSTATUS=stopping\n"; got = next() {
		if got != "WATCHDOG=1\n" {
			t.Fatalf("unexpected %q", got)
		}
	}
}

// A long-lived service under a Type=notify unit with WatchdogSec=.
func ExampleNotifier_Supervise() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	n := New(nil) // nil outside systemd: Supervise returns at once
	started := time.Now()
	go n.Supervise(ctx, func() Probe {
		// Called every half watchdog interval; while it blocks or says
		// unhealthy, systemd gets no ping and restarts the service.
		return Probe{Ready: true, Healthy: true, Status: "up " + time.Since(started).Round(time.Second).String()}
	})
	<-ctx.Done()
}
