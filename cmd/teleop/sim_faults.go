package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/teleop/teleop/clock"
	"github.com/teleop/teleop/devices/sim"
)

// simEvery is when a timed fault of `teleop sim` fires: once after after,
// then every every. Either may be 0; both 0 is never.
type simEvery struct {
	after, every time.Duration
}

// first is the delay to the first firing; 0 is never.
func (e simEvery) first() time.Duration {
	if e.after > 0 {
		return e.after
	}
	return e.every
}

// simSchedule is the timed faults of `teleop sim`.
type simSchedule struct {
	stall     simEvery
	stallFor  time.Duration
	reset     simEvery
	unplug    simEvery
	unplugFor time.Duration
}

func (s *simSchedule) validate() error {
	for _, e := range []struct {
		name string
		d    simEvery
	}{{"stall", s.stall}, {"reset", s.reset}, {"unplug", s.unplug}} {
		if e.d.after < 0 {
			return fmt.Errorf("--%s-after %v: want ≥ 0", e.name, e.d.after)
		}
		if e.d.every < 0 {
			return fmt.Errorf("--%s-every %v: want ≥ 0", e.name, e.d.every)
		}
	}
	if s.stallFor <= 0 {
		return fmt.Errorf("--stall-for %v: want > 0", s.stallFor)
	}
	if s.unplugFor <= 0 {
		return fmt.Errorf("--unplug-for %v: want > 0", s.unplugFor)
	}
	if s.stall.every > 0 && s.stall.every <= s.stallFor {
		return fmt.Errorf("--stall-every %v: want more than --stall-for %v", s.stall.every, s.stallFor)
	}
	if s.unplug.every > 0 && s.unplug.every <= s.unplugFor {
		return fmt.Errorf("--unplug-every %v: want more than --unplug-for %v", s.unplug.every, s.unplugFor)
	}
	return nil
}

// alarm is a one-shot timer that may be unset; its channel is nil then.
type alarm struct {
	clk clock.Clock
	t   clock.Timer
}

// set arms the alarm for d from now, replacing any; d ≤ 0 unsets it.
func (a *alarm) set(d time.Duration) {
	a.stop()
	if d > 0 {
		a.t = a.clk.NewTimer(d)
	}
}

func (a *alarm) stop() {
	if a.t != nil {
		a.t.Stop()
		a.t = nil
	}
}

func (a *alarm) C() <-chan time.Time {
	if a.t == nil {
		return nil
	}
	return a.t.C()
}

// simFaults fires the timed and signalled faults of `teleop sim` through
// the robot's Go API and says so on out, one line each. It is the only
// caller of Unplug and Replug, so it knows whether the robot is plugged.
// Everything is owned by the goroutine that calls run.
type simFaults struct {
	r     *sim.Robot
	f     *sim.Faults
	out   io.Writer
	sched simSchedule

	stall, unstall, reset, unplug, replug alarm
	unplugged                             bool
}

// newSimFaults arms the first firing of each timed fault.
func newSimFaults(r *sim.Robot, clk clock.Clock, out io.Writer, s simSchedule) *simFaults {
	x := &simFaults{r: r, f: r.Faults(), out: out, sched: s}
	for _, a := range []*alarm{&x.stall, &x.unstall, &x.reset, &x.unplug, &x.replug} {
		a.clk = clk
	}
	x.stall.set(s.stall.first())
	x.reset.set(s.reset.first())
	x.unplug.set(s.unplug.first())
	return x
}

// run fires faults until ctx ends, or a replug fails.
func (x *simFaults) run(ctx context.Context, sigs <-chan os.Signal) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case sig := <-sigs:
			switch sig {
			case syscall.SIGUSR1:
				x.doReset()
			case syscall.SIGUSR2:
				if x.unplugged {
					if err := x.doReplug(); err != nil {
						return err
					}
				} else {
					x.doUnplug()
				}
			}
		case <-x.stall.C():
			x.stall.set(x.sched.stall.every)
			x.f.Stall(true)
			x.unstall.set(x.sched.stallFor)
			fmt.Fprintf(x.out, "sim: stalled (not reading) for %v\n", x.sched.stallFor)
		case <-x.unstall.C():
			x.unstall.stop()
			x.f.Stall(false)
			fmt.Fprintln(x.out, "sim: reading again")
		case <-x.reset.C():
			x.reset.set(x.sched.reset.every)
			x.doReset()
		case <-x.unplug.C():
			x.unplug.set(x.sched.unplug.every)
			if x.unplugged {
				fmt.Fprintln(x.out, "sim: unplug skipped: already unplugged")
			} else {
				x.doUnplug()
			}
		case <-x.replug.C():
			if err := x.doReplug(); err != nil {
				return err
			}
		}
	}
}

func (x *simFaults) doReset() {
	if x.unplugged {
		fmt.Fprintln(x.out, "sim: reset skipped: unplugged")
		return
	}
	x.f.Reset()
	fmt.Fprintln(x.out, "sim: reset (new HELLO)")
}

func (x *simFaults) doUnplug() {
	x.f.Unplug(0) // back when the replug alarm rings
	x.unplugged = true
	x.replug.set(x.sched.unplugFor)
	fmt.Fprintf(x.out, "sim: unplugged; back in %v\n", x.sched.unplugFor)
}

func (x *simFaults) doReplug() error {
	x.replug.stop()
	if err := x.f.Replug(); err != nil {
		return fmt.Errorf("replug: %w", err)
	}
	x.unplugged = false
	fmt.Fprintf(x.out, "sim: replugged at %s\n", x.r.Path())
	return nil
}

// stop disarms every alarm.
func (x *simFaults) stop() {
	for _, a := range []*alarm{&x.stall, &x.unstall, &x.reset, &x.unplug, &x.replug} {
		a.stop()
	}
}
