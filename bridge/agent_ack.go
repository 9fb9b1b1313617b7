package bridge

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/teleop/teleop/devices"
	"github.com/teleop/teleop/signaling"
)

// job is one mapped signal on its way to a device (or to the lease), and
// the promise of exactly one ack: finish answers it once, whatever path
// ends it.
type job struct {
	typ      string // the signal type, as acked
	label    string // the type as a metric label: "unmapped" for types without a mapping
	from     string // sender's connection; "" for the REST API (never acked)
	id       string // the operator's id as JSON text; "" when none
	kind     Kind
	received time.Time     // when the session client read it (Agent clock)
	relayAge time.Duration // the relay's ageMs: sender's queue and relay buffers
	maxAge   time.Duration
	ackOK    bool // ack success too (mapping ack: true); rejections always
	dcmd     devices.Command

	done atomic.Bool
}

// age is how long the signal has waited by now: relay and agent together.
func (j *job) age(now time.Time) time.Duration {
	if j.received.IsZero() {
		return j.relayAge
	}
	return j.relayAge + now.Sub(j.received)
}

// stale reports whether j waited longer than its max age by now, and says
// where it waited.
func (j *job) stale(now time.Time) (string, bool) {
	if j.maxAge <= 0 {
		return "", false
	}
	age := j.age(now)
	if age <= j.maxAge {
		return "", false
	}
	return fmt.Sprintf("signal waited %d ms (relay %d ms, agent %d ms); the limit is %d ms",
		age.Milliseconds(), j.relayAge.Milliseconds(), (age - j.relayAge).Milliseconds(), j.maxAge.Milliseconds()), true
}

// outcome is how a job ended: the ack's status, code and reason, and the
// device round trip when the device answered.
type outcome struct {
	status string
	code   string // agent or mapper code; for a firmware ERR its number
	reason string
	rtt    time.Duration // 0: no device answer
}

func rejected(code, reason string) outcome {
	return outcome{status: AckRejected, code: code, reason: reason}
}

// severity orders statuses for an ack that sums up several devices.
func severity(status string) int {
	switch status {
	case AckOK:
		return 0
	case AckSent:
		return 1
	case AckSuperseded:
		return 2
	case AckRejected:
		return 3
	case AckTimeout:
		return 4
	}
	return 5 // error
}

// deviceOutcome turns a device call's result into an outcome. Stops and
// clears that could not be sent are errors (the robot did not get them);
// setpoints and one-shots that were not sent are rejections.
func deviceOutcome(dev string, kind Kind, res devices.Result, err error) outcome {
	if err != nil {
		notSent := AckRejected
		if kind == KindStop || kind == KindClear {
			notSent = AckError
		}
		switch {
		case errors.Is(err, devices.ErrEStopped):
			return rejected(CodeEstopLatched, "e-stop latched on "+dev)
		case errors.Is(err, devices.ErrNotReady):
			return outcome{status: notSent, code: CodeNotReady, reason: fmt.Sprintf("device %s not ready (%s)", dev, strings.TrimPrefix(err.Error(), devices.ErrNotReady.Error()+": "))}
		case errors.Is(err, devices.ErrClosed):
			return outcome{status: notSent, code: CodeShutdown, reason: "device " + dev + " closed"}
		case errors.Is(err, devices.ErrDeviceReset):
			return outcome{status: AckError, code: CodeDeviceReset, reason: "device " + dev + " rebooted before answering"}
		case errors.Is(err, devices.ErrLinkDown):
			return outcome{status: AckError, code: CodeLinkDown, reason: "serial link to " + dev + " failed before an answer"}
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			return outcome{status: notSent, code: CodeShutdown, reason: "agent stopping"}
		}
		return outcome{status: AckError, code: "device", reason: dev + ": " + err.Error()}
	}
	o := outcome{rtt: res.RTT}
	switch res.Status {
	case devices.StatusOK:
		o.status = AckOK
	case devices.StatusSent:
		o.status, o.rtt = AckSent, 0
	case devices.StatusSuperseded:
		o.status, o.code, o.reason, o.rtt = AckSuperseded, "superseded", "replaced before it was sent", 0
	case devices.StatusTimeout:
		o.status, o.code, o.rtt = AckTimeout, "timeout", 0
		o.reason = fmt.Sprintf("no reply from %s after %d tries", dev, res.Tries)
		if res.Text != "" {
			o.reason = dev + ": " + res.Text
		}
	case devices.StatusError:
		o.status = AckError
		o.code = strconv.Itoa(int(res.Code))
		o.reason = res.Text
		if res.Code == 0 { // raw: the line that matched err_pattern
			o.code = "device"
		}
		if o.reason == "" {
			o.reason = res.Code.String()
		}
	default:
		o.status, o.reason = AckError, "unknown result "+res.Status.String()
	}
	return o
}

// fanout sums up a stop, e-stop or clear sent to several devices into one
// ack: the worst status, every device's reason, the slowest round trip.
type fanout struct {
	a *Agent
	j *job

	mu      sync.Mutex
	left    int
	worst   outcome
	reasons []string
}

func (a *Agent) newFanout(j *job, n int) *fanout {
	return &fanout{a: a, j: j, left: n, worst: outcome{status: AckOK}}
}

// done records one device's outcome; the last one answers the job.
func (f *fanout) done(dev string, o outcome) {
	if f == nil {
		return
	}
	f.mu.Lock()
	if o.rtt > f.worst.rtt {
		f.worst.rtt = o.rtt
	}
	if o.status != AckOK && o.status != AckSent {
		r := o.reason
		if r == "" {
			r = o.status
		}
		if !strings.Contains(r, dev) {
			r = dev + ": " + r
		}
		f.reasons = append(f.reasons, r)
	}
	if severity(o.status) > severity(f.worst.status) {
		f.worst.status, f.worst.code = o.status, o.code
	}
	f.left--
	last := f.left == 0
	res := f.worst
	res.reason = strings.Join(f.reasons, "; ")
	f.mu.Unlock()
	if last {
		f.a.finish(f.j, res)
	}
}

// finish answers j: its one ack (unless it came through the REST API, or it
// succeeded under a mapping with ack: false) and its metrics.
func (a *Agent) finish(j *job, o outcome) {
	if j == nil || j.done.Swap(true) {
		return
	}
	now := a.clk.Now()
	bridge := time.Duration(0)
	if !j.received.IsZero() {
		bridge = now.Sub(j.received)
	}
	a.m.signals.WithLabelValues(j.label, o.status).Inc()
	switch o.status {
	case AckRejected, AckError, AckTimeout:
		a.log.Debug("signal "+o.status, "type", j.typ, "from", j.from, "id", j.id, "code", o.code, "reason", o.reason)
	}
	if j.from == "" {
		return // the REST API has no connection to answer
	}
	if !j.ackOK && (o.status == AckOK || o.status == AckSent || o.status == AckSuperseded) {
		return
	}
	a.m.ackLatency.Observe(bridge.Seconds())
	a.out.ack(j.from, ackJSON(nil, j.id, j.typ, o, bridge))
}

// ackJSON is the ack signal's data:
//
//	{"id":17,"type":"drive","status":"ok","device_ms":0.071,"bridge_ms":0.342}
//	{"id":18,"type":"drive","status":"rejected","code":"estop_latched","reason":"e-stop latched on base","bridge_ms":0.02}
//
// id is left out when the signal had none; code and reason when empty;
// device_ms when no device answered. A firmware error's code is its number.
func ackJSON(dst []byte, id, typ string, o outcome, bridge time.Duration) []byte {
	dst = append(dst, '{')
	if id != "" {
		dst = append(dst, `"id":`...)
		dst = append(dst, id...)
		dst = append(dst, ',')
	}
	dst = append(dst, `"type":`...)
	dst = appendJSONString(dst, typ)
	dst = append(dst, `,"status":`...)
	dst = appendJSONString(dst, o.status)
	if o.code != "" {
		dst = append(dst, `,"code":`...)
		if _, err := strconv.Atoi(o.code); err == nil {
			dst = append(dst, o.code...)
		} else {
			dst = appendJSONString(dst, o.code)
		}
	}
	if o.reason != "" {
		dst = append(dst, `,"reason":`...)
		dst = appendJSONString(dst, o.reason)
	}
	if o.rtt > 0 {
		dst = append(dst, `,"device_ms":`...)
		dst = strconv.AppendFloat(dst, ms(o.rtt), 'f', 3, 64)
	}
	dst = append(dst, `,"bridge_ms":`...)
	dst = strconv.AppendFloat(dst, ms(bridge), 'f', 3, 64)
	return append(dst, '}')
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// appendJSONString quotes s for JSON: strconv.Quote's escapes are Go's,
// not JSON's (\x00, \a), so control characters and invalid UTF-8 are
// written as \u escapes here.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			dst = append(dst, '\\', byte(r))
		case r < 0x20 || r == 0x7f || r == 0xfffd || r == 0x2028 || r == 0x2029:
			dst = append(dst, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
		default:
			dst = append(dst, string(r)...)
		}
	}
	return append(dst, '"')
}

// outbox sends the agent's own signals without ever blocking the code
// that produces them: it posts them (Session.Post), so the relay answers
// only a failure, and the session's writer sends them in order.
//
// Acks are posted with retry (one posted while the agent reconnects waits
// for the new socket): a late ack still tells the operator what happened.
// Telemetry is NoRetry: a stale reading is no use. A signal the session
// cannot take (its queue is full, or the agent is stopping) is dropped and
// counted, as is one the relay refuses later.
type outbox struct {
	a *Agent

	mu     sync.Mutex // guards sess and closed
	sess   *signaling.Session
	closed bool
}

func newOutbox(a *Agent) *outbox { return &outbox{a: a} }

// start posts through sess from now on.
func (o *outbox) start(sess *signaling.Session) {
	sess.OnPostFailed(func(sig signaling.Signal, err error) {
		o.a.m.outputErrors.WithLabelValues(sig.Type).Inc()
		o.a.log.Debug("could not send "+sig.Type, "to", sig.To, "err", err)
	})
	o.mu.Lock()
	o.sess = sess
	o.mu.Unlock()
}

func (o *outbox) ack(to string, data []byte) {
	typ := o.a.cfg.Outputs.AckType
	if err := o.post(signaling.Signal{Type: typ, Data: string(data), To: to}); err != nil {
		o.a.m.outputErrors.WithLabelValues(typ).Inc()
		o.a.log.Warn("ack dropped", "to", to, "err", err)
	}
}

func (o *outbox) telemetry(to string, data []byte) {
	typ := o.a.cfg.Outputs.TelemetryType
	if err := o.post(signaling.Signal{Type: typ, Data: string(data), To: to, NoRetry: true}); err != nil {
		o.a.m.outputErrors.WithLabelValues(typ).Inc()
	}
}

var errOutboxClosed = errors.New("the agent is stopping")

func (o *outbox) post(sig signaling.Signal) error {
	o.mu.Lock()
	sess, closed := o.sess, o.closed
	o.mu.Unlock()
	switch {
	case closed:
		return errOutboxClosed
	case sess == nil:
		return &signaling.Error{Code: signaling.CodeNotConnected, Message: "not connected"}
	}
	return sess.Post(sig)
}

// close stops taking signals and waits up to wait for the relay to have
// processed those posted (the session must still be up).
func (o *outbox) close(wait time.Duration) {
	o.mu.Lock()
	sess := o.sess
	o.closed = true
	o.mu.Unlock()
	if sess == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait) // a shutdown bound: wall clock
	defer cancel()
	if err := sess.Flush(ctx); err != nil {
		o.a.log.Warn("acks may be unsent at shutdown", "waited", wait, "err", err)
	}
}
