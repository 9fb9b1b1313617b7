// Package clock is the time source of everything in teleop that waits:
// deadman timers, grace periods, leases, watchdogs, backoff. Production code
// takes a Clock and uses Real; tests use a *Fake and move time with Advance,
// so nothing sleeps to order events.
package clock

import "time"

// Clock tells the time and runs things later.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d, like time.AfterFunc.
	AfterFunc(d time.Duration, f func()) Timer
	// NewTimer is like time.NewTimer.
	NewTimer(d time.Duration) Timer
	// NewTicker is like time.NewTicker; d must be > 0.
	NewTicker(d time.Duration) Ticker
}

// Timer is the part of *time.Timer that teleop uses.
type Timer interface {
	C() <-chan time.Time // nil for timers made by AfterFunc
	Stop() bool
	Reset(d time.Duration) bool
}

// Ticker is the part of *time.Ticker that teleop uses.
type Ticker interface {
	C() <-chan time.Time
	Stop()
	Reset(d time.Duration)
}

// Real is the wall clock.
var Real Clock = realClock{}

// Or returns c, or Real when c is nil, for nil-able options.
func Or(c Clock) Clock {
	if c == nil {
		return Real
	}
	return c
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) Timer {
	return realTimer{time.AfterFunc(d, f)}
}
func (realClock) NewTimer(d time.Duration) Timer   { return realTimer{time.NewTimer(d)} }
func (realClock) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time   { return r.t.C }
func (r realTicker) Stop()                 { r.t.Stop() }
func (r realTicker) Reset(d time.Duration) { r.t.Reset(d) }
