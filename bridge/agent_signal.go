package bridge

import (
	"fmt"
	"strconv"

	"github.com/teleop/teleop/devices"
	"github.com/teleop/teleop/signaling"
)

// onSignal is the signal path. It runs on the session's dispatcher
// goroutine, so it never waits for a device or for the relay: the e-stop
// goes to every device's fast path at once, everything else is checked
// here and handed to a device worker or answered.
//
// Order of checks: own broadcast (ignored); mapping (Mapper.Map: type,
// sender allowed, age, data, line); e-stop (before anything else: no rate
// limit, lease or queue); stop (from anyone); then shutdown, rate limit,
// lease, and per kind the device's own checks (latched, ready).
func (a *Agent) onSignal(sig signaling.Signal) {
	now := a.clk.Now()
	a.mu.Lock()
	self := a.self
	if sig.From != "" {
		a.lease.touch(sig.From, now) // any signal keeps the holder's lease alive
	}
	a.mu.Unlock()
	if sig.From != "" && sig.From == self {
		return // our own broadcasts
	}
	info, mapped := a.mapper.Info(sig.Type)
	if mapped && info.Kind == KindEstop {
		// Before anything else: an e-stop maps from anyone, whatever its data.
		cmd, _ := a.mapper.Map(Incoming{Type: sig.Type, Data: sig.Data, From: sig.From})
		a.estop(&job{typ: sig.Type, label: sig.Type, from: sig.From, id: cmd.ID, kind: KindEstop,
			received: sig.Received, relayAge: sig.Age, ackOK: cmd.Ack}, cmd.Device)
		return
	}

	connData, _ := a.connData(sig.From)
	age := sig.Age
	if !sig.Received.IsZero() {
		age += now.Sub(sig.Received)
	}
	cmd, rej := a.mapper.Map(Incoming{Type: sig.Type, Data: sig.Data, From: sig.From, ConnData: connData, AgeMs: age.Milliseconds()})
	if rej != nil {
		typ := sig.Type
		if rej.Code == CodeUnknownType {
			typ = "unmapped"
		}
		if !rej.Ack {
			a.m.signals.WithLabelValues(typ, "ignored").Inc()
			return
		}
		j := &job{typ: sig.Type, label: typ, from: sig.From, id: rej.ID, received: sig.Received, relayAge: sig.Age}
		a.finish(j, rejected(rej.Code.String(), rej.Reason))
		return
	}
	j := &job{
		typ: cmd.Type, label: cmd.Type, from: sig.From, id: cmd.ID, kind: cmd.Kind, received: sig.Received,
		relayAge: sig.Age, maxAge: cmd.MaxAge, ackOK: cmd.Ack,
	}
	if cmd.Kind == KindStop {
		a.stopSignal(j, cmd.Device)
		return
	}

	a.mu.Lock()
	if a.closing {
		a.mu.Unlock()
		a.finish(j, rejected(CodeShutdown, "agent stopping"))
		return
	}
	if info.RateLimit.N > 0 {
		k := bucketKey{sig.From, cmd.Type}
		b := a.buckets[k]
		if b == nil {
			b = &bucket{}
			a.buckets[k] = b
		}
		if !b.take(info.RateLimit, now) {
			a.mu.Unlock()
			a.finish(j, rejected(CodeRateLimited, fmt.Sprintf("over the rate limit of %s for %s", info.RateLimit, cmd.Type)))
			return
		}
	}
	switch cmd.Kind {
	case KindControl:
		o, ended, was := a.controlLocked(sig.From, cmd.Control)
		a.mu.Unlock()
		if ended != "" {
			a.leaseEnded(was, ended)
		} else if o.status == AckOK {
			a.changed(true)
		}
		a.finish(j, o)
		return
	case KindClear:
		if sig.From != "" { // the REST API clears when its mapping allows it (access.allow.api)
			if ok, why := a.lease.allows(sig.From); !ok {
				a.mu.Unlock()
				a.finish(j, rejected(CodeLease, "only the lease holder may clear the e-stop: "+why))
				return
			}
		}
		a.mu.Unlock()
		a.clearSignal(j, cmd.Device)
		return
	}
	// setpoint, oneshot
	if ok, why := a.lease.allows(sig.From); !ok {
		a.mu.Unlock()
		a.finish(j, rejected(CodeLease, why))
		return
	}
	backAt := a.backAt
	a.mu.Unlock()

	d := a.devByName[cmd.Device]
	j.dcmd = deviceCommand(d.cfg.Protocol, cmd.Text)
	if cmd.Kind == KindOneshot {
		d.putOneshot(j)
		return
	}
	// A setpoint sent before the agent's session came back waited through
	// the outage: the robot was stopped then and does not resume by itself.
	if !backAt.IsZero() && !sig.Received.IsZero() && sig.Received.Add(-sig.Age).Before(backAt) {
		a.finish(j, rejected(CodeSessionLost, "sent before the agent's session came back; send a fresh one"))
		return
	}
	if reason, stale := j.stale(now); stale { // Map judged the age in whole ms
		a.finish(j, rejected(CodeStale.String(), reason))
		return
	}
	d.putSetpoint(j, cmd.Deadman)
}

// estop latches the e-stop on every device (or one) and writes it on each
// device's fast path at once, each from its own goroutine so that a stalled
// port does not delay the others, and never the dispatcher.
func (a *Agent) estop(j *job, device string) {
	by := j.from
	if by == "" {
		by = "api"
	}
	targets := a.targets(device)
	a.mu.Lock()
	a.latchBy = by
	a.mu.Unlock()
	a.m.estops.WithLabelValues("signal").Inc()
	fan := a.newFanout(j, len(targets))
	for _, d := range targets {
		d.latch(by)
		dev := d.device()
		if dev == nil {
			fan.done(d.name, outcome{status: AckError, code: CodeNotReady, reason: "device not open; latched"})
			continue
		}
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			if err := dev.EStop(); err != nil {
				fan.done(d.name, outcome{status: AckError, code: CodeLinkDown, reason: err.Error()})
				return
			}
			fan.done(d.name, outcome{status: AckSent})
		}()
	}
	a.log.Warn("e-stop latched", "by", by, "devices", len(targets))
	a.m.estopLatched.Set(1)
	a.changed(true)
}

// stopSignal stops every device (or one): honoured from anyone, never
// stale, never rate limited, whatever the lease.
func (a *Agent) stopSignal(j *job, device string) {
	targets := a.targets(device)
	fan := a.newFanout(j, len(targets))
	for _, d := range targets {
		d.stop(ctlOp{fan: fan}, outcome{status: AckSuperseded, code: "stopped", reason: "a stop came before it was sent"}, false)
	}
}

func (a *Agent) clearSignal(j *job, device string) {
	targets := a.targets(device)
	fan := a.newFanout(j, len(targets))
	for _, d := range targets {
		d.clear(fan)
	}
}

func (a *Agent) targets(device string) []*agentDevice {
	if device == "" {
		return a.devs
	}
	return []*agentDevice{a.devByName[device]}
}

// controlLocked runs a lease request. It returns the ack's outcome and,
// when a lease ended, how and whose.
func (a *Agent) controlLocked(from string, c Control) (o outcome, ended leaseEnd, was string) {
	if !a.lease.exclusive {
		return rejected(CodeLease, "the lease is off (safety.lease: off): everyone allowed may drive"), "", ""
	}
	t := a.clk.Now()
	prev := a.lease.holder
	var err error
	switch c.Action {
	case ControlAcquire:
		err = a.lease.acquire(from, t)
	case ControlRelease:
		if err = a.lease.release(from); err == nil {
			ended, was = leaseReleased, prev
		}
	case ControlTransfer:
		err = a.lease.transfer(from, c.To, t, func(id string) bool { _, ok := a.conns[id]; return ok })
		if err == nil && prev != a.lease.holder {
			ended, was = leaseTransferred, prev // the old driver's motion stops
		}
	default:
		err = fmt.Errorf("unknown action %s", strconv.Quote(c.Action.String()))
	}
	if err != nil {
		return rejected(CodeLease, err.Error()), "", ""
	}
	if a.lease.holder != "" {
		a.m.leaseHeld.Set(1)
		if prev != a.lease.holder {
			a.log.Info("lease held", "holder", a.lease.holder)
		}
	}
	a.armLeaseLocked()
	return outcome{status: AckOK}, ended, was
}

// deviceUp is the metric value of a device state.
func deviceUp(s devices.State) float64 {
	if s.Up() {
		return 1
	}
	return 0
}
