package bridge

import (
	"slices"
	"strconv"
	"time"

	"github.com/teleop/teleop/devices"
)

// telemetryJSON is the telemetry signal's data for one TLM line:
//
//	{"device":"base","t_ms":123456,"st":"RDY","bat":12.31,"lseq":41,"vl":0.2,…}
//
// Values the firmware wrote as numbers ("0.200", "-1") are JSON numbers,
// written as they came; anything else is a string; st is always a string.
// Keys after st are sorted, so equal lines give equal data.
func telemetryJSON(dst []byte, device string, t devices.Telemetry) []byte {
	dst = append(dst, `{"device":`...)
	dst = appendJSONString(dst, device)
	dst = append(dst, `,"t_ms":`...)
	dst = strconv.AppendUint(dst, uint64(t.TimeMs), 10)
	if st, ok := t.Fields["st"]; ok {
		dst = append(dst, `,"st":`...)
		dst = appendJSONString(dst, st)
	}
	keys := make([]string, 0, len(t.Fields))
	for k := range t.Fields {
		if k != "st" && k != "device" && k != "t_ms" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := t.Fields[k]
		dst = append(dst, ',')
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		if isJSONNumber(v) {
			dst = append(dst, v...)
		} else {
			dst = appendJSONString(dst, v)
		}
	}
	return append(dst, '}')
}

// throttle lets one item through per interval, on average, and keeps the
// newest of those that came too early, to be sent when the interval has
// passed (outputs.telemetry_interval, per device). An item up to a tenth of
// an interval early goes out at once: a device sending at exactly the
// configured rate drifts against the host's clock, and holding such an
// item back for a moment would cost a timer and a wake-up each time. The
// schedule then moves on by a whole interval from when the item was due,
// so the rate over any longer stretch stays at or under one per interval.
// Guarded by its owner's mutex.
type throttle struct {
	interval time.Duration
	next     time.Time // when the next item is due; zero before the first
	pending  []byte    // the newest held back; nil when none
	armed    bool      // a timer will flush pending
}

// offer decides about data arriving at now: send it now (out non-nil), or
// hold it (wait > 0: arm a timer for that long, unless one is armed).
func (th *throttle) offer(data []byte, now time.Time) (out []byte, wait time.Duration) {
	if th.interval <= 0 || th.next.IsZero() || !now.Before(th.next.Add(-th.interval/10)) {
		th.sent(now)
		return data, 0
	}
	th.pending = data
	if th.armed {
		return nil, 0
	}
	th.armed = true
	return nil, th.next.Sub(now)
}

// sent records an item going out at now.
func (th *throttle) sent(now time.Time) {
	due := th.next
	if due.Before(now.Add(-th.interval/10)) || due.IsZero() {
		due = now // late (or the first): the schedule starts again from now
	}
	th.next, th.pending = due.Add(th.interval), nil
}

// flush is the timer's turn: the held item, if any, goes out now.
func (th *throttle) flush(now time.Time) []byte {
	th.armed = false
	out := th.pending
	if out != nil {
		th.sent(now)
	}
	return out
}
