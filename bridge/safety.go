package bridge

import (
	"time"
)

// The ack's "status" values (docs/agent.md).
const (
	AckOK         = "ok"         // the device answered OK
	AckSent       = "sent"       // written, unconfirmed: raw devices without ok_pattern, and the e-stop bytes
	AckSuperseded = "superseded" // a newer setpoint (or a stop) replaced it before it ran; newest wins
	AckRejected   = "rejected"   // not run: invalid, forbidden, stale, latched, lease, rate limit, …
	AckError      = "error"      // the device answered ERR (code: its number, reason: its text), or the link failed
	AckTimeout    = "timeout"    // no reply from the device
)

// Codes of rejections the agent decides, next to the mapper's RejectCode
// names (unknown_type, forbidden, stale, bad_data, …) in the ack's "code".
const (
	CodeRateLimited  = "rate_limited"  // over the mapping's rate_limit for this sender
	CodeEstopLatched = "estop_latched" // the e-stop is latched on the device: clear it first
	CodeLease        = "lease"         // the lease is held by someone else, or nobody holds it
	CodeNotReady     = "not_ready"     // the device is connecting or disconnected
	CodeBusy         = "busy"          // the device's queue of one-shot commands is full
	CodeSessionLost  = "session_lost"  // the agent lost its session; motion waits for a fresh signal
	CodeShutdown     = "shutting_down" // the agent is stopping
	CodeLinkDown     = "link_down"     // the serial link failed with the command in flight
	CodeDeviceReset  = "device_reset"  // the device rebooted with the command in flight
)

// bucket is a token bucket: at most n signals per per, with a burst of n
// (the mapping's rate_limit, per sender and type).
type bucket struct {
	tokens float64
	at     time.Time
}

// take reports whether one more signal fits rate r at now.
func (b *bucket) take(r Rate, now time.Time) bool {
	n := float64(r.N)
	if b.at.IsZero() {
		b.tokens = n
	} else if dt := now.Sub(b.at); dt > 0 {
		b.tokens += n * float64(dt) / float64(r.Per)
		if b.tokens > n {
			b.tokens = n
		}
	}
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// bucketKey names a sender's bucket for one signal type.
type bucketKey struct{ from, typ string }
