package devices

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/teleop/teleop/devices/proto"
)

// run is the supervisor: connect, handshake, watch, and on any failure
// close, back off and start again, until the Device's context ends.
func (d *Device) run() {
	defer close(d.done)
	bo := backoff{min: d.cfg.BackoffMin, max: d.cfg.BackoffMax}
	for {
		d.setState(StateConnecting)
		c, err := d.connect()
		msg := "cannot open the port; retrying"
		if err == nil {
			msg = "link down; reconnecting"
			var wasReady bool
			wasReady, err = d.session(c)
			if errors.Is(err, errClosing) {
				d.finalStop(c)
			}
			d.teardown(c, err)
			if wasReady {
				bo.reset() // a link that worked gets a quick first retry
			}
		}
		if d.ctx.Err() != nil {
			break
		}
		wait := bo.next()
		d.log.Warn(msg, "err", err, "in", wait.Round(time.Millisecond))
		d.setState(StateDisconnected)
		t := d.clk.NewTimer(wait)
		select {
		case <-t.C():
		case <-d.ctx.Done():
		}
		t.Stop()
		if d.ctx.Err() != nil {
			break
		}
	}
	d.mu.Lock()
	d.closed = true
	d.failAllLocked(ErrClosed)
	d.state = StateClosed
	d.mu.Unlock()
	d.notify()
	d.log.Info("closed")
}

func (d *Device) setState(s State) {
	d.mu.Lock()
	d.state = s
	d.mu.Unlock()
	d.notify()
}

// connect finds the device (again: it may be back under another name),
// opens it and starts the connection's reader and writer.
func (d *Device) connect() (*conn, error) {
	path, err := Resolve(d.sel)
	if err != nil {
		return nil, err
	}
	p, err := OpenPort(path, &PortOptions{Baud: d.cfg.Baud, WriteTimeout: d.cfg.WriteTimeout})
	if err != nil {
		return nil, err
	}
	if path != d.sel.Path {
		d.log.Info("port open", "path", path, "selector", d.sel.String(), "baud", d.cfg.Baud)
	} else {
		d.log.Info("port open", "path", path, "baud", d.cfg.Baud)
	}
	if !d.raw {
		// §6.1: discard whatever was buffered before we came (before the
		// reader starts: the line splitter is the reader's).
		if err := p.DiscardInput(); err != nil {
			d.log.Debug("discard input", "err", err)
		}
	}
	c := newConn(p)
	d.mu.Lock()
	d.conn = c
	d.seq = 0
	d.ctrl = nil
	d.lastRx = d.clk.Now()
	d.unanswered = 0
	d.mu.Unlock()
	c.wg.Add(2)
	go d.readLoop(c)
	go d.writeLoop(c)
	return c, nil
}

// teardown ends a connection: the port is closed, its goroutines are
// waited for, and every command still waiting fails.
func (d *Device) teardown(c *conn, cause error) {
	c.fail(cause)
	c.port.Close()
	c.wg.Wait()
	d.mu.Lock()
	d.conn = nil
	d.ready, d.strictRx = false, false
	if errors.Is(cause, errClosing) {
		d.failAllLocked(ErrClosed)
	} else {
		d.failAllLocked(fmt.Errorf("%w: %v", ErrLinkDown, cause))
	}
	d.mu.Unlock()
}

// session runs one connection until it fails. wasReady reports that the
// handshake completed at least once.
func (d *Device) session(c *conn) (wasReady bool, err error) {
	if d.raw {
		d.mu.Lock()
		d.ready = true
		d.state = StateReady
		if d.latched {
			d.state = StateEStopped
			d.ctrl = append(d.ctrl, d.estopBytes())
			d.log.Warn("re-sending the latched e-stop")
		}
		d.kickLocked()
		d.mu.Unlock()
		d.notify()
		d.log.Info("ready (raw protocol: no handshake)")
		return true, d.wait(c)
	}

	// §6.2: a board that resets on open announces itself within BootWait.
	t := d.clk.NewTimer(d.cfg.BootWait)
	select {
	case <-c.hello:
		d.log.Info("boot banner received")
	case <-t.C():
		d.log.Info("no boot banner; asking with VER", "waited", d.cfg.BootWait)
	case <-c.down:
		t.Stop()
		return false, c.err
	case <-d.ctx.Done():
		t.Stop()
		return false, errClosing
	}
	t.Stop()

	for {
		if err := d.handshake(c); err != nil {
			return wasReady, err
		}
		wasReady = true
		if err := d.monitor(c); err != nil {
			return wasReady, err
		}
		// The device rebooted: handshake again on the same port.
	}
}

func (d *Device) wait(c *conn) error {
	select {
	case <-c.down:
		return c.err
	case <-d.ctx.Done():
		return errClosing
	}
}

// handshake is §6 steps 3–5: RESYNC (and the latched e-stop), VER with
// retries, the version check, then the settings.
func (d *Device) handshake(c *conn) error {
	for attempt := 1; ; attempt++ {
		d.mu.Lock()
		select {
		case <-c.reset:
		default:
		}
		d.ready, d.strictRx = false, false
		d.seq = 0
		d.ctrl = append(d.ctrl[:0], []byte{proto.ByteResync})
		if d.latched {
			d.ctrl = append(d.ctrl, d.estopBytes())
			d.log.Warn("re-sending the latched e-stop")
		}
		gen := d.helloGen
		d.mu.Unlock()

		res, err := d.internal(d.ctx, c, Cmd("VER"), handshakeTries, handshakeTimeout)
		if err != nil {
			return fmt.Errorf("handshake: VER: %w", err)
		}
		if res.Status != StatusOK {
			return fmt.Errorf("handshake: VER %s after %d tries (is it a teleop/1 device at %d baud?)",
				describe(res), res.Tries, d.cfg.Baud)
		}
		d.mu.Lock()
		h, fresh := d.hello, d.helloGen != gen
		gen = d.helloGen
		d.mu.Unlock()
		if !fresh {
			return errors.New("handshake: VER answered without a HELLO")
		}
		if err := h.Check(); err != nil {
			d.log.Error("refusing the device", "err", err, "fw", h.FW)
			return fmt.Errorf("handshake: %w", err)
		}

		for i, args := range d.cfg.setArgs() {
			cmd := Cmd("SET", args...)
			res, err := d.internal(d.ctx, c, cmd, 1+d.cfg.Retries, d.cfg.CommandTimeout)
			if err != nil {
				return fmt.Errorf("handshake: %s: %w", cmd, err)
			}
			if res.Status != StatusOK {
				return fmt.Errorf("handshake: %s: %s", cmd, describe(res))
			}
			if i == 0 {
				d.mu.Lock()
				d.strictRx = true
				d.mu.Unlock()
			}
		}

		d.mu.Lock()
		if d.helloGen != gen && attempt < 3 {
			d.mu.Unlock()
			d.log.Warn("device rebooted during the handshake; again")
			continue
		}
		d.ready = true
		d.state = StateReady
		if d.latched {
			d.state = StateEStopped
		}
		d.ctrl = append(d.ctrl, []byte{proto.ByteTelemetry}) // learn its state (RDY/FS/ES) now
		d.kickLocked()
		d.mu.Unlock()
		d.notify()
		d.log.Info("device ready", "fw", h.FW, "board", h.Board, "proto", fmt.Sprintf("%d.%d", h.Major, h.Minor),
			"rx", h.RX, "caps", strings.Join(h.Caps, ","))
		return nil
	}
}

// monitor watches a ready link: nil means the device rebooted (handshake
// again); an error means the link is down. Silence is a failure; from half
// the silence timeout on the host asks for telemetry with '?', so a healthy
// device with tlm_hz=0 is not mistaken for a dead one.
func (d *Device) monitor(c *conn) error {
	tick := d.clk.NewTicker(max(d.cfg.SilenceTimeout/4, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-c.reset:
			return nil
		case <-c.down:
			return c.err
		case <-d.ctx.Done():
			return errClosing
		case <-tick.C():
		}
		d.mu.Lock()
		idle := d.clk.Now().Sub(d.lastRx)
		if idle >= d.cfg.SilenceTimeout {
			d.mu.Unlock()
			err := fmt.Errorf("device silent for %v", idle.Round(time.Millisecond))
			d.log.Error("link failed: device silent", "for", idle.Round(time.Millisecond), "limit", d.cfg.SilenceTimeout)
			c.fail(err)
			return err
		}
		// Probe on every tick from half the timeout on, so one lost '?' or
		// TLM does not end a healthy link; never pile probes up unsent.
		if idle >= d.cfg.SilenceTimeout/2 && !slices.ContainsFunc(d.ctrl, isProbe) {
			d.ctrl = append(d.ctrl, []byte{proto.ByteTelemetry})
			d.kickLocked()
		}
		d.mu.Unlock()
	}
}

// internal runs one of the supervisor's own one-shot commands.
func (d *Device) internal(ctx context.Context, c *conn, cmd Command, tries int, timeout time.Duration) (Result, error) {
	r, err := d.newRequest(kindOneShot, cmd)
	if err != nil {
		return Result{}, err
	}
	r.internal, r.maxTries, r.timeout = true, tries, timeout
	if err := d.enqueue(r); err != nil {
		return Result{}, err
	}
	res, err := d.await(ctx, r, c.down, func() error { return c.err })
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) && d.ctx.Err() != nil {
		return res, errClosing
	}
	return res, err
}

// finalStop sends STOP on the way out (Close or the Open context ending),
// if the link is up: invariant 1, a host that goes away stops the robot,
// unless Config.StopOnClose is off.
func (d *Device) finalStop(c *conn) {
	d.mu.Lock()
	up := d.ready
	if sp := d.setpoint; sp != nil {
		d.finishLocked(sp, outcome{err: ErrClosed})
	}
	d.closed = true // from now on only the STOP below goes out
	d.mu.Unlock()
	if !up {
		return
	}
	if !*d.cfg.StopOnClose {
		d.log.Warn("closing without a stop (stop on close is off): the robot keeps its last command")
		return
	}
	cmd := Cmd("STOP")
	if d.raw {
		cmd = RawCmd(d.cfg.Raw.Stop)
	}
	// Bounded in real time too, in case the clock is a test's fake.
	wait := d.cfg.CommandTimeout * time.Duration(d.cfg.Retries+2)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	res, err := d.internal(ctx, c, cmd, 1+d.cfg.Retries, d.cfg.CommandTimeout)
	if err == nil {
		err = res.Err()
	}
	if err != nil {
		d.log.Warn("stop before close failed", "err", err)
		return
	}
	d.log.Info("robot stopped before close")
}

func isProbe(b []byte) bool { return len(b) == 1 && b[0] == proto.ByteTelemetry }

func describe(r Result) string {
	switch r.Status {
	case StatusError:
		return fmt.Sprintf("refused: ERR %d %s", int(r.Code), r.Text)
	case StatusTimeout:
		return "got no reply"
	}
	return r.Status.String()
}

// backoff doubles from min to max, with jitter: each wait is in [¾d, d].
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur - time.Duration(rand.Int64N(int64(b.cur/4)+1))
}

func (b *backoff) reset() { b.cur = 0 }
