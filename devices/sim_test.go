package devices_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teleop/teleop/devices"
	"github.com/teleop/teleop/devices/proto"
	"github.com/teleop/teleop/devices/sim"
)

// The Device against the simulated robot (devices/sim) on a real pty:
// the same path as a board, through go.bug.st/serial.

const simWait = 10 * time.Second

// states records a Device's states for waiting on them.
type states struct {
	mu   sync.Mutex
	seen []devices.State
	ch   chan struct{}
}

func (s *states) add(st devices.State) {
	s.mu.Lock()
	s.seen = append(s.seen, st)
	close(s.ch)
	s.ch = make(chan struct{})
	s.mu.Unlock()
}

// waitFrom waits for want at index ≥ from and returns the index after it.
func (s *states) waitFrom(t *testing.T, from int, want devices.State) int {
	t.Helper()
	deadline := time.After(simWait)
	for {
		s.mu.Lock()
		for i := from; i < len(s.seen); i++ {
			if s.seen[i] == want {
				s.mu.Unlock()
				return i + 1
			}
		}
		ch, seen := s.ch, append([]devices.State(nil), s.seen...)
		s.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %v; states %v", want, seen)
		}
	}
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newSim(t *testing.T, opts *sim.Options) *sim.Robot {
	t.Helper()
	if opts == nil {
		opts = &sim.Options{}
	}
	opts.Link = filepath.Join(t.TempDir(), "robot")
	r, err := sim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func openSimDevice(t *testing.T, r *sim.Robot) (*devices.Device, *states) {
	t.Helper()
	st := &states{ch: make(chan struct{})}
	d, err := devices.Open(context.Background(), devices.Config{
		Name:           "sim",
		Port:           r.Link(),
		BootWait:       50 * time.Millisecond,
		CommandTimeout: 200 * time.Millisecond,
		SilenceTimeout: time.Second,
		BackoffMin:     20 * time.Millisecond,
		BackoffMax:     100 * time.Millisecond,
	}, &devices.Options{
		Logger:  slog.New(slog.NewTextHandler(logWriter{t}, nil)),
		OnState: st.add,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, st
}

func vel(lin, ang float64) devices.Command {
	return devices.Cmd("VEL", proto.Float(lin, 3), proto.Float(ang, 3))
}

func TestSimDrive(t *testing.T) {
	r := newSim(t, nil)
	d, st := openSimDevice(t, r)
	st.waitFrom(t, 0, devices.StateReady)
	ctx, cancel := context.WithTimeout(context.Background(), simWait)
	defer cancel()

	if s := r.State().Settings; !s.Strict || s.WdogMs != devices.DefaultWatchdogMs {
		t.Fatalf("settings not applied: %+v", s)
	}
	res, err := d.Setpoint(ctx, vel(0.4, 0.1))
	if err != nil || res.Status != devices.StatusOK || res.RTT <= 0 {
		t.Fatalf("VEL = %+v, %v", res, err)
	}
	if s := r.State(); s.Linear < 0.39 || s.Angular < 0.09 {
		t.Errorf("robot setpoint = %v %v", s.Linear, s.Angular)
	}
	res, err = d.Do(ctx, devices.Cmd("OUT", proto.KV("lights", proto.Int(1))))
	if err != nil || res.Status != devices.StatusOK || r.State().Outputs["lights"] != 1 {
		t.Fatalf("OUT = %+v, %v; outputs %v", res, err, r.State().Outputs)
	}
	res, err = d.Do(ctx, devices.Cmd("GET", proto.Word("wdog_ms")))
	if err != nil || res.Fields["wdog_ms"] != "300" {
		t.Fatalf("GET = %+v, %v", res, err)
	}
	if res, err := d.Stop(ctx); err != nil || res.Status != devices.StatusOK || r.State().Linear != 0 {
		t.Fatalf("Stop = %+v, %v; linear %v", res, err, r.State().Linear)
	}
}

func TestSimEStopAndClear(t *testing.T) {
	r := newSim(t, nil)
	d, st := openSimDevice(t, r)
	next := st.waitFrom(t, 0, devices.StateReady)
	ctx, cancel := context.WithTimeout(context.Background(), simWait)
	defer cancel()
	if _, err := d.Setpoint(ctx, vel(0.5, 0)); err != nil {
		t.Fatal(err)
	}
	if err := d.EStop(); err != nil {
		t.Fatal(err)
	}
	next = st.waitFrom(t, next, devices.StateEStopped)
	// The robot read the '!' bytes before this PING.
	if res, err := d.Do(ctx, devices.Cmd("PING")); err != nil || res.Status != devices.StatusOK {
		t.Fatalf("PING = %+v, %v", res, err)
	}
	if s := r.State(); !s.Latched || s.Linear != 0 {
		t.Fatalf("robot after e-stop: latched %v, linear %v", s.Latched, s.Linear)
	}
	if _, err := d.Setpoint(ctx, vel(0.5, 0)); !errors.Is(err, devices.ErrEStopped) {
		t.Fatalf("setpoint while latched: %v", err)
	}
	if res, err := d.Clear(ctx); err != nil || res.Status != devices.StatusOK {
		t.Fatalf("Clear = %+v, %v", res, err)
	}
	st.waitFrom(t, next, devices.StateReady)
	if r.State().Latched {
		t.Fatal("robot still latched")
	}
}

// The robot reboots in the middle of a session: the host handshakes again
// and re-applies its settings.
func TestSimReset(t *testing.T) {
	r := newSim(t, nil)
	d, st := openSimDevice(t, r)
	next := st.waitFrom(t, 0, devices.StateReady)
	r.Faults().Reset()
	next = st.waitFrom(t, next, devices.StateConnecting)
	st.waitFrom(t, next, devices.StateReady)
	s := r.State()
	if s.Boots != 2 || !s.Settings.Strict || s.Settings.WdogMs != devices.DefaultWatchdogMs {
		t.Fatalf("after reset: boots %d, settings %+v", s.Boots, s.Settings)
	}
	ctx, cancel := context.WithTimeout(context.Background(), simWait)
	defer cancel()
	if res, err := d.Do(ctx, devices.Cmd("PING")); err != nil || res.Status != devices.StatusOK {
		t.Fatalf("PING = %+v, %v", res, err)
	}
}

// Unplugged, the robot comes back under a new pty; the host follows the
// stable link.
func TestSimUnplugReplug(t *testing.T) {
	r := newSim(t, nil)
	d, st := openSimDevice(t, r)
	next := st.waitFrom(t, 0, devices.StateReady)
	old := r.Path()
	r.Faults().Unplug(0)
	next = st.waitFrom(t, next, devices.StateDisconnected)
	if err := r.Faults().Replug(); err != nil {
		t.Fatal(err)
	}
	st.waitFrom(t, next, devices.StateReady)
	t.Logf("old %s, new %s", old, r.Path())
	ctx, cancel := context.WithTimeout(context.Background(), simWait)
	defer cancel()
	if res, err := d.Setpoint(ctx, vel(0.2, 0)); err != nil || res.Status != devices.StatusOK {
		t.Fatalf("VEL after replug = %+v, %v", res, err)
	}
}

// The robot stops reading but keeps sending telemetry: commands go
// unanswered, the host fails the link, and it comes back when the robot
// reads again.
func TestSimStall(t *testing.T) {
	r := newSim(t, nil)
	d, st := openSimDevice(t, r)
	next := st.waitFrom(t, 0, devices.StateReady)
	r.Faults().Stall(true)
	ctx, cancel := context.WithTimeout(context.Background(), simWait)
	defer cancel()
	// (The robot's reader may take one more chunk before it stalls.)
	var err error
	for i := 0; i < 50 && err == nil; i++ {
		_, err = d.Setpoint(ctx, vel(0.1, 0))
	}
	if !errors.Is(err, devices.ErrLinkDown) && !errors.Is(err, devices.ErrNotReady) {
		t.Fatalf("setpoints to a stalled robot: %v, want the link down", err)
	}
	t.Logf("setpoint: %v", err)
	next = st.waitFrom(t, next, devices.StateDisconnected)
	r.Faults().Stall(false)
	st.waitFrom(t, next, devices.StateReady)
}

// Bytes lost both ways and corrupted on the way back: one-shot commands
// still complete (retried with the same seq), and the link stays up.
// (Corruption towards the robot is left out: a byte that turns into '!'
// e-stops it, as it should, and every later OUT is refused.)
func TestSimNoisyLine(t *testing.T) {
	r := newSim(t, &sim.Options{Seed: 7})
	d, st := openSimDevice(t, r)
	st.waitFrom(t, 0, devices.StateReady)
	r.Faults().SetCorrupt(sim.ToHost, 0.003)
	r.Faults().SetDrop(sim.Both, 0.003)
	ctx, cancel := context.WithTimeout(context.Background(), simWait)
	defer cancel()
	ok := 0
	for i := 0; i < 40; i++ {
		res, err := d.Do(ctx, devices.Cmd("OUT", proto.KV("lights", proto.Int(i%2))))
		if err != nil {
			t.Logf("OUT %d: %v", i, err)
			continue
		}
		if res.Status == devices.StatusOK {
			ok++
		}
	}
	r.Faults().Clear()
	s := r.State()
	t.Logf("%d/40 ok; robot ran %d, replayed %d", ok, s.Executed, s.Replayed)
	if ok < 36 {
		t.Errorf("only %d/40 one-shots completed on a 0.3%% noisy line", ok)
	}
}
