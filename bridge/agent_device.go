package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/teleop/teleop/clock"
	"github.com/teleop/teleop/devices"
	"github.com/teleop/teleop/devices/proto"
)

// agentDevice is the agent's side of one device: its worker, its newest-
// wins setpoint slot, its deadman, and what status reports about it.
//
// Goroutines: run (the worker) is the only code that submits setpoints,
// stops and clears to the device, one at a time, so their order on the
// wire is the order the agent decided; runOneshots submits one-shot
// commands (FIFO, retried by the device layer) so that a slow one never
// holds up motion or a stop. The e-stop alone bypasses both: Agent.estop
// calls Device.EStop at once, from its own goroutine.
//
// The dispatcher (the session's handler goroutine) only puts work here,
// under mu, and never waits for the device.
type agentDevice struct {
	a    *Agent
	name string
	cfg  *Device
	log  *slog.Logger

	wake chan struct{} // cap 1: the worker has something to do
	oneq chan *job     // one-shot commands, FIFO; guarded by mu for sends

	mu sync.Mutex // guards everything below

	dev       *devices.Device // nil until Run opens it
	closed    bool            // shutting down: nothing new is taken
	state     devices.State
	everReady bool
	fw        string
	lastErr   string
	trips     int

	latched  bool   // the e-stop is latched here: setpoints and one-shots are refused
	latchBy  string // who latched it: a connection ID, "api", or "device"
	latchGen uint64 // counts latches; a clear releases only the latch it was sent for

	slot      *job               // the newest setpoint waiting for the worker
	ctl       []ctlOp            // stops and clears waiting for the worker, before the slot
	curCancel context.CancelFunc // cancels the setpoint the worker is submitting
	curWhy    outcome            // why it was cancelled
	needStop  bool               // the link was down: STOP before any setpoint
	stopTried bool               // that STOP was tried since the device got ready
	deadman   clock.Timer        // armed by each accepted setpoint
	dmGen     uint64             // invalidates a deadman that fired as it was re-armed
	dmArmed   bool               // a setpoint's deadman is running
	tlm       throttle           // telemetry pacing
}

// ctlOp is a stop or a clear for the worker.
type ctlOp struct {
	kind     Kind    // KindStop or KindClear
	fan      *fanout // the signal's ack; nil for the agent's own stops
	why      string  // the agent's own stops: deadman, session lost, lease ended, shutdown, device ready
	latchGen uint64  // clear: the latch it may release
}

const oneshotQueue = 32

func newAgentDevice(a *Agent, cfg *Device) *agentDevice {
	d := &agentDevice{
		a:        a,
		name:     cfg.Name,
		cfg:      cfg,
		log:      a.log.With("device", cfg.Name),
		wake:     make(chan struct{}, 1),
		oneq:     make(chan *job, oneshotQueue),
		state:    devices.StateClosed,
		needStop: true, // the robot may be moving from before the agent started
		tlm:      throttle{interval: a.cfg.Outputs.TelemetryInterval.D()},
	}
	return d
}

// DevicesConfig is the device layer's configuration for cfg, as the agent
// opens it (`teleop agent --check` opens devices the same way).
func (cfg *Device) DevicesConfig() devices.Config {
	dc := devices.Config{
		Name: cfg.Name,
		Port: cfg.PortSpec(),
		Baud: cfg.Baud,
	}
	if cfg.ReplyTimeout != nil {
		dc.CommandTimeout = cfg.ReplyTimeout.D()
	}
	switch cfg.Protocol {
	case ProtoRaw:
		dc.Protocol = devices.ProtocolRaw
		dc.Raw = devices.RawConfig{OK: cfg.OKPattern, Error: cfg.ErrPattern, Stop: cfg.StopLine,
			EStop: cfg.EstopLine, Clear: cfg.ClearLine, MaxLine: cfg.MaxLine}
	default:
		dc.Protocol = devices.ProtocolTeleop
		for _, s := range cfg.Settings {
			switch s.Key {
			case "wdog_ms":
				dc.WatchdogMs, _ = strconv.Atoi(s.Value) // validated
			case "tlm_hz":
				hz, _ := strconv.Atoi(s.Value)
				dc.TelemetryHz = &hz
			default:
				if dc.Settings == nil {
					dc.Settings = map[string]string{}
				}
				dc.Settings[s.Key] = s.Value
			}
		}
	}
	return dc
}

// deviceCommand is the device layer's command for a mapped line body.
func deviceCommand(p Protocol, text string) devices.Command {
	if p == ProtoRaw {
		return devices.RawCmd(text)
	}
	verb, rest, _ := strings.Cut(text, " ")
	var args []proto.Arg
	for rest != "" {
		var w string
		w, rest, _ = strings.Cut(rest, " ")
		args = append(args, proto.Word(w)) // checkLine made every argument a valid word
	}
	return devices.Cmd(verb, args...)
}

// open opens the device; its callbacks run on the device's goroutines.
// safety.stop_on_shutdown decides whether the device's Close, at the end
// of Run, stops the robot.
func (d *agentDevice) open(ctx context.Context) error {
	dc := d.cfg.DevicesConfig()
	stop := d.a.cfg.Safety.StopOnShutdown == nil || *d.a.cfg.Safety.StopOnShutdown // unset: stop
	dc.StopOnClose = &stop
	opts := devices.Options{Logger: d.a.baseLog, Clock: d.a.clk}
	if d.a.opts.Device != nil {
		d.a.opts.Device(d.name, &dc, &opts)
	}
	opts.OnState = d.onState
	opts.OnEvent = d.onEvent
	opts.OnTelemetry = d.onTelemetry
	dev, err := devices.Open(ctx, dc, &opts)
	if err != nil {
		return fmt.Errorf("device %s: %w", d.name, err)
	}
	d.mu.Lock()
	d.dev = dev
	d.mu.Unlock()
	return nil
}

func (d *agentDevice) device() *devices.Device {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dev
}

func (d *agentDevice) kick() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// ---- the dispatcher's side: put work, never wait ----

// putSetpoint hands j to the worker, newest wins: a setpoint still waiting
// is superseded. It arms the deadman.
func (d *agentDevice) putSetpoint(j *job, deadman time.Duration) {
	d.mu.Lock()
	switch {
	case d.closed:
		d.mu.Unlock()
		d.a.finish(j, rejected(CodeShutdown, "agent stopping"))
		return
	case d.latched:
		d.mu.Unlock()
		d.a.finish(j, rejected(CodeEstopLatched, "e-stop latched on "+d.name+": clear it first"))
		return
	case !d.state.Up():
		st := d.state
		d.mu.Unlock()
		d.a.finish(j, rejected(CodeNotReady, fmt.Sprintf("device %s is %s", d.name, st)))
		return
	}
	old := d.slot
	d.slot = j
	if deadman > 0 {
		d.armDeadmanLocked(deadman)
	}
	d.mu.Unlock()
	d.kick()
	if old != nil {
		d.a.finish(old, outcome{status: AckSuperseded, code: "superseded", reason: "a newer setpoint replaced it before it was sent"})
	}
}

// putOneshot queues j for the one-shot worker.
func (d *agentDevice) putOneshot(j *job) {
	d.mu.Lock()
	var o outcome
	switch {
	case d.closed:
		o = rejected(CodeShutdown, "agent stopping")
	case d.latched:
		o = rejected(CodeEstopLatched, "e-stop latched on "+d.name+": clear it first")
	case !d.state.Up():
		o = rejected(CodeNotReady, fmt.Sprintf("device %s is %s", d.name, d.state))
	default:
		select {
		case d.oneq <- j:
			d.mu.Unlock()
			return
		default:
			o = rejected(CodeBusy, fmt.Sprintf("%d commands already wait for %s", oneshotQueue, d.name))
		}
	}
	d.mu.Unlock()
	d.a.finish(j, o)
}

// stop queues a stop ahead of any setpoint: the waiting setpoint is dropped
// and the one being submitted is cancelled (the worker is free at once),
// the deadman is disarmed. front puts it before other stops and clears
// (the agent's own urgent stops).
func (d *agentDevice) stop(op ctlOp, why outcome, front bool) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		op.fan.done(d.name, outcome{status: AckError, code: CodeShutdown, reason: "agent stopping"})
		return
	}
	old := d.supersedeLocked(why)
	d.disarmDeadmanLocked()
	op.kind = KindStop
	if front {
		d.ctl = append([]ctlOp{op}, d.ctl...)
	} else {
		d.ctl = append(d.ctl, op)
	}
	d.mu.Unlock()
	d.kick()
	if old != nil {
		d.a.finish(old, why)
	}
}

// clear queues a clear for the latch in force now.
func (d *agentDevice) clear(fan *fanout) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		fan.done(d.name, outcome{status: AckError, code: CodeShutdown, reason: "agent stopping"})
		return
	}
	d.ctl = append(d.ctl, ctlOp{kind: KindClear, fan: fan, latchGen: d.latchGen})
	d.mu.Unlock()
	d.kick()
}

// latch records an e-stop (by a signal, or reported by the device): the
// waiting setpoint is refused, the one being submitted cancelled, clears
// not yet sent are refused (a clear must never release a later e-stop).
// It reports whether the latch is new.
func (d *agentDevice) latch(by string) bool {
	o := rejected(CodeEstopLatched, "e-stop latched on "+d.name)
	d.mu.Lock()
	fresh := !d.latched
	d.latched, d.latchBy = true, by
	d.latchGen++
	old := d.supersedeLocked(o)
	d.disarmDeadmanLocked()
	var clears []ctlOp
	kept := d.ctl[:0]
	for _, op := range d.ctl {
		if op.kind == KindClear {
			clears = append(clears, op)
		} else {
			kept = append(kept, op)
		}
	}
	d.ctl = kept
	d.mu.Unlock()
	if old != nil {
		d.a.finish(old, o)
	}
	for _, op := range clears {
		op.fan.done(d.name, rejected(CodeEstopLatched, "an e-stop came before the clear was sent"))
	}
	return fresh
}

// supersedeLocked takes the waiting setpoint out (the caller answers it
// with why) and cancels the one being submitted.
func (d *agentDevice) supersedeLocked(why outcome) *job {
	old := d.slot
	d.slot = nil
	if d.curCancel != nil {
		d.curWhy = why
		d.curCancel()
		d.curCancel = nil
	}
	return old
}

func (d *agentDevice) armDeadmanLocked(after time.Duration) {
	d.dmGen++
	gen := d.dmGen
	d.dmArmed = true
	if d.deadman != nil {
		d.deadman.Stop()
	}
	d.deadman = d.a.clk.AfterFunc(after, func() { d.deadmanFired(gen) })
}

func (d *agentDevice) disarmDeadmanLocked() {
	d.dmGen++
	d.dmArmed = false
	if d.deadman != nil {
		d.deadman.Stop()
		d.deadman = nil
	}
}

// deadmanFired sends the one stop of an expired deadman.
func (d *agentDevice) deadmanFired(gen uint64) {
	d.mu.Lock()
	if gen != d.dmGen || !d.dmArmed || d.closed {
		d.mu.Unlock()
		return
	}
	d.dmArmed = false
	d.deadman = nil
	d.mu.Unlock()
	d.log.Info("deadman expired: stopping")
	d.a.m.deadmanStops.WithLabelValues(d.name).Inc()
	d.stop(ctlOp{why: "deadman"}, outcome{status: AckSuperseded, code: "deadman", reason: "deadman expired"}, false)
}

// moving reports whether a setpoint's deadman is running: the device may
// be moving on someone's input.
func (d *agentDevice) moving() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dmArmed || d.slot != nil || d.curCancel != nil
}

// ---- the worker ----

// run is the worker: stops and clears first, then the newest setpoint.
func (d *agentDevice) run(ctx context.Context) {
	for {
		select {
		case <-d.wake:
		case <-ctx.Done():
			d.drain()
			return
		}
		for ctx.Err() == nil && d.step(ctx) {
		}
	}
}

// step does one thing and reports whether there may be more.
func (d *agentDevice) step(ctx context.Context) bool {
	d.mu.Lock()
	dev := d.dev
	if len(d.ctl) > 0 {
		op := d.ctl[0]
		d.ctl = d.ctl[1:]
		d.mu.Unlock()
		d.runCtl(ctx, dev, op)
		return true
	}
	j := d.slot
	// The link came (back) up: STOP before any setpoint. Tried once when the
	// device gets ready, and again for each setpoint that finds it undone
	// (a device that refuses it is not hammered with STOPs).
	if d.needStop && dev != nil && (j != nil || !d.stopTried) && dev.State().Up() {
		d.stopTried = true
		d.mu.Unlock()
		d.runCtl(ctx, dev, ctlOp{kind: KindStop, why: "device ready"})
		d.mu.Lock()
		if d.needStop { // not confirmed: the waiting setpoint is refused
			j, d.slot = d.slot, nil
			d.mu.Unlock()
			if j != nil {
				d.a.finish(j, rejected(CodeNotReady, "device "+d.name+" did not confirm the stop it gets after its link came up"))
			}
			return true
		}
		j = d.slot
	}
	if j == nil {
		d.mu.Unlock()
		return false
	}
	d.slot = nil
	var o outcome
	switch {
	case d.latched:
		o = rejected(CodeEstopLatched, "e-stop latched on "+d.name)
	case d.needStop:
		o = rejected(CodeNotReady, "device "+d.name+" is not ready (its link came back and it gets a stop first)")
	}
	if o.status != "" {
		d.mu.Unlock()
		d.a.finish(j, o)
		return true
	}
	sctx, cancel := context.WithCancel(ctx)
	d.curCancel, d.curWhy = cancel, outcome{}
	d.mu.Unlock()

	if reason, stale := j.stale(d.a.clk.Now()); stale {
		d.endCur(cancel)
		d.a.finish(j, rejected(CodeStale.String(), reason))
		return true
	}
	res, err := dev.Setpoint(sctx, j.dcmd)
	why := d.endCur(cancel)
	if err != nil && why.status != "" && errors.Is(err, context.Canceled) {
		if res.Tries > 0 { // on the wire already: say so, and why its reply is not awaited
			why = outcome{status: AckSent, code: why.code, reason: "written to " + d.name + ", then: " + why.reason + "; its reply is not awaited"}
		}
		d.a.finish(j, why)
		return true
	}
	d.a.finish(j, d.result(KindSetpoint, res, err))
	return true
}

// endCur ends the worker's current setpoint and returns why it was
// cancelled (zero when it was not).
func (d *agentDevice) endCur(cancel context.CancelFunc) outcome {
	d.mu.Lock()
	why := d.curWhy
	d.curCancel, d.curWhy = nil, outcome{}
	d.mu.Unlock()
	cancel()
	return why
}

// result turns a device answer into the ack's outcome and notes errors
// and round trips for status and metrics.
func (d *agentDevice) result(kind Kind, res devices.Result, err error) outcome {
	o := deviceOutcome(d.name, kind, res, err)
	if res.RTT > 0 && err == nil && (res.Status == devices.StatusOK || res.Status == devices.StatusError) {
		d.a.m.deviceRTT.WithLabelValues(d.name).Observe(res.RTT.Seconds())
	}
	if o.status == AckError || o.status == AckTimeout {
		d.mu.Lock()
		if o.code != CodeShutdown {
			d.lastErr = o.reason
		}
		d.mu.Unlock()
	}
	return o
}

func (d *agentDevice) runCtl(ctx context.Context, dev *devices.Device, op ctlOp) {
	if dev == nil {
		op.fan.done(d.name, outcome{status: AckError, code: CodeNotReady, reason: "device " + d.name + " not open"})
		return
	}
	switch op.kind {
	case KindStop:
		if op.why != "" {
			d.log.Info("stop", "why", op.why)
		}
		res, err := dev.Stop(ctx)
		o := d.result(KindStop, res, err)
		if o.status == AckOK || o.status == AckSent {
			d.mu.Lock()
			d.needStop = false
			d.mu.Unlock()
		} else if op.why != "" && ctx.Err() == nil {
			d.log.Warn("stop failed", "why", op.why, "status", o.status, "reason", o.reason)
		}
		op.fan.done(d.name, o)
	case KindClear:
		res, err := dev.Clear(ctx)
		o := d.result(KindClear, res, err)
		d.mu.Lock()
		released := false
		again := false
		if o.status == AckOK || o.status == AckSent {
			if d.latchGen == op.latchGen {
				d.latched, d.latchBy, released = false, "", true
			} else {
				again = true // an e-stop came while the CLEAR was on the wire (the device layer drops one not yet sent): latch it again
			}
		}
		d.mu.Unlock()
		if again {
			if err := dev.EStop(); err != nil {
				d.log.Error("e-stop again after a racing clear", "err", err)
			}
			o = rejected(CodeEstopLatched, "an e-stop came while the clear was sent; latched again")
		}
		if released {
			d.log.Info("e-stop released")
			d.a.latchGauge()
		}
		d.a.changed(false)
		op.fan.done(d.name, o)
	}
}

// drain answers what is still waiting, at shutdown.
func (d *agentDevice) drain() {
	d.mu.Lock()
	d.closed = true
	slot, ctl := d.slot, d.ctl
	d.slot, d.ctl = nil, nil
	d.disarmDeadmanLocked()
	d.mu.Unlock()
	o := outcome{status: AckRejected, code: CodeShutdown, reason: "agent stopping"}
	if slot != nil {
		d.a.finish(slot, o)
	}
	for _, op := range ctl {
		op.fan.done(d.name, outcome{status: AckError, code: CodeShutdown, reason: "agent stopping"})
	}
}

// runOneshots is the one-shot worker.
func (d *agentDevice) runOneshots(ctx context.Context) {
	for {
		select {
		case j := <-d.oneq:
			d.oneshot(ctx, j)
		case <-ctx.Done():
			d.mu.Lock()
			d.closed = true
			d.mu.Unlock()
			for {
				select {
				case j := <-d.oneq:
					d.a.finish(j, rejected(CodeShutdown, "agent stopping"))
				default:
					return
				}
			}
		}
	}
}

func (d *agentDevice) oneshot(ctx context.Context, j *job) {
	d.mu.Lock()
	latched, dev := d.latched, d.dev
	d.mu.Unlock()
	if latched {
		d.a.finish(j, rejected(CodeEstopLatched, "e-stop latched on "+d.name))
		return
	}
	if reason, stale := j.stale(d.a.clk.Now()); stale {
		d.a.finish(j, rejected(CodeStale.String(), reason))
		return
	}
	res, err := dev.Do(ctx, j.dcmd)
	d.a.finish(j, d.result(KindOneshot, res, err))
}
