package sim

import (
	"math/rand/v2"
	"sync"
	"time"
)

// Direction selects which way a byte fault applies.
type Direction uint8

const (
	ToDevice Direction = 1 << iota // host → robot (applied as the reader takes bytes)
	ToHost                         // robot → host (applied as the writer sends bytes)
	Both     = ToDevice | ToHost
)

type dirFaults struct {
	drop, corrupt, dup    float64 // per-byte probabilities
	dropN, corruptN, dupN int     // the next N bytes
	dropLines             int     // the next N lines, through their '\n'
}

func (d *dirFaults) active() bool {
	return d.drop > 0 || d.corrupt > 0 || d.dup > 0 || d.dropN > 0 || d.corruptN > 0 || d.dupN > 0 || d.dropLines > 0
}

// Faults are the robot's fault knobs. Every method is safe for concurrent
// use; changes apply to the next byte or line.
type Faults struct {
	r *Robot

	mu      sync.Mutex
	rng     *rand.Rand    // guarded by mu
	dirs    [2]dirFaults  // guarded by mu; [0] ToDevice, [1] ToHost
	delay   time.Duration // guarded by mu
	stalled chan struct{} // guarded by mu; non-nil while stalled, closed to resume
}

func newFaults(r *Robot, seed uint64) *Faults {
	return &Faults{r: r, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (f *Faults) each(dir Direction, fn func(*dirFaults)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if dir&ToDevice != 0 {
		fn(&f.dirs[0])
	}
	if dir&ToHost != 0 {
		fn(&f.dirs[1])
	}
}

// SetReplyDelay makes the robot slow: each command line is run, and
// answered, d after the robot takes it from its receive buffer, one at a
// time. Lines behind it wait in the rx buffer (a host that ignores the rx
// window then sees EVT OVERFLOW). Reserved bytes still act at once.
func (f *Faults) SetReplyDelay(d time.Duration) {
	f.mu.Lock()
	f.delay = d
	f.mu.Unlock()
}

func (f *Faults) replyDelay() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.delay
}

// SetDrop loses each byte with probability p.
func (f *Faults) SetDrop(dir Direction, p float64) { f.each(dir, func(d *dirFaults) { d.drop = p }) }

// SetCorrupt flips one random bit of each byte with probability p.
func (f *Faults) SetCorrupt(dir Direction, p float64) {
	f.each(dir, func(d *dirFaults) { d.corrupt = p })
}

// SetDuplicate doubles each byte with probability p.
func (f *Faults) SetDuplicate(dir Direction, p float64) {
	f.each(dir, func(d *dirFaults) { d.dup = p })
}

// DropNext loses the next n bytes.
func (f *Faults) DropNext(dir Direction, n int) { f.each(dir, func(d *dirFaults) { d.dropN += n }) }

// CorruptNext flips a bit in each of the next n bytes.
func (f *Faults) CorruptNext(dir Direction, n int) {
	f.each(dir, func(d *dirFaults) { d.corruptN += n })
}

// DuplicateNext doubles the next n bytes.
func (f *Faults) DuplicateNext(dir Direction, n int) {
	f.each(dir, func(d *dirFaults) { d.dupN += n })
}

// DropLines loses the next n lines whole (through their '\n'): ToHost loses
// n device lines of any kind, ToDevice n host lines.
func (f *Faults) DropLines(dir Direction, n int) {
	f.each(dir, func(d *dirFaults) { d.dropLines += n })
}

// Clear turns every byte fault and the reply delay off, and ends a stall.
func (f *Faults) Clear() {
	f.mu.Lock()
	f.dirs = [2]dirFaults{}
	f.delay = 0
	f.mu.Unlock()
	f.Stall(false)
}

// Stall stops (true) or resumes (false) reading: the pty fills up and the
// host's writes eventually block, like a hung USB-serial bridge. Nothing is
// lost; no byte that arrives once Stall(true) has returned is seen, reserved
// bytes included, until the stall ends.
func (f *Faults) Stall(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case on && f.stalled == nil:
		f.stalled = make(chan struct{})
	case !on && f.stalled != nil:
		close(f.stalled)
		f.stalled = nil
	}
}

// waitUnstalled blocks while stalled; false when done closes first.
func (f *Faults) waitUnstalled(done <-chan struct{}) bool {
	f.mu.Lock()
	ch := f.stalled
	f.mu.Unlock()
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return true
	case <-done:
		return false
	}
}

// Reset reboots the robot: settings, setpoint, e-stop latch and reply cache
// return to their boot state and a new HELLO goes out. An unplugged robot
// is off and stays so.
func (f *Faults) Reset() {
	f.r.do(func() {
		if f.r.ep != nil {
			f.r.bootLocked("fault")
		}
	})
}

// Unplug closes the pty master: the host's reads fail, the slave path
// disappears and the link is removed. When back > 0 the robot comes back
// after back (on the robot's clock) under a new pty path, with the link
// updated, and boots (a new HELLO); otherwise it stays away until Replug.
//
// The new pty is opened before the old one closes and kept unpublished (no
// link, Path "") until the robot comes back, so its path really differs:
// the kernel hands out the lowest free pty number, which would otherwise be
// the old one again once the host has closed it, as a host that lost its
// port does.
func (f *Faults) Unplug(back time.Duration) { f.r.do(func() { f.r.unplug(back) }) }

// Replug brings an unplugged robot back now (see Unplug); it returns the
// error of opening the new pty, or nil when the robot was not unplugged.
func (f *Faults) Replug() error {
	var err error
	f.r.do(func() { err = f.r.replug() })
	return err
}

// apply runs the byte faults of one direction over in; out is scratch. It
// returns in itself when no fault is armed.
func (f *Faults) apply(dir Direction, in []byte, out *[]byte) []byte {
	i := 0
	if dir == ToHost {
		i = 1
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d := &f.dirs[i]
	if !d.active() {
		return in
	}
	o := (*out)[:0]
	for _, c := range in {
		if d.dropLines > 0 {
			if c == '\n' {
				d.dropLines--
			}
			continue
		}
		if d.dropN > 0 {
			d.dropN--
			continue
		}
		if d.drop > 0 && f.rng.Float64() < d.drop {
			continue
		}
		if d.corruptN > 0 {
			d.corruptN--
			c ^= 1 << f.rng.IntN(8)
		} else if d.corrupt > 0 && f.rng.Float64() < d.corrupt {
			c ^= 1 << f.rng.IntN(8)
		}
		o = append(o, c)
		if d.dupN > 0 {
			d.dupN--
			o = append(o, c)
		} else if d.dup > 0 && f.rng.Float64() < d.dup {
			o = append(o, c)
		}
	}
	*out = o
	return o
}
