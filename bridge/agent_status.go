package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/teleop/teleop/clock"
	"github.com/teleop/teleop/devices"
	"github.com/teleop/teleop/signaling"
)

// Status is the agent's state as the status signal carries it (JSON), the
// shape docs/console.md reads:
//
//	{"estop":{"latched":true,"by":"<connectionId>","devices":["base"]},
//	 "lease":{"mode":"exclusive","holder":"<connectionId>"},
//	 "devices":{"base":{"state":"ready","firmware":"teleop-sim/0.1.0","latched":true,"watchdog_trips":0}},
//	 "watchdog":"ok","watchdog_trips":0}
type Status struct {
	Estop    EstopStatus             `json:"estop"`
	Lease    LeaseStatus             `json:"lease"`
	Devices  map[string]DeviceStatus `json:"devices"`
	Watchdog string                  `json:"watchdog"` // "ok", or "failsafe: base" while a device's watchdog holds it
	// WatchdogTrips counts EVT WDOG of every device since the agent started.
	WatchdogTrips int `json:"watchdog_trips"`
}

// EstopStatus says whether an e-stop is latched, on which devices and by
// whom: a connection ID, "api" (the REST API) or "device:<name>" (the
// firmware reported it, e.g. its own button).
type EstopStatus struct {
	Latched bool     `json:"latched"`
	By      string   `json:"by,omitempty"`
	Devices []string `json:"devices,omitempty"`
}

// LeaseStatus is the lease: mode "off" or "exclusive", and its holder's
// connection ID ("" when nobody holds it).
type LeaseStatus struct {
	Mode   string `json:"mode"`
	Holder string `json:"holder"`
}

// DeviceStatus is one device: its state (connecting, ready, failsafe,
// estopped, disconnected, closed), the firmware of its latest HELLO, the
// latest error (cleared when it is ready again).
type DeviceStatus struct {
	State         string `json:"state"`
	Firmware      string `json:"firmware,omitempty"`
	Error         string `json:"error,omitempty"`
	Latched       bool   `json:"latched"`
	WatchdogTrips int    `json:"watchdog_trips"`
}

// Status returns the agent's state now: what the next status signal says.
func (a *Agent) Status() Status {
	a.mu.Lock()
	st := Status{
		Lease:   LeaseStatus{Mode: a.lease.mode(), Holder: a.lease.holder},
		Devices: make(map[string]DeviceStatus, len(a.devs)),
	}
	latchBy := a.latchBy
	a.mu.Unlock()
	var fs []string
	for _, d := range a.devs {
		d.mu.Lock()
		ds := DeviceStatus{State: d.state.String(), Firmware: d.fw, Error: d.lastErr, Latched: d.latched, WatchdogTrips: d.trips}
		if d.latched {
			st.Estop.Latched = true
			st.Estop.Devices = append(st.Estop.Devices, d.name)
			if st.Estop.By == "" {
				st.Estop.By = d.latchBy
			}
		}
		if d.state == devices.StateFailsafe {
			fs = append(fs, d.name)
		}
		st.WatchdogTrips += d.trips
		d.mu.Unlock()
		st.Devices[d.name] = ds
	}
	if st.Estop.Latched && latchBy != "" && containsBy(a, latchBy) {
		st.Estop.By = latchBy // the newest latch that still holds
	}
	st.Watchdog = "ok"
	if len(fs) > 0 {
		st.Watchdog = "failsafe: " + strings.Join(fs, ", ")
	}
	return st
}

// latchGauge sets the e-stop gauge from the devices' latches.
func (a *Agent) latchGauge() {
	v := 0.0
	for _, d := range a.devs {
		d.mu.Lock()
		if d.latched {
			v = 1
		}
		d.mu.Unlock()
	}
	a.m.estopLatched.Set(v)
}

// containsBy reports whether a latched device was latched by by.
func containsBy(a *Agent, by string) bool {
	for _, d := range a.devs {
		d.mu.Lock()
		ok := d.latched && d.latchBy == by
		d.mu.Unlock()
		if ok {
			return true
		}
	}
	return false
}

// changed says the status changed; urgent ones (e-stop, lease) go out at
// once, others are coalesced within statusDebounce.
func (a *Agent) changed(urgent bool) { a.status.changed(urgent) }

// statusPub sends the status signal: on join and reconnect, to each
// connection that joins, and on every change, coalescing bursts.
type statusPub struct {
	a    *Agent
	wake chan struct{} // cap 1

	mu     sync.Mutex
	dirty  bool
	urgent bool
	forced bool     // send even if unchanged (join, reconnect)
	to     []string // newcomers to tell
}

func newStatusPub(a *Agent) *statusPub { return &statusPub{a: a, wake: make(chan struct{}, 1)} }

func (p *statusPub) changed(urgent bool) {
	p.mu.Lock()
	p.dirty = true
	p.urgent = p.urgent || urgent
	p.mu.Unlock()
	p.kick()
}

// force sends the status now: to everyone (to == "") or to one connection.
func (p *statusPub) force(to string) {
	p.mu.Lock()
	if to == "" {
		p.forced = true
	} else {
		p.to = append(p.to, to)
	}
	p.mu.Unlock()
	p.kick()
}

func (p *statusPub) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

const statusSendWait = 2 * time.Second

func (p *statusPub) run(ctx context.Context) {
	a := p.a
	var (
		last   []byte
		lastAt time.Time
		timer  clock.Timer
		timerC <-chan time.Time
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-p.wake:
		case <-timerC:
			timerC = nil
		case <-ctx.Done():
			return
		}
		p.mu.Lock()
		dirty, urgent, forced, to := p.dirty, p.urgent, p.forced, p.to
		p.dirty, p.urgent, p.forced, p.to = false, false, false, nil
		p.mu.Unlock()

		a.mu.Lock()
		sess, connected := a.sess, a.connected
		a.mu.Unlock()
		if sess == nil || !connected {
			continue // a reconnect forces a fresh one
		}
		data, err := json.Marshal(a.Status())
		if err != nil {
			a.log.Error("encode status", "err", err)
			continue
		}
		for _, id := range to {
			p.send(sess, id, data)
		}
		if !dirty && !forced {
			continue
		}
		now := a.clk.Now()
		if !urgent && !forced && !lastAt.IsZero() && now.Sub(lastAt) < statusDebounce {
			p.mu.Lock()
			p.dirty = true
			p.mu.Unlock()
			if timerC == nil {
				timer = a.clk.NewTimer(statusDebounce - now.Sub(lastAt))
				timerC = timer.C()
			}
			continue
		}
		if !forced && bytes.Equal(data, last) {
			continue
		}
		p.send(sess, "", data)
		last, lastAt = data, now
	}
}

func (p *statusPub) send(sess *signaling.Session, to string, data []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), statusSendWait)
	defer cancel()
	err := sess.Signal(ctx, signaling.Signal{Type: p.a.cfg.Outputs.StatusType, Data: string(data), To: to, NoRetry: true})
	if err != nil {
		p.a.m.outputErrors.WithLabelValues(p.a.cfg.Outputs.StatusType).Inc()
		p.a.log.Debug("could not send status", "to", to, "err", err)
	}
}

// ---- device callbacks (on the device's goroutines; they must not block) ----

func (d *agentDevice) onState(s devices.State) {
	d.mu.Lock()
	prev := d.state
	d.state = s
	dev := d.dev
	if s.Up() && !prev.Up() {
		if d.everReady {
			d.a.m.deviceReconnects.WithLabelValues(d.name).Inc()
		}
		d.everReady = true
		d.lastErr = ""
		if dev != nil {
			if h, ok := dev.Hello(); ok {
				d.fw = h.FW
			}
		}
	}
	if s.Up() != prev.Up() {
		d.stopTried = false
	}
	if !s.Up() {
		d.needStop = true // whatever it was doing, it gets a stop before any setpoint
		if s == devices.StateDisconnected && d.lastErr == "" {
			d.lastErr = "serial link down"
		}
	}
	kick := s.Up() && d.needStop
	deviceLatch := s == devices.StateEStopped && !d.latched
	d.mu.Unlock()
	d.a.m.deviceUp.WithLabelValues(d.name).Set(deviceUp(s))
	if deviceLatch {
		d.log.Warn("device reports e-stop")
		d.latch("device:" + d.name)
		d.a.mu.Lock()
		d.a.latchBy = "device:" + d.name
		d.a.mu.Unlock()
		d.a.m.estops.WithLabelValues("device").Inc()
	}
	if s == devices.StateEStopped {
		d.a.m.estopLatched.Set(1)
	}
	if kick {
		d.kick()
	}
	// A device going away, or latching, is news now; the recovery's steps
	// (connecting, ready, failsafe) may be coalesced.
	d.a.changed(s == devices.StateEStopped || (prev.Up() && !s.Up()))
}

func (d *agentDevice) onEvent(e devices.Event) {
	if e.Name != "WDOG" {
		return
	}
	d.mu.Lock()
	d.trips++
	d.mu.Unlock()
	d.a.m.watchdogTrips.WithLabelValues(d.name).Inc()
	d.a.changed(false)
}

// onTelemetry forwards a TLM line as a telemetry signal, at most one per
// telemetry_interval for this device (the newest one wins), to the lease
// holder when there is one and to everyone otherwise.
func (d *agentDevice) onTelemetry(t devices.Telemetry) {
	data := telemetryJSON(nil, d.name, t)
	now := d.a.clk.Now()
	d.mu.Lock()
	out, wait := d.tlm.offer(data, now)
	d.mu.Unlock()
	if out != nil {
		d.a.sendTelemetry(out)
	}
	if wait > 0 {
		d.a.clk.AfterFunc(wait, func() {
			d.mu.Lock()
			out := d.tlm.flush(d.a.clk.Now())
			d.mu.Unlock()
			if out != nil {
				d.a.sendTelemetry(out)
			}
		})
	}
}

func (a *Agent) sendTelemetry(data []byte) {
	a.mu.Lock()
	to, ok := "", a.connected && !a.closing
	if a.lease.exclusive {
		to = a.lease.holder
	}
	a.mu.Unlock()
	if ok {
		a.out.telemetry(to, data)
	}
}
