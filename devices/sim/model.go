package sim

import (
	"math"
	"time"

	"github.com/teleop/teleop/clock"
	"github.com/teleop/teleop/devices/proto"
)

// device is the robot's state: what a firmware keeps in RAM. Guarded by
// Robot.mu; the reader touches it for the reserved bytes and the rx
// accounting, the model goroutine for everything else.
type device struct {
	opts *Options

	gen     uint64    // boot generation: lines of an older boot are void
	boot    time.Time // t_ms = 0
	powered bool      // false while unplugged
	boots   int

	es          bool // protocol state ES, entered in stream order
	latched     bool // outputs off: set by '!' the moment it is read
	estopUnseen int  // '!' markers the model has not reached yet
	fs          bool // FAILSAFE (under ES)

	lin, ang float64   // applied body setpoint
	vl, vr   float64   // wheel setpoints, m/s
	x, y, th float64   // pose
	bat      float64   // V
	physAt   time.Time // pose and battery integrated up to here

	lseq     uint16    // newest applied setpoint; 0 = none
	wdogLast time.Time // the newest VEL/HB

	cfg     Settings
	outputs map[string]int

	cacheSeq   uint16 // 0 = empty
	cacheReply []byte
	cacheHello bool // the cached command was VER: a replay repeats HELLO

	rxUsed int // bytes in the receive buffer: partial line + lines not yet answered
	ovf    int

	executed, replayed, setpoints, linesDropped uint64
}

func (d *device) state() Mode {
	switch {
	case d.es || d.latched:
		return Estop
	case d.fs:
		return Failsafe
	}
	return Ready
}

func (d *device) ms(now time.Time) uint32 { return uint32(now.Sub(d.boot).Milliseconds()) }

// moving reports a non-zero setpoint: only then does the watchdog run (§8).
func (d *device) moving() bool { return d.vl != 0 || d.vr != 0 }

// integrate moves pose and battery to now at the current wheel speeds.
func (d *device) integrate(now time.Time) {
	dt := now.Sub(d.physAt).Seconds()
	if dt <= 0 {
		return
	}
	d.physAt = now
	v := (d.vl + d.vr) / 2
	w := (d.vr - d.vl) / d.opts.TrackWidth
	if math.Abs(w) < 1e-9 {
		d.x += v * math.Cos(d.th) * dt
		d.y += v * math.Sin(d.th) * dt
	} else {
		th := d.th + w*dt
		d.x += v / w * (math.Sin(th) - math.Sin(d.th))
		d.y -= v / w * (math.Cos(th) - math.Cos(d.th))
		d.th = wrapAngle(th)
	}
	d.bat -= dt * (d.opts.DrainIdle + d.opts.DrainMoving*(math.Abs(d.vl)+math.Abs(d.vr))/2)
	d.bat = max(d.bat, d.opts.BatteryEmpty)
}

// setBody applies a body velocity: clamp to the limits, convert to wheel
// speeds, and scale both wheels down together when one exceeds MaxWheel
// (keeping the curvature).
func (d *device) setBody(now time.Time, lin, ang float64) {
	d.integrate(now)
	lin = math.Max(-d.cfg.MaxLinear, math.Min(d.cfg.MaxLinear, lin))
	ang = math.Max(-d.cfg.MaxAngular, math.Min(d.cfg.MaxAngular, ang))
	half := ang * d.opts.TrackWidth / 2
	l, r := lin-half, lin+half
	if m := math.Max(math.Abs(l), math.Abs(r)); m > d.opts.MaxWheel {
		l, r = l*d.opts.MaxWheel/m, r*d.opts.MaxWheel/m
		lin, ang = (l+r)/2, (r-l)/d.opts.TrackWidth
	}
	d.lin, d.ang, d.vl, d.vr = lin, ang, l, r
}

func (d *device) stop(now time.Time) { d.setBody(now, 0, 0) }

// latch is the '!' byte's immediate half: outputs off, held off.
func (d *device) latch(now time.Time) {
	d.stop(now)
	d.latched = true
}

// enterES is the protocol half of an e-stop; true when the state changed.
func (d *device) enterES(now time.Time) bool {
	d.latch(now)
	if d.es {
		return false
	}
	d.es = true
	return true
}

// refresh is what a valid VEL or HB does to the watchdog.
func (d *device) refresh(now time.Time, seq uint16) {
	d.lseq = seq
	d.wdogLast = now
	d.fs = false
	d.setpoints++
}

func (d *device) wdogDeadline() time.Time {
	return d.wdogLast.Add(time.Duration(d.cfg.WdogMs) * time.Millisecond)
}

// bootLocked reboots the device: power-on state, a new HELLO.
func (r *Robot) bootLocked(why string) {
	now := r.clk.Now()
	o := &r.opts
	r.dev = device{
		opts: o, gen: r.dev.gen + 1, boot: now, powered: true, boots: r.dev.boots + 1,
		bat: r.dev.bat, physAt: now, linesDropped: r.dev.linesDropped,
		cfg:     Settings{WdogMs: o.WdogMs, TLMHz: o.TLMHz, MaxLinear: o.MaxLinear, MaxAngular: o.MaxAngular},
		outputs: make(map[string]int, len(o.Outputs)),
	}
	if r.dev.boots == 1 {
		r.dev.bat = o.BatteryFull
	}
	for _, name := range o.Outputs {
		r.dev.outputs[name] = 0
	}
	// The receive buffer is RAM too: lines not yet run are lost.
	r.rxq = make(chan rxItem, 2*o.RX+16)
	r.emit(proto.AppendHello(make([]byte, 0, proto.MaxDeviceLine), r.hello))
	r.log.Info("boot", "why", why, "boots", r.dev.boots)
}

// unplug and replug run on the model goroutine with r.mu held.
func (r *Robot) unplug(back time.Duration) {
	if r.ep != nil {
		r.reserveLocked() // before the old pty closes: see spare
	}
	r.unplugLocked()
	r.dev.powered = false
	r.dev.integrate(r.clk.Now())
	r.replugAt = time.Time{}
	if back > 0 {
		r.replugAt = r.clk.Now().Add(back)
	}
	// Lines that were waiting for the wire are gone with it.
	for {
		select {
		case <-r.out:
			continue
		case <-r.prio:
			continue
		default:
		}
		break
	}
}

func (r *Robot) replug() error {
	if r.ep != nil {
		return nil
	}
	r.replugAt = time.Time{}
	r.bootLocked("replug")
	if err := r.plugLocked(); err != nil {
		r.dev.powered = false
		r.log.Error("replug", "err", err)
		return err
	}
	return nil
}

type itemKind uint8

const (
	itemLine    itemKind = iota + 1 // a complete command line
	itemTooLong                     // a line over 64 bytes ended: ERR - 7
	itemEstop                       // '!' was here (stream order)
	itemResync                      // 0x18 was here
)

// rxItem is one entry of the receive buffer, in byte-stream order.
type rxItem struct {
	kind itemKind
	gen  uint64
	line []byte
	cost int // rx bytes it holds until answered
}

// rxState is the reader's line assembly, owned by the reader goroutine.
type rxState struct {
	gen  uint64
	line []byte
	long bool     // over the limit: discard through '\n', then ERR - 7
	drop bool     // overflowed: discard through '\n', silently
	last itemKind // the last item pushed, to fold repeated markers
}

func (rx *rxState) discard(d *device) {
	d.rxUsed -= len(rx.line)
	rx.line = rx.line[:0]
	rx.long, rx.drop = false, false
}

// receive is the receive interrupt: reserved bytes act at once; other bytes
// go to the line being assembled, within the rx-byte buffer.
func (r *Robot) receive(rx *rxState, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := &r.dev
	if !d.powered {
		return
	}
	if rx.gen != d.gen { // rebooted: the partial line was in RAM
		rx.gen, rx.line, rx.long, rx.drop, rx.last = d.gen, rx.line[:0], false, false, 0
	}
	rxMax := r.opts.RX
	for _, c := range data {
		switch c {
		case proto.ByteEstop:
			d.latch(r.clk.Now())
			rx.discard(d)
			if rx.last != itemEstop && r.push(rx, rxItem{kind: itemEstop}) {
				d.estopUnseen++
			}
		case proto.ByteResync:
			rx.discard(d)
			if rx.last != itemResync {
				r.push(rx, rxItem{kind: itemResync})
			}
		case proto.ByteTelemetry:
			select {
			case r.prio <- r.tlmLocked():
			default:
				d.linesDropped++
			}
		case '\r':
		case '\n':
			switch {
			case rx.drop:
				rx.drop = false
			case rx.long:
				rx.long = false
				if d.rxUsed >= rxMax || !r.push(rx, rxItem{kind: itemTooLong, cost: 1}) {
					r.overflowLocked()
				} else {
					d.rxUsed++
				}
			case len(rx.line) > 0:
				it := rxItem{kind: itemLine, line: append([]byte(nil), rx.line...), cost: len(rx.line) + 1}
				if d.rxUsed >= rxMax || !r.push(rx, it) {
					rx.discard(d)
					r.overflowLocked()
				} else {
					d.rxUsed++
				}
			}
			rx.line = rx.line[:0]
		default:
			switch {
			case rx.drop || rx.long:
			case d.rxUsed >= rxMax:
				rx.discard(d)
				rx.drop = true
				r.overflowLocked()
			case len(rx.line) >= proto.MaxCommandLine-1:
				rx.discard(d)
				rx.long = true
			default:
				rx.line = append(rx.line, c)
				d.rxUsed++
			}
		}
	}
}

func (r *Robot) push(rx *rxState, it rxItem) bool {
	it.gen = r.dev.gen
	select {
	case r.rxq <- it:
		rx.last = it.kind
		return true
	default:
		return false
	}
}

func (r *Robot) overflowLocked() {
	r.dev.ovf++
	r.emit(proto.AppendEvt(make([]byte, 0, 32), "OVERFLOW"))
}

// tlmLocked builds a TLM line for now.
func (r *Robot) tlmLocked() []byte {
	d := &r.dev
	now := r.clk.Now()
	d.integrate(now)
	args := [...]proto.Arg{
		proto.KV("st", proto.Word(d.state().String())),
		proto.KV("vl", proto.Float(d.vl, 3)),
		proto.KV("vr", proto.Float(d.vr, 3)),
		proto.KV("lseq", proto.Int(int(d.lseq))),
		proto.KV("bat", proto.Float(d.bat, 2)),
		proto.KV("x", proto.Float(d.x, 3)),
		proto.KV("y", proto.Float(d.y, 3)),
		proto.KV("th", proto.Float(d.th, 3)),
		proto.KV("ovf", proto.Int(d.ovf)),
	}
	n := len(args)
	if d.ovf == 0 {
		n--
	}
	return proto.AppendTLM(make([]byte, 0, proto.MaxDeviceLine), d.ms(now), args[:n]...)
}

// model is the firmware's main loop: it owns the timers and runs the lines.
type model struct {
	r   *Robot
	cmd proto.Command

	rxq <-chan rxItem

	tlm      clock.Ticker
	tlmHz    int
	tlmGen   uint64
	wdog     clock.Timer
	wdogAt   time.Time
	busy     *rxItem // a line waiting out the reply delay
	busyT    clock.Timer
	replug   clock.Timer
	replugAt time.Time
}

func newModel(r *Robot) *model { return &model{r: r, cmd: proto.Command{Args: make([][]byte, 0, 16)}} }

func timerC(t clock.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C()
}

func (m *model) run() {
	r := m.r
	r.mu.Lock()
	m.sync()
	r.mu.Unlock()
	defer m.shutdown()
	for {
		var rxq <-chan rxItem
		if m.busy == nil {
			rxq = m.rxq
		}
		var tlmC <-chan time.Time
		if m.tlm != nil {
			tlmC = m.tlm.C()
		}
		select {
		case <-r.quit:
			return
		case fn := <-r.reqs:
			m.lock()
			fn()
		case it := <-rxq:
			m.lock()
			m.take(it)
		case <-timerC(m.busyT):
			m.lock()
			it := m.busy
			m.busy, m.busyT = nil, nil
			if it.gen == r.dev.gen && r.dev.powered {
				m.exec(it)
			}
		case <-tlmC:
			m.lock()
			if r.dev.powered {
				r.emit(r.tlmLocked())
			}
		case <-timerC(m.wdog):
			m.lock()
			m.watchdog()
		case <-timerC(m.replug):
			m.lock()
			m.replug = nil
			if !r.replugAt.IsZero() && !r.clk.Now().Before(r.replugAt) {
				r.replug()
			}
		}
		m.sync()
		m.unlock()
	}
}

// lock starts handling an event: r.mu held, lines held back.
func (m *model) lock() {
	m.r.mu.Lock()
	m.r.batching = true
}

// unlock sends the event's lines, now that the timers are set, and lets go.
func (m *model) unlock() {
	r := m.r
	for _, l := range r.batch {
		r.send(l)
	}
	clear(r.batch)
	r.batch, r.batching = r.batch[:0], false
	r.mu.Unlock()
}

func (m *model) shutdown() {
	r := m.r
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unplugLocked()
	r.dropSpareLocked()
	r.dev.powered = false
	r.replugAt = time.Time{}
	m.sync()
}

// sync makes the timers match the device state. Called with r.mu held after
// every event.
func (m *model) sync() {
	r, d := m.r, &m.r.dev
	m.rxq = r.rxq
	if m.busy != nil && (m.busy.gen != d.gen || !d.powered) {
		m.busyT.Stop()
		m.busy, m.busyT = nil, nil
	}

	hz := d.cfg.TLMHz
	if !d.powered {
		hz = 0
	}
	if hz != m.tlmHz || d.gen != m.tlmGen {
		if m.tlm != nil {
			m.tlm.Stop()
			m.tlm = nil
		}
		if hz > 0 {
			m.tlm = r.clk.NewTicker(time.Second / time.Duration(hz))
		}
		m.tlmHz, m.tlmGen = hz, d.gen
	}

	var at time.Time
	if d.powered && d.moving() && d.state() == Ready {
		at = d.wdogDeadline()
	}
	if !at.Equal(m.wdogAt) {
		m.wdogAt = at
		switch {
		case at.IsZero():
			if m.wdog != nil {
				m.wdog.Stop()
			}
		case m.wdog == nil:
			m.wdog = r.clk.NewTimer(at.Sub(r.clk.Now()))
		default:
			m.wdog.Reset(at.Sub(r.clk.Now()))
		}
	}

	if !r.replugAt.Equal(m.replugAt) {
		m.replugAt = r.replugAt
		if m.replug != nil {
			m.replug.Stop()
			m.replug = nil
		}
		if !r.replugAt.IsZero() {
			m.replug = r.clk.NewTimer(r.replugAt.Sub(r.clk.Now()))
		}
	}
}

// watchdog runs when the watchdog timer fires (possibly late or stale).
func (m *model) watchdog() {
	r, d := m.r, &m.r.dev
	now := r.clk.Now()
	if !d.powered || !d.moving() || d.state() != Ready || now.Before(d.wdogDeadline()) {
		m.wdogAt = time.Time{} // re-arm in sync if still due later
		return
	}
	d.stop(now)
	d.fs = true
	r.emit(proto.AppendEvt(make([]byte, 0, 16), "WDOG"))
}

// take handles the next receive-buffer entry.
func (m *model) take(it rxItem) {
	r, d := m.r, &m.r.dev
	if it.gen != d.gen || !d.powered {
		return
	}
	switch it.kind {
	case itemEstop:
		d.estopUnseen--
		if d.enterES(r.clk.Now()) {
			r.emit(proto.AppendEvt(make([]byte, 0, 32), "ESTOP", proto.KV("src", proto.Word("byte"))))
		}
	case itemResync:
		d.cacheSeq, d.cacheReply, d.cacheHello = 0, nil, false
		d.lseq = 0
	case itemTooLong:
		d.rxUsed -= it.cost
		r.emit(proto.AppendErr(make([]byte, 0, 32), 0, false, proto.CodeTooLong, "toolong"))
	case itemLine:
		if delay := r.faults.replyDelay(); delay > 0 {
			m.busy = &it
			m.busyT = r.clk.NewTimer(delay)
			return
		}
		m.exec(&it)
	}
}

// exec runs one command line and frees its rx bytes.
func (m *model) exec(it *rxItem) {
	r, d := m.r, &m.r.dev
	d.rxUsed -= it.cost
	c := &m.cmd
	if err := proto.ParseCommand(it.line, c, d.cfg.Strict); err != nil {
		r.emit(err.(*proto.ProtoError).Reply(make([]byte, 0, 40)))
		return
	}
	switch string(c.Verb) {
	case "VEL":
		r.emit(r.vel(c))
		return
	case "HB":
		r.emit(r.hb(c))
		return
	}
	// One-shot: a resend of the last one is answered, not run again (§7.2).
	if d.cacheSeq != 0 && c.Seq == d.cacheSeq {
		if d.cacheHello {
			r.emit(proto.AppendHello(make([]byte, 0, proto.MaxDeviceLine), r.hello))
		}
		r.emit(d.cacheReply)
		d.replayed++
		return
	}
	d.cacheHello = false
	reply := r.oneShot(c)
	d.executed++
	d.cacheSeq, d.cacheReply = c.Seq, reply
	r.emit(reply)
	if string(c.Verb) == "RESET" {
		r.bootLocked("RESET")
	}
}
