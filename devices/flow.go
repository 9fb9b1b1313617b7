package devices

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/teleop/teleop/clock"
	"github.com/teleop/teleop/devices/proto"
)

// conn is one open port and its reader and writer goroutines. The
// supervisor owns it: it starts both goroutines, and on the way down closes
// the port and waits for them.
type conn struct {
	port  *Port
	kick  chan struct{} // cap 1: there may be something to write
	down  chan struct{} // closed by fail
	hello chan struct{} // cap 1: a HELLO arrived (the boot wait listens)
	reset chan struct{} // cap 1: an unexpected HELLO: the device rebooted
	once  sync.Once
	err   error // why the link failed; written before down is closed
	wg    sync.WaitGroup
}

func newConn(p *Port) *conn {
	return &conn{
		port:  p,
		kick:  make(chan struct{}, 1),
		down:  make(chan struct{}),
		hello: make(chan struct{}, 1),
		reset: make(chan struct{}, 1),
	}
}

// fail marks the link failed (the first reason wins). It does not block:
// the supervisor sees down, closes the port and reconnects.
func (c *conn) fail(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.down)
	})
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

type reqKind uint8

const (
	kindOneShot reqKind = iota
	kindSetpoint
)

// request is one command on its way through the queues. Fields are guarded
// by Device.mu, except done, which is written once.
type request struct {
	kind      reqKind
	internal  bool // the supervisor's own (handshake, final STOP): allowed before ready and while closing
	cmd       Command
	line      []byte // the bytes written: encoded with its seq at the first send (raw: Line + "\n")
	seq       uint16
	order     uint64 // submission order
	sendIdx   uint64 // transmission order of the latest send
	sent      bool
	tries     int
	maxTries  int
	timeout   time.Duration
	sentAt    time.Time // latest transmission
	bytes     int       // counted in Device.inflight while pending
	timer     clock.Timer
	gen       int  // timer generation: a stale expiry is ignored
	resend    bool // the writer should transmit it again, same seq
	abandoned bool // the caller is gone: no more resends
	finished  bool
	done      chan outcome // cap 1, written once by finishLocked
}

type outcome struct {
	res Result
	err error
}

// newRequest validates cmd: a command that cannot be encoded (bad verb,
// NaN, too long, a control character in a raw line) fails here and never
// reaches the queue.
func (d *Device) newRequest(kind reqKind, cmd Command) (*request, error) {
	if d.raw {
		if cmd.Verb != "" || cmd.Args != nil {
			return nil, fmt.Errorf("%w: raw protocol takes a Line, not a verb", ErrWrongKind)
		}
		if err := checkRawLine(cmd.Line, d.cfg.Raw.MaxLine); err != nil {
			return nil, fmt.Errorf("raw command %q: %w", cmd.Line, err)
		}
	} else {
		if cmd.Line != "" {
			return nil, fmt.Errorf("%w: teleop/1 takes a verb, not a raw Line", ErrWrongKind)
		}
		// The longest seq is 5 digits: a command that fits with it fits always.
		if _, err := proto.AppendCommand(nil, 65535, cmd.Verb, cmd.Args...); err != nil {
			return nil, fmt.Errorf("command %s: %w", cmd.Verb, err)
		}
	}
	r := &request{kind: kind, cmd: cmd, maxTries: 1, timeout: d.cfg.CommandTimeout, done: make(chan outcome, 1)}
	if cmd.Timeout > 0 {
		r.timeout = cmd.Timeout
	}
	if kind == kindOneShot && !d.raw {
		r.maxTries = 1 + d.cfg.Retries
	}
	if d.raw {
		r.line = []byte(cmd.Line + "\n")
	}
	return r, nil
}

// submit queues r and waits for its outcome.
func (d *Device) submit(ctx context.Context, r *request) (Result, error) {
	if err := d.enqueue(r); err != nil {
		return Result{}, err
	}
	return d.await(ctx, r, nil, nil)
}

func (d *Device) enqueue(r *request) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.closed && !r.internal:
		return ErrClosed
	case !d.ready && !r.internal:
		return fmt.Errorf("%w: %s", ErrNotReady, d.state)
	case r.kind == kindSetpoint && d.latched:
		return ErrEStopped
	}
	d.order++
	r.order = d.order
	if r.kind == kindSetpoint {
		if old := d.setpoint; old != nil {
			d.finishLocked(old, outcome{res: Result{Status: StatusSuperseded}})
		}
		d.setpoint = r
	} else {
		d.oneshots = append(d.oneshots, r)
	}
	d.kickLocked()
	return nil
}

// await waits for r's outcome, or for ctx or stop to end the wait with the
// error given (stopErr, or ctx's). A request that was never sent is taken
// out of the queue; one in flight stays pending for flow control until its
// reply or timeout, but is no longer resent.
func (d *Device) await(ctx context.Context, r *request, stop <-chan struct{}, stopErr func() error) (Result, error) {
	var err error
	select {
	case o := <-r.done:
		return o.res, o.err
	case <-ctx.Done():
		err = ctx.Err()
	case <-stop:
		err = stopErr()
	}
	d.mu.Lock()
	if !r.finished {
		if r.sent {
			r.abandoned = true
		} else {
			d.finishLocked(r, outcome{err: err})
		}
	}
	d.mu.Unlock()
	select {
	case o := <-r.done:
		if o.err == nil {
			return o.res, nil // it finished after all
		}
	default:
	}
	return Result{Seq: r.seq, Tries: r.tries}, err
}

func (d *Device) kickLocked() {
	if d.conn != nil {
		signal(d.conn.kick)
	}
}

// finishLocked completes r once: it leaves every queue, frees its window
// bytes and its timer, and its caller gets o.
func (d *Device) finishLocked(r *request, o outcome) {
	if r.finished {
		return
	}
	r.finished = true
	if r.timer != nil {
		r.timer.Stop()
	}
	if r.sent && !d.raw && d.pending[r.seq] == r {
		delete(d.pending, r.seq)
		d.inflight -= r.bytes
	}
	switch {
	case d.oneshot == r:
		d.oneshot = nil
	case d.setpoint == r:
		d.setpoint = nil
	case d.rawOut == r:
		d.rawOut = nil
	}
	if i := slices.Index(d.oneshots, r); i >= 0 {
		d.oneshots = slices.Delete(d.oneshots, i, i+1)
	}
	if o.err == nil {
		if o.res.Seq == 0 {
			o.res.Seq = r.seq
		}
		if o.res.Tries == 0 {
			o.res.Tries = r.tries
		}
	}
	r.done <- o
	d.kickLocked() // a slot or window bytes may have freed up
}

// failAllLocked fails every queued and in-flight command with err.
func (d *Device) failAllLocked(err error) {
	var all []*request
	all = append(all, d.oneshots...)
	for _, r := range d.pending {
		all = append(all, r)
	}
	for _, r := range []*request{d.oneshot, d.setpoint, d.rawOut} {
		if r != nil {
			all = append(all, r)
		}
	}
	for _, r := range all {
		d.finishLocked(r, outcome{err: err})
	}
	d.ctrl = nil
}

// window is the device's receive buffer (§7.1).
func (d *Device) windowLocked() int {
	if d.helloGen > 0 {
		return d.hello.RX
	}
	return proto.MaxCommandLine
}

// nextLocked picks what the writer sends next: realtime bytes first, then a
// one-shot resend, then the earliest submitted of the waiting one-shot (if
// none is in flight) and the waiting setpoint, when the device's receive
// buffer has room. It marks the request sent and arms its timer before the
// write. sentNow is a raw command without reply patterns, which completes
// as StatusSent once written.
func (d *Device) nextLocked(c *conn) (b []byte, sentNow *request) {
	if d.conn != c {
		return nil, nil
	}
	if len(d.ctrl) > 0 {
		b = d.ctrl[0]
		d.ctrl = d.ctrl[1:]
		return b, nil
	}
	if r := d.oneshot; r != nil && r.resend {
		r.resend = false
		d.transmitLocked(c, r)
		return r.line, nil
	}
	var r *request
	if d.oneshot == nil && len(d.oneshots) > 0 {
		r = d.oneshots[0]
	}
	if sp := d.setpoint; sp != nil && (r == nil || sp.order < r.order) {
		r = sp
	}
	if r == nil {
		return nil, nil
	}

	if d.raw {
		if d.rawOK != nil && d.rawOut != nil {
			return nil, nil // one command at a time waits for its reply line
		}
		d.takeLocked(r)
		if d.rawOK == nil {
			r.sent, r.tries = true, 1
			return r.line, r
		}
		d.rawOut = r
		d.transmitLocked(c, r)
		return r.line, nil
	}

	seq := d.nextSeqLocked()
	line, err := proto.AppendCommand(nil, seq, r.cmd.Verb, r.cmd.Args...)
	if err != nil { // validated in newRequest; cannot happen
		d.finishLocked(r, outcome{err: fmt.Errorf("command %s: %w", r.cmd.Verb, err)})
		return d.nextLocked(c)
	}
	if d.inflight > 0 && d.inflight+len(line) > d.windowLocked() {
		return nil, nil // wait for replies to free the device's buffer
	}
	d.takeLocked(r)
	d.seq = seq
	r.seq, r.line, r.bytes = seq, line, len(line)
	d.pending[seq] = r
	d.inflight += r.bytes
	if r.kind == kindOneShot {
		d.oneshot = r
	}
	d.transmitLocked(c, r)
	return r.line, nil
}

// takeLocked removes r from the waiting queues.
func (d *Device) takeLocked(r *request) {
	if d.setpoint == r {
		d.setpoint = nil
	} else if i := slices.Index(d.oneshots, r); i >= 0 {
		d.oneshots = slices.Delete(d.oneshots, i, i+1)
	}
}

// nextSeqLocked is the seq after the last one sent, skipping any still
// pending (a reply to it would be ambiguous).
func (d *Device) nextSeqLocked() uint16 {
	s := proto.NextSeq(d.seq)
	for d.pending[s] != nil {
		s = proto.NextSeq(s)
	}
	return s
}

// transmitLocked records a (re)transmission of r and arms its reply timer.
func (d *Device) transmitLocked(c *conn, r *request) {
	r.sent = true
	r.tries++
	d.sendIdx++
	r.sendIdx = d.sendIdx
	r.sentAt = d.clk.Now()
	if r.timer != nil {
		r.timer.Stop()
	}
	r.gen++
	gen := r.gen
	r.timer = d.clk.AfterFunc(r.timeout, func() { d.expire(c, r, gen) })
}

// expire runs when r's reply is overdue: a one-shot is resent with the same
// seq while tries remain; anything else times out.
func (d *Device) expire(c *conn, r *request, gen int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if r.finished || r.gen != gen || d.conn != c {
		return
	}
	if r.kind == kindOneShot && !d.raw && r.tries < r.maxTries && !r.abandoned {
		d.log.Warn("no reply; resending with the same seq", "seq", r.seq, "cmd", r.cmd.String(),
			"after", r.timeout, "try", r.tries+1, "of", r.maxTries)
		r.resend = true
		d.kickLocked()
		return
	}
	d.log.Warn("no reply; giving up", "seq", r.seq, "cmd", r.cmd.String(), "tries", r.tries, "timeout", r.timeout)
	d.finishLocked(r, outcome{res: Result{Status: StatusTimeout}})
	// A device that sends telemetry but answers no command (its receive
	// side is stuck) is not silent, but it is not a link either.
	if !d.raw {
		if d.unanswered++; d.unanswered >= maxUnanswered {
			err := fmt.Errorf("device answered none of the last %d commands", d.unanswered)
			d.log.Error("link failed: commands unanswered", "count", d.unanswered)
			c.fail(err)
		}
	}
}

// maxUnanswered commands timing out in a row fail the link.
const maxUnanswered = 3

// writeLoop is the connection's one writer. It ends when the link fails.
func (d *Device) writeLoop(c *conn) {
	defer c.wg.Done()
	for {
		select {
		case <-c.kick:
		case <-c.down:
			return
		}
		for {
			var sentNow *request
			b, err := c.port.WriteNext(func() (b []byte) {
				d.mu.Lock()
				defer d.mu.Unlock()
				b, sentNow = d.nextLocked(c)
				return b
			})
			if b == nil {
				break
			}
			if err != nil {
				if !errors.Is(err, ErrPortClosed) {
					d.log.Error("link failed: write", "err", err)
				}
				c.fail(err)
				if sentNow != nil { // in no queue: the teardown would not find it
					d.mu.Lock()
					d.finishLocked(sentNow, outcome{err: fmt.Errorf("%w: %v", ErrLinkDown, err)})
					d.mu.Unlock()
				}
				return
			}
			if sentNow != nil {
				d.mu.Lock()
				d.finishLocked(sentNow, outcome{res: Result{Status: StatusSent}})
				d.mu.Unlock()
			}
		}
	}
}

// readLoop is the connection's one reader. It ends when the port does.
func (d *Device) readLoop(c *conn) {
	defer c.wg.Done()
	for {
		line, err := c.port.ReadLine()
		if err != nil {
			var tl *LineTooLongError
			if errors.As(err, &tl) {
				d.badLine("discarded an over-long line", tl.Len, tl)
				continue
			}
			// ErrPortClosed: closed by the teardown, or by a stalled write,
			// whose own error the writer reports.
			if !errors.Is(err, ErrPortClosed) {
				d.log.Error("link failed: read", "err", err)
				c.fail(err)
			}
			return
		}
		d.handleLine(c, line)
	}
}

// badLine logs a line the host could not use, at most once a second (a
// device spewing garbage must not flood the log), with a count of those
// not logged.
func (d *Device) badLine(msg string, n int, err error) {
	now := d.clk.Now()
	if !d.badLast.IsZero() && now.Sub(d.badLast) < time.Second {
		d.badN++
		return
	}
	args := []any{"len", n, "err", err}
	if d.badN > 0 {
		args = append(args, "not_logged", d.badN)
	}
	d.log.Warn(msg, args...)
	d.badLast, d.badN = now, 0
}

// handleLine acts on one device line. Runs on the reader goroutine.
func (d *Device) handleLine(c *conn, line []byte) {
	if d.opts.OnLine != nil {
		d.opts.OnLine(string(line))
	}
	if len(line) == 0 {
		return
	}
	now := d.clk.Now()
	if d.raw {
		d.handleRawLine(c, line, now)
		return
	}
	d.mu.Lock()
	strict := d.strictRx
	d.mu.Unlock()
	dl := &d.dl
	if err := proto.ParseDeviceLine(line, dl, strict); err != nil {
		d.badLine("ignored a bad line from the device", len(line), fmt.Errorf("%w: %q", err, line))
		return
	}

	var tlm *Telemetry
	var evt *Event
	d.mu.Lock()
	if d.conn != c {
		d.mu.Unlock()
		return
	}
	d.lastRx = now
	switch dl.Kind {
	case proto.KindOK, proto.KindErr:
		d.replyLocked(dl, now)
	case proto.KindHello:
		d.helloLocked(c, dl)
	case proto.KindTLM:
		t := Telemetry{TimeMs: dl.TimeMs, Fields: fieldMap(dl.Fields), Received: now}
		t.State = t.Fields["st"]
		d.deviceStateLocked(t.State)
		tlm = &t
	case proto.KindEvt:
		e := Event{Name: string(dl.Name), Fields: fieldMap(dl.Fields), Received: now}
		d.eventLocked(e)
		evt = &e
	case proto.KindComment:
		d.log.Info("device says: " + string(dl.Text))
	}
	d.mu.Unlock()
	d.notify()
	if tlm != nil && d.opts.OnTelemetry != nil {
		d.opts.OnTelemetry(*tlm)
	}
	if evt != nil && d.opts.OnEvent != nil {
		d.opts.OnEvent(*evt)
	}
}

// replyLocked matches an OK/ERR to its command.
func (d *Device) replyLocked(dl *proto.DeviceLine, now time.Time) {
	var r *request
	if dl.Kind == proto.KindErr && dl.NoSeq {
		// "ERR -": the device could not read the seq. Replies come in order,
		// so it answers our oldest command, but only when that is certain.
		if len(d.pending) != 1 {
			d.log.Warn("error reply without a seq matches no single command", "code", dl.Code, "text", string(dl.Text), "pending", len(d.pending))
			return
		}
		for _, p := range d.pending {
			r = p
		}
	} else if r = d.pending[dl.Seq]; r == nil {
		d.log.Warn("reply for an unknown seq (late, or not ours)", "seq", dl.Seq, "reply", dl.Kind.String())
		return
	}
	// Replies come in the order the device read the lines: a setpoint sent
	// before r and still unanswered was lost and will never be answered.
	for _, p := range d.pending {
		if p != r && p.kind == kindSetpoint && p.sendIdx < r.sendIdx {
			d.log.Debug("setpoint lost (a later command was answered)", "seq", p.seq)
			d.finishLocked(p, outcome{res: Result{Status: StatusTimeout, Text: "lost: a later command was answered"}})
		}
	}
	d.unanswered = 0
	res := Result{Seq: r.seq, Tries: r.tries, RTT: now.Sub(r.sentAt)}
	if dl.Kind == proto.KindOK {
		res.Status = StatusOK
		res.Fields = fieldMap(dl.Fields)
		switch r.cmd.Verb {
		case "CLEAR":
			d.latched = false
			if d.ready {
				d.state = StateReady
			}
		case "ESTOP":
			d.latchLocked()
		case "VEL", "HB":
			if d.state == StateFailsafe {
				d.state = StateReady // a setpoint leaves FAILSAFE (§8)
			}
		}
		d.finishLocked(r, outcome{res: res})
		return
	}
	code := dl.ErrorCode()
	if code.Retry() == proto.RetryResend && r.kind == kindOneShot && r.tries < r.maxTries && !r.abandoned {
		d.log.Warn("device reports a bad checksum; resending with the same seq", "seq", r.seq, "cmd", r.cmd.String(), "try", r.tries+1, "of", r.maxTries)
		r.resend = true
		d.kickLocked()
		return
	}
	res.Status, res.Code, res.Text = StatusError, code, string(dl.Text)
	if code == proto.CodeEstop {
		d.latchLocked()
	}
	d.log.Debug("device error", "seq", r.seq, "cmd", r.cmd.String(), "code", int(code), "text", res.Text)
	d.finishLocked(r, outcome{res: res})
}

// helloLocked handles a banner: the answer to VER or the boot banner while
// handshaking; at any other time the device rebooted (§6.6).
func (d *Device) helloLocked(c *conn, dl *proto.DeviceLine) {
	h, err := proto.ParseHello(dl)
	if err != nil {
		d.log.Warn("ignored a bad HELLO", "err", err)
		return
	}
	d.hello = h
	d.helloGen++
	signal(c.hello)
	asked := d.oneshot != nil && d.oneshot.cmd.Verb == "VER"
	if !d.ready || asked {
		return
	}
	d.log.Warn("device reset: unexpected HELLO; failing pending commands and handshaking again", "fw", h.FW)
	d.ready, d.strictRx = false, false
	d.failAllLocked(ErrDeviceReset)
	d.state = StateConnecting
	signal(c.reset)
}

// deviceStateLocked follows the device's own state (TLM st). Only an
// explicit CLEAR releases the host's latch: a RDY that was on the wire
// before our '!' arrived must not.
func (d *Device) deviceStateLocked(st string) {
	switch st {
	case "ES":
		d.latchLocked()
	case "FS":
		if d.ready && !d.latched && d.state != StateFailsafe {
			d.log.Warn("device in failsafe (its watchdog expired)")
			d.state = StateFailsafe
		}
	case "RDY":
		if d.ready && !d.latched {
			d.state = StateReady
		}
	}
}

func (d *Device) eventLocked(e Event) {
	switch e.Name {
	case "ESTOP":
		d.log.Warn("device reports e-stop", "src", e.Fields["src"])
		d.latchLocked()
	case "CLEARED":
		d.log.Info("device reports e-stop/failsafe cleared")
		d.latched = false
		if d.ready {
			d.state = StateReady
		}
	case "WDOG":
		d.log.Warn("device watchdog expired: outputs safe, failsafe")
		if d.ready && !d.latched {
			d.state = StateFailsafe
		}
	case "OVERFLOW":
		d.log.Warn("device receive buffer overflowed: bytes lost")
	case "FAULT":
		d.log.Warn("device fault", "code", e.Fields["code"])
	default:
		d.log.Info("device event", "name", e.Name)
	}
}

// latchLocked records an e-stop the device reports: it stays in force (and
// is re-sent after a reconnect or reboot) until the device confirms CLEAR.
func (d *Device) latchLocked() {
	d.latched = true
	if sp := d.setpoint; sp != nil {
		d.finishLocked(sp, outcome{res: Result{Status: StatusSuperseded}})
	}
	if d.ready {
		d.state = StateEStopped
	}
}

// handleRawLine matches a raw device's line against the reply patterns.
func (d *Device) handleRawLine(c *conn, line []byte, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn != c {
		return
	}
	d.lastRx = now
	r := d.rawOut
	if r == nil || d.rawOK == nil {
		d.log.Debug("line from device", "line", string(line))
		return
	}
	res := Result{Text: string(line), Tries: r.tries, RTT: now.Sub(r.sentAt)}
	switch {
	case d.rawOK.Match(line):
		res.Status = StatusOK
	case d.rawER != nil && d.rawER.Match(line):
		res.Status = StatusError
	default:
		d.log.Debug("line from device matches no reply pattern", "line", string(line))
		return
	}
	d.finishLocked(r, outcome{res: res})
}

func fieldMap(fs []proto.Field) map[string]string {
	if len(fs) == 0 {
		return nil
	}
	m := make(map[string]string, len(fs))
	for _, f := range fs {
		m[string(f.Key)] = string(f.Value)
	}
	return m
}
