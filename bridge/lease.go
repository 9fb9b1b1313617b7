package bridge

import (
	"fmt"
	"time"
)

// lease is the single-driver lease of safety.lease: exclusive (safety
// invariant 4). One connection at a time holds it; only its setpoints,
// one-shots and clears run. It is given up by release, passed on by
// transfer, and ends when its holder leaves the session or sends nothing
// for lease_idle. Stop and e-stop never ask it.
//
// lease is plain state: the Agent guards it with its mutex and arms the
// idle timer (expiry is checked against the holder's latest signal, so a
// signal does not have to re-arm a timer).
type lease struct {
	exclusive bool
	idle      time.Duration

	holder string    // "" when nobody holds it
	since  time.Time // when holder got it
	last   time.Time // the holder's latest signal
}

// leaseEnd says why a lease ended.
type leaseEnd string

const (
	leaseReleased    leaseEnd = "released"
	leaseTransferred leaseEnd = "transferred"
	leaseIdle        leaseEnd = "idle"
	leaseLeft        leaseEnd = "holder left the session"
	leaseLost        leaseEnd = "holder no longer in the session"
)

// allows reports whether from may drive (setpoint, one-shot) or clear.
// With the lease off everyone may; with it on only the holder, and a
// signal through the REST API (from "") never.
func (l *lease) allows(from string) (ok bool, reason string) {
	switch {
	case !l.exclusive:
		return true, ""
	case l.holder == "":
		return false, "nobody holds the lease: send control {\"action\":\"acquire\"} first"
	case from == l.holder:
		return true, ""
	}
	return false, "lease held by " + l.holder
}

// touch records a signal from from: it keeps the holder's lease alive.
func (l *lease) touch(from string, now time.Time) {
	if l.exclusive && from != "" && from == l.holder {
		l.last = now
	}
}

// acquire gives the lease to from when nobody else holds it. Acquiring a
// lease already held is fine (and refreshes it).
func (l *lease) acquire(from string, now time.Time) error {
	switch {
	case from == "":
		return fmt.Errorf("the REST API cannot hold the lease")
	case l.holder != "" && l.holder != from:
		return fmt.Errorf("lease held by %s", l.holder)
	}
	if l.holder != from {
		l.since = now
	}
	l.holder, l.last = from, now
	return nil
}

// release gives the lease up; only its holder may.
func (l *lease) release(from string) error {
	if l.holder == "" || l.holder != from {
		return l.notHolder()
	}
	l.holder = ""
	return nil
}

// transfer passes the lease from its holder to another connection, which
// present says is in the session.
func (l *lease) transfer(from, to string, now time.Time, present func(string) bool) error {
	switch {
	case l.holder == "" || l.holder != from:
		return l.notHolder()
	case to == from:
		l.last = now
		return nil
	case !present(to):
		return fmt.Errorf("connection %s is not in the session", to)
	}
	l.holder, l.since, l.last = to, now, now
	return nil
}

func (l *lease) notHolder() error {
	if l.holder == "" {
		return fmt.Errorf("nobody holds the lease")
	}
	return fmt.Errorf("lease held by %s", l.holder)
}

// idleUntil is when the current holder's lease runs out if it stays quiet;
// zero when nobody holds it.
func (l *lease) idleUntil() time.Time {
	if l.holder == "" {
		return time.Time{}
	}
	return l.last.Add(l.idle)
}

// expire ends the lease when its holder has been quiet for lease_idle and
// reports the holder it took it from.
func (l *lease) expire(now time.Time) (was string, ended bool) {
	if l.holder == "" || now.Before(l.idleUntil()) {
		return "", false
	}
	was, l.holder = l.holder, ""
	return was, true
}

// drop ends the lease when id, its holder, left the session.
func (l *lease) drop(id string) bool {
	if l.holder == "" || l.holder != id {
		return false
	}
	l.holder = ""
	return true
}

// mode is the status's lease.mode.
func (l *lease) mode() string {
	if l.exclusive {
		return LeaseExclusive.String()
	}
	return LeaseOff.String()
}
