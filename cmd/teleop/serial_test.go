package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teleop/teleop/devices"
	"github.com/teleop/teleop/devices/sim"
)

// syncBuffer is a bytes.Buffer safe for the console's two writers, which
// tests can wait on.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
	ch chan struct{} // closed and replaced on every write
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
	}
	s.ch = make(chan struct{})
	return s.b.Write(p)
}

// waitFor waits until the output contains sub.
func (s *syncBuffer) waitFor(t *testing.T, sub string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		if s.ch == nil {
			s.ch = make(chan struct{})
		}
		ok, ch := strings.Contains(s.b.String(), sub), s.ch
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("output lacks %q:\n%s", sub, s.String())
		}
	}
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newTestSim(t *testing.T, opts sim.Options) *sim.Robot {
	t.Helper()
	opts.Link = filepath.Join(t.TempDir(), "robot")
	r, err := sim.New(&opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// runConsole runs `teleop serial` with stdin from a pipe and returns its
// output once it exits.
func runConsole(t *testing.T, ctx context.Context, stdin io.Reader, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut syncBuffer
	root := newRootCmd(&out, &errOut)
	root.SetIn(stdin)
	root.SetArgs(append([]string{"serial"}, args...))
	err = root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func TestSerialConsole(t *testing.T) {
	r := newTestSim(t, sim.Options{TLMHz: -1}) // telemetry only on '?'
	input := strings.Join([]string{
		"PING",
		"GET wdog_ms",
		"",
		"9 PING",        // the user's own seq
		"10 PING*00",    // a deliberate bad checksum, sent as typed
		"OUT lights=1!", // refused locally: '!' mid-line
		"?",             // telemetry now
		"!",             // e-stop
		"OUT lights=1",  // refused by the latched robot
		"CLEAR",
	}, "\n") + "\n"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stdout, stderr, err := runConsole(t, ctx, strings.NewReader(input), "--port", r.Link())
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	if err != nil {
		t.Fatalf("teleop serial: %v", err)
	}
	for _, want := range []string{
		"→ 1 PING*01",
		"← OK 1*15",
		"→ 2 GET wdog_ms*",
		"← OK 2 wdog_ms=500*",
		"→ 9 PING*",
		"← OK 9*",
		"→ 10 PING*00",
		"← ERR - 2 checksum*77",
		"→ ? (telemetry)",
		"← TLM ",
		"→ !!! (e-stop)",
		"← EVT ESTOP src=byte*",
		"→ 11 OUT lights=1*",
		"← ERR 11 5 estop*",
		"→ 12 CLEAR*",
		"← EVT CLEARED*",
		"← OK 12*",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	if !strings.Contains(stderr, "not sent") || !strings.Contains(stderr, "reserved byte") {
		t.Errorf("stderr lacks the refusal of a line with '!': %q", stderr)
	}
	// Every line carries a timestamp.
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if _, err := time.Parse("15:04:05.000", strings.Fields(l)[0]); err != nil {
			t.Errorf("line without a timestamp: %q", l)
		}
	}
	if got := r.State().Outputs["lights"]; got != 0 {
		t.Errorf("lights = %d: the OUT refused while e-stopped ran", got)
	}
}

func TestSerialConsoleRaw(t *testing.T) {
	r := newTestSim(t, sim.Options{TLMHz: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stdout, _, err := runConsole(t, ctx, strings.NewReader("5 PING\n"), "--port", r.Link(), "--raw", "--wait", "300ms")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "→ 5 PING\n") || !strings.Contains(stdout, "← OK 5*") {
		t.Errorf("stdout:\n%s", stdout)
	}
}

// Ctrl-C (the context ending) exits at once and cleanly, with input still open.
func TestSerialConsoleInterrupt(t *testing.T) {
	r := newTestSim(t, sim.Options{})
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out syncBuffer
	go func() {
		root := newRootCmd(&out, io.Discard)
		root.SetIn(pr)
		root.SetArgs([]string{"serial", "--port", r.Link()})
		done <- root.ExecuteContext(ctx)
	}()
	pw.Write([]byte("PING\n"))
	out.waitFor(t, "← OK 1*15")
	// While the console runs, the port is locked.
	if _, err := devices.OpenPort(r.Link(), nil); !errors.Is(err, devices.ErrPortBusy) {
		t.Errorf("OpenPort while the console runs: %v, want ErrPortBusy", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("teleop serial after Ctrl-C: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("teleop serial did not exit on Ctrl-C")
	}
	// The port is free again.
	p, err := devices.OpenPort(r.Link(), nil)
	if err != nil {
		t.Fatalf("OpenPort after the console: %v", err)
	}
	p.Close()
}

func TestSerialConsoleDeviceGone(t *testing.T) {
	r := newTestSim(t, sim.Options{})
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	var out syncBuffer
	go func() {
		root := newRootCmd(&out, io.Discard)
		root.SetIn(pr)
		root.SetArgs([]string{"serial", "--port", r.Link()})
		done <- root.ExecuteContext(ctx)
	}()
	pw.Write([]byte("PING\n"))
	out.waitFor(t, "← OK 1*15")
	r.Faults().Unplug(0)
	if err := <-done; err == nil || !strings.Contains(err.Error(), "device gone") {
		t.Fatalf("teleop serial after unplug: %v", err)
	}
}

func TestSerialConsoleBadPort(t *testing.T) {
	ctx := context.Background()
	for _, port := range []string{"/dev/serial/by-id/nothing-here", "usb:dead:beef", "usb:1"} {
		if _, _, err := runConsole(t, ctx, strings.NewReader(""), "--port", port); err == nil {
			t.Errorf("--port %s: no error", port)
		}
	}
	if _, _, err := runConsole(t, ctx, strings.NewReader("")); err == nil {
		t.Error("no --port: no error")
	}
}

func TestPortsCommand(t *testing.T) {
	var out bytes.Buffer
	root := newRootCmd(&out, io.Discard)
	root.SetArgs([]string{"ports"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	t.Logf("teleop ports:\n%s", out.String())
	if s := out.String(); s != "no serial ports found\n" && !strings.HasPrefix(s, "PORT ") {
		t.Errorf("output %q", s)
	}
	out.Reset()
	root = newRootCmd(&out, io.Discard)
	root.SetArgs([]string{"ports", "--json"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	var ports []devices.PortInfo
	if err := json.Unmarshal(out.Bytes(), &ports); err != nil || ports == nil {
		t.Fatalf("--json: %v, %q", err, out.String())
	}
}

func TestPrintPorts(t *testing.T) {
	ports := []devices.PortInfo{
		{Path: "/dev/ttyACM0", USB: true, VID: "2341", PID: "0043", Serial: "8573", Manufacturer: "Arduino (www.arduino.cc)", Product: "Uno",
			Driver: "cdc_acm", Links: []string{"/dev/serial/by-path/x", "/dev/serial/by-id/usb-Arduino_Uno_8573-if00"}},
		{Path: "/dev/ttyUSB0", USB: true, VID: "1a86", PID: "7523", Driver: "ch341-uart"},
		{Path: "/dev/ttyAMA0", Driver: "uart-pl011", Console: true},
	}
	var out bytes.Buffer
	if err := printPorts(&out, ports, false); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out.String())
	for _, want := range []string{
		"/dev/ttyACM0  2341:0043  8573    Arduino (www.arduino.cc) Uno  cdc_acm",
		"/dev/serial/by-id/usb-Arduino_Uno_8573-if00",
		"usb:1a86:7523",
		"uart-pl011 (console)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	out.Reset()
	if err := printPorts(&out, nil, false); err != nil || out.String() != "no serial ports found\n" {
		t.Errorf("no ports: %q, %v", out.String(), err)
	}
	out.Reset()
	if err := printPorts(&out, nil, true); err != nil || strings.TrimSpace(out.String()) != "[]" {
		t.Errorf("no ports, JSON: %q, %v", out.String(), err)
	}
}
