package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"go.bug.st/serial"

	"github.com/teleop/teleop/clock"
	"github.com/teleop/teleop/devices/conformance"
	"github.com/teleop/teleop/devices/proto"
)

func TestSimCommand(t *testing.T) {
	link := filepath.Join(t.TempDir(), "robot")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	root := newRootCmd(pw, io.Discard)
	root.SetArgs([]string{"sim", "--link", link, "--tlm-hz", "0", "--wdog-ms", "300"})
	done := make(chan error, 1)
	go func() {
		err := root.ExecuteContext(ctx)
		pw.Close()
		done <- err
	}()
	sc := bufio.NewScanner(pr)
	var out []string
	for len(out) < 2 && sc.Scan() {
		out = append(out, sc.Text())
	}
	go io.Copy(io.Discard, pr)
	if len(out) != 2 || !strings.HasPrefix(out[0], "pty: /dev/pts/") || out[1] != "link: "+link {
		t.Fatalf("stdout %q", out)
	}
	if got, _ := os.Readlink(link); got != strings.TrimPrefix(out[0], "pty: ") {
		t.Fatalf("link → %q, stdout %q", got, out)
	}

	c := conformance.Open(t, link)
	c.WaitFor(5*time.Second, "HELLO", func(l conformance.Line) bool { return l.Kind == proto.KindHello })
	c.Send(1, "GET", proto.Word("wdog_ms"))
	if l, _ := c.Reply(5*time.Second, 1); l.Field("wdog_ms") != "300" {
		t.Fatalf("GET wdog_ms: %v", l)
	}
	c.Send(2, "GET", proto.Word("tlm_hz"))
	if l, _ := c.Reply(5*time.Second, 2); l.Field("tlm_hz") != "0" {
		t.Fatalf("GET tlm_hz: %v", l)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("teleop sim: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("teleop sim did not stop on cancel")
	}
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Fatalf("link left behind: %v", err)
	}
}

func TestSimCommandBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--drop", "2"},
		{"--fault-dir", "sideways"},
		{"--wdog-ms", "1"},
		{"--tlm-hz", "99"},
	} {
		root := newRootCmd(io.Discard, io.Discard)
		root.SetArgs(append([]string{"sim", "--link", ""}, args...))
		if err := root.ExecuteContext(context.Background()); err == nil {
			t.Errorf("teleop sim %v: no error", args)
		}
	}
}

func TestSimCommandBadFaultFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--stall-for", "0"},
		{"--unplug-for", "-1s"},
		{"--reset-after", "-1s"},
		{"--unplug-every", "-1s"},
		{"--stall-every", "1s", "--stall-for", "2s"},
		{"--unplug-every", "2s", "--unplug-for", "2s"},
	} {
		root := newRootCmd(io.Discard, io.Discard)
		root.SetArgs(append([]string{"sim", "--link", ""}, args...))
		if err := root.ExecuteContext(context.Background()); err == nil {
			t.Errorf("teleop sim %v: no error", args)
		}
	}
}

// simWait bounds the waits for lines; it never orders events.
const simWait = 5 * time.Second

// simFaultLines sends the "sim: …" lines read from r, in order, and closes
// the channel at EOF. Other lines (the log) are skipped.
func simFaultLines(r io.Reader) <-chan string {
	ch := make(chan string, 64)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "sim: ") {
				ch <- l
			}
		}
		io.Copy(io.Discard, r)
	}()
	return ch
}

// expectSimLine takes the next fault line and checks that it starts with
// prefix; it returns the rest of the line.
func expectSimLine(t *testing.T, lines <-chan string, prefix string) string {
	t.Helper()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatalf("teleop sim ended; want %q", prefix)
		}
		if !strings.HasPrefix(l, prefix) {
			t.Fatalf("stderr %q, want %q", l, prefix)
		}
		return strings.TrimPrefix(l, prefix)
	case <-time.After(simWait):
		t.Fatalf("no %q on stderr", prefix)
	}
	return ""
}

// readPtyLines reads "pty: …" and "link: …" from stdout, then drains it.
func readPtyLines(t *testing.T, r io.Reader, link string) (pty string) {
	t.Helper()
	sc := bufio.NewScanner(r)
	var out []string
	for len(out) < 2 && sc.Scan() {
		out = append(out, sc.Text())
	}
	go io.Copy(io.Discard, r)
	if len(out) != 2 || !strings.HasPrefix(out[0], "pty: /dev/pts/") || out[1] != "link: "+link {
		t.Fatalf("stdout %q", out)
	}
	return strings.TrimPrefix(out[0], "pty: ")
}

// portGone reports whether err is what a host's read returns once the
// device went away: go.bug.st/serial's PortClosed, or EIO.
func portGone(err error) bool {
	var pe *serial.PortError
	return errors.As(err, &pe) && pe.Code() == serial.PortClosed || errors.Is(err, syscall.EIO)
}

// checkUnplugged checks that the host's port died and the link went away,
// then closes the port as a host that lost it does.
func checkUnplugged(t *testing.T, c *conformance.Conn, link string) {
	t.Helper()
	end := time.Now().Add(simWait)
	var err error
	for err == nil { // lines sent before the unplug may come first
		_, err = c.Next(time.Until(end))
	}
	if !portGone(err) {
		t.Fatalf("host read after unplug: %v; want PortClosed or EIO", err)
	}
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Fatalf("link still there while unplugged: %v", err)
	}
	c.Close()
}

// checkReplugged checks that the robot came back on a new path, behind the
// link, and answers; it returns the host's new connection.
func checkReplugged(t *testing.T, path, before, link string) *conformance.Conn {
	t.Helper()
	if !strings.HasPrefix(path, "/dev/pts/") || path == before {
		t.Fatalf("replugged at %q, before at %q: want a new pty", path, before)
	}
	if got, _ := os.Readlink(link); got != path {
		t.Fatalf("link → %q, want %q", got, path)
	}
	c := conformance.Open(t, link)
	c.WaitFor(simWait, "HELLO", isHello)
	c.Send(1, "PING")
	if l, _ := c.Reply(simWait, 1); l.Kind != proto.KindOK {
		t.Fatalf("PING after replug: %v", l)
	}
	return c
}

func isHello(l conformance.Line) bool { return l.Kind == proto.KindHello }

// fakeSim is `teleop sim` run in-process on a fake clock, its signals
// injected on a channel.
type fakeSim struct {
	clk   *clock.Fake
	link  string
	pty   string
	lines <-chan string
	sigs  chan os.Signal
}

func startFakeSim(t *testing.T, args ...string) *fakeSim {
	t.Helper()
	var c simConfig
	cmd := &cobra.Command{}
	c.addFlags(cmd)
	link := filepath.Join(t.TempDir(), "robot")
	if err := cmd.ParseFlags(append([]string{"--link", link, "--tlm-hz", "0", "--log-level", "warn"}, args...)); err != nil {
		t.Fatal(err)
	}
	s := &fakeSim{clk: clock.NewFake(), link: link, sigs: make(chan os.Signal, 1)}
	c.clock = s.clk
	ctx, cancel := context.WithCancel(context.Background())
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := runSim(ctx, outW, errW, &c, s.sigs)
		outW.Close()
		errW.Close()
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("teleop sim: %v", err)
			}
		case <-time.After(simWait):
			t.Error("teleop sim did not stop on cancel")
		}
	})
	s.lines = simFaultLines(errR)
	s.pty = readPtyLines(t, outR, link)
	expectSimLine(t, s.lines, "sim: pid ")
	return s
}

// Every timed fault, in turn, on the fake clock: each step waits for the
// line that says the previous fault fired (and its next timer is armed).
func TestSimTimedFaults(t *testing.T) {
	s := startFakeSim(t, "--reset-after", "5s", "--unplug-after", "10s", "--unplug-for", "2s",
		"--stall-after", "20s", "--stall-for", "3s")
	c := conformance.Open(t, s.link)
	c.WaitFor(simWait, "HELLO at boot", isHello)

	s.clk.Advance(5 * time.Second) // t = 5 s
	expectSimLine(t, s.lines, "sim: reset (new HELLO)")
	c.WaitFor(simWait, "HELLO after --reset-after", isHello)

	s.clk.Advance(5 * time.Second) // t = 10 s
	expectSimLine(t, s.lines, "sim: unplugged; back in 2s")
	checkUnplugged(t, c, s.link)

	s.clk.Advance(2 * time.Second) // t = 12 s
	c = checkReplugged(t, expectSimLine(t, s.lines, "sim: replugged at "), s.pty, s.link)

	s.clk.Advance(8 * time.Second) // t = 20 s
	expectSimLine(t, s.lines, "sim: stalled (not reading) for 3s")
	c.Send(2, "PING")
	if l := c.Drain(); len(l) != 0 {
		t.Fatalf("the robot answered while stalled: %v", l)
	}
	s.clk.Advance(3 * time.Second) // t = 23 s
	expectSimLine(t, s.lines, "sim: reading again")
	if l, _ := c.Reply(simWait, 2); l.Kind != proto.KindOK {
		t.Fatalf("PING sent during the stall: %v", l)
	}
}

// Repeated faults. No two are due at the same instant: the command would
// take them in either order.
func TestSimRepeatedFaults(t *testing.T) {
	s := startFakeSim(t, "--reset-every", "3s", "--unplug-every", "10s", "--unplug-for", "1500ms")
	c := conformance.Open(t, s.link)
	c.WaitFor(simWait, "HELLO at boot", isHello)
	for i := range 3 {
		s.clk.Advance(3 * time.Second) // t = 3 s, 6 s, 9 s
		expectSimLine(t, s.lines, "sim: reset (new HELLO)")
		c.WaitFor(simWait, fmt.Sprintf("HELLO after reset %d", i+1), isHello)
	}
	s.clk.Advance(time.Second) // t = 10 s
	expectSimLine(t, s.lines, "sim: unplugged; back in 1.5s")
	checkUnplugged(t, c, s.link)
	s.clk.Advance(1500 * time.Millisecond) // t = 11.5 s
	path := expectSimLine(t, s.lines, "sim: replugged at ")
	c = checkReplugged(t, path, s.pty, s.link)

	for _, d := range []time.Duration{500 * time.Millisecond, 3 * time.Second, 3 * time.Second} {
		s.clk.Advance(d) // t = 12 s, 15 s, 18 s
		expectSimLine(t, s.lines, "sim: reset (new HELLO)")
	}
	s.clk.Advance(2 * time.Second) // t = 20 s
	expectSimLine(t, s.lines, "sim: unplugged; back in 1.5s")
	checkUnplugged(t, c, s.link)
	s.clk.Advance(time.Second) // t = 21 s
	expectSimLine(t, s.lines, "sim: reset skipped: unplugged")
	s.clk.Advance(500 * time.Millisecond) // t = 21.5 s
	checkReplugged(t, expectSimLine(t, s.lines, "sim: replugged at "), path, s.link)
}

// The signal handling, in-process: SIGUSR1 resets, SIGUSR2 unplugs, and a
// second SIGUSR2 plugs back before --unplug-for.
func TestSimSignalsInProcess(t *testing.T) {
	s := startFakeSim(t, "--unplug-for", "1h")
	c := conformance.Open(t, s.link)
	c.WaitFor(simWait, "HELLO at boot", isHello)
	s.sigs <- syscall.SIGUSR1
	expectSimLine(t, s.lines, "sim: reset (new HELLO)")
	c.WaitFor(simWait, "HELLO after SIGUSR1", isHello)
	s.sigs <- syscall.SIGUSR2
	expectSimLine(t, s.lines, "sim: unplugged; back in 1h0m0s")
	checkUnplugged(t, c, s.link)
	s.sigs <- syscall.SIGUSR1
	expectSimLine(t, s.lines, "sim: reset skipped: unplugged")
	s.sigs <- syscall.SIGUSR2
	checkReplugged(t, expectSimLine(t, s.lines, "sim: replugged at "), s.pty, s.link)
}

// The real binary and real signals, sent to its PID.
func TestSimSignals(t *testing.T) {
	bin := teleopBinary(t)
	link := filepath.Join(t.TempDir(), "robot")
	cmd := exec.Command(bin, "sim", "--link", link, "--tlm-hz", "0", "--unplug-for", "300ms", "--log-level", "warn")
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	cmd.Stdout, cmd.Stderr = outW, errW
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	done := make(chan struct{}) // closed once waitErr is set
	go func() {
		waitErr = cmd.Wait()
		outW.Close()
		errW.Close()
		close(done)
	}()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
			outR.Close() // unblock the copies to a reader that gave up
			errR.Close()
			<-done
		}
	})
	signal := func(sig os.Signal) {
		t.Helper()
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatalf("signal %v to teleop sim (pid %d): %v", sig, cmd.Process.Pid, err)
		}
	}
	lines := simFaultLines(errR)
	first := readPtyLines(t, outR, link)
	// The handlers are installed before anything is printed.
	if pid := expectSimLine(t, lines, "sim: pid "); !strings.HasPrefix(pid, fmt.Sprint(cmd.Process.Pid)+":") {
		t.Fatalf("sim: pid %s; started %d", pid, cmd.Process.Pid)
	}

	c := conformance.Open(t, link)
	c.WaitFor(simWait, "HELLO at boot", isHello)
	signal(syscall.SIGUSR1)
	expectSimLine(t, lines, "sim: reset (new HELLO)")
	c.WaitFor(simWait, "HELLO after SIGUSR1", isHello)

	signal(syscall.SIGUSR2)
	expectSimLine(t, lines, "sim: unplugged; back in 300ms")
	checkUnplugged(t, c, link)
	checkReplugged(t, expectSimLine(t, lines, "sim: replugged at "), first, link)

	signal(os.Interrupt)
	select {
	case <-done:
		if waitErr != nil {
			t.Fatalf("teleop sim after SIGINT: %v", waitErr)
		}
	case <-time.After(simWait):
		t.Fatal("teleop sim did not stop on SIGINT")
	}
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Fatalf("link left behind: %v", err)
	}
}
