package clock

import (
	"sort"
	"sync"
	"time"
)

// Fake is a Clock whose time moves only when Advance or Set is called.
// Timers and tickers fire in deadline order during Advance; AfterFunc
// callbacks run synchronously inside Advance, in that order, without the
// Fake's lock held (so a callback may call the clock again). Channel timers
// and tickers deliver without blocking (a full channel drops the tick, as
// time.Ticker does).
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*fakeTimer // guarded by mu
	seq     uint64       // guarded by mu; orders equal deadlines
	changed chan struct{}
}

// NewFake returns a Fake set to a fixed, arbitrary instant.
func NewFake() *Fake {
	return &Fake{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), changed: make(chan struct{})}
}

func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	return f.add(d, 0, fn, nil)
}

func (f *Fake) NewTimer(d time.Duration) Timer {
	return f.add(d, 0, nil, make(chan time.Time, 1))
}

func (f *Fake) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive interval for NewTicker")
	}
	return tickerAdapter{f.add(d, d, nil, make(chan time.Time, 1))}
}

// Advance moves time forward by d, firing everything due on the way.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	end := f.now.Add(d)
	f.mu.Unlock()
	f.advanceTo(end)
}

// Set moves time to t (never backwards), firing everything due on the way.
func (f *Fake) Set(t time.Time) { f.advanceTo(t) }

// Waiters returns how many timers and tickers are armed. Tests use it with
// BlockUntil to know that the code under test has armed its timer before
// they advance time.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters)
}

// BlockUntil returns a channel closed once at least n timers are armed.
func (f *Fake) BlockUntil(n int) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		for {
			f.mu.Lock()
			ok := len(f.waiters) >= n
			ch := f.changed
			f.mu.Unlock()
			if ok {
				close(done)
				return
			}
			<-ch
		}
	}()
	return done
}

func (f *Fake) advanceTo(end time.Time) {
	for {
		f.mu.Lock()
		if len(f.waiters) == 0 || f.waiters[0].when.After(end) {
			if end.After(f.now) {
				f.now = end
			}
			f.mu.Unlock()
			return
		}
		t := f.waiters[0]
		f.waiters = f.waiters[1:]
		if t.when.After(f.now) {
			f.now = t.when
		}
		now := f.now
		if t.period > 0 {
			t.when = t.when.Add(t.period)
			f.insertLocked(t)
		} else {
			t.armed = false
		}
		f.notifyLocked()
		f.mu.Unlock()

		if t.fn != nil {
			t.fn()
		} else {
			select {
			case t.ch <- now:
			default:
			}
		}
	}
}

func (f *Fake) add(d, period time.Duration, fn func(), ch chan time.Time) *fakeTimer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{f: f, when: f.now.Add(d), period: period, fn: fn, ch: ch}
	f.insertLocked(t)
	f.notifyLocked()
	return t
}

func (f *Fake) insertLocked(t *fakeTimer) {
	f.seq++
	t.seq = f.seq
	t.armed = true
	i := sort.Search(len(f.waiters), func(i int) bool {
		w := f.waiters[i]
		return w.when.After(t.when) || (w.when.Equal(t.when) && w.seq > t.seq)
	})
	f.waiters = append(f.waiters, nil)
	copy(f.waiters[i+1:], f.waiters[i:])
	f.waiters[i] = t
}

func (f *Fake) removeLocked(t *fakeTimer) bool {
	for i, w := range f.waiters {
		if w == t {
			f.waiters = append(f.waiters[:i], f.waiters[i+1:]...)
			t.armed = false
			f.notifyLocked()
			return true
		}
	}
	return false
}

func (f *Fake) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

type fakeTimer struct {
	f      *Fake
	when   time.Time
	period time.Duration
	fn     func()
	ch     chan time.Time
	seq    uint64
	armed  bool // guarded by f.mu
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	return t.f.removeLocked(t)
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.f.removeLocked(t)
	t.when = t.f.now.Add(d)
	if t.period > 0 {
		t.period = d
	}
	t.f.insertLocked(t)
	t.f.notifyLocked()
	return was
}

// Interface checks.
var (
	_ Timer  = (*fakeTimer)(nil)
	_ Ticker = tickerAdapter{}
)

// A *fakeTimer serves as a Ticker too; Ticker's Stop and Reset return nothing.
type tickerAdapter struct{ *fakeTimer }

func (a tickerAdapter) Stop()                 { a.fakeTimer.Stop() }
func (a tickerAdapter) Reset(d time.Duration) { a.fakeTimer.Reset(d) }
