package devices

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/teleop/teleop/clock"
	"github.com/teleop/teleop/devices/proto"
)

// Device is the link to one robot microcontroller. Open starts a supervisor
// goroutine that finds the port, opens it, handshakes and keeps the link up
// across resets, unplugs and silence; the methods are safe for concurrent use.
//
// Goroutines: the supervisor (run), and per connection one reader (readLoop)
// and one writer (writeLoop), which the supervisor starts and waits for.
// Close waits for all of them. Lock order: Port's write mutex, then mu, then
// the clock's lock (timers are armed under mu). The writer picks what to
// write under the port's write mutex, so what the e-stop fast path finds
// still queued is not on its way to the wire; EStop never holds mu while
// it takes the write mutex.
type Device struct {
	cfg   Config
	sel   Selector
	log   *slog.Logger
	clk   clock.Clock
	opts  Options
	raw   bool
	rawOK *regexp.Regexp // raw protocol: nil means commands are only "sent"
	rawER *regexp.Regexp

	ctx       context.Context // canceled by Close: stops the supervisor
	cancel    context.CancelFunc
	done      chan struct{} // closed when the supervisor has returned
	closeOnce sync.Once

	mu sync.Mutex // guards everything below

	state       State
	notifying   bool  // a goroutine is delivering OnState calls
	notified    State // the last state delivered to OnState
	notifiedAny bool

	closed     bool                // Close has begun: new commands fail with ErrClosed
	conn       *conn               // the live connection; nil while down
	ready      bool                // handshake done: user commands may be sent
	hello      proto.Hello         // the newest HELLO
	helloGen   int                 // counts HELLOs; the handshake uses it to see a fresh one
	strictRx   bool                // device lines must carry *HH (after SET strict=1)
	latched    bool                // e-stop in force until the device confirms CLEAR
	seq        uint16              // the last seq sent
	order      uint64              // submission counter: FIFO between one-shots and setpoints
	sendIdx    uint64              // transmission counter: replies come in this order
	ctrl       [][]byte            // realtime bytes (0x18, '?', e-stop on reconnect): written first
	oneshots   []*request          // one-shot commands waiting to be sent, FIFO
	oneshot    *request            // the one-shot command in flight (at most one, §7.1)
	setpoint   *request            // the setpoint waiting to be sent; newest wins
	pending    map[uint16]*request // teleop/1: sent and awaiting a reply, by seq
	rawOut     *request            // raw with reply patterns: the command awaiting a matching line
	inflight   int                 // bytes of pending commands, kept within the device's rx
	lastRx     time.Time           // when the last valid line arrived
	unanswered int                 // commands in a row that timed out (teleop/1)

	// owned by the reader goroutine
	dl      proto.DeviceLine
	badN    int       // bad lines not yet logged
	badLast time.Time // when a bad line was last logged
}

// Open validates cfg and starts connecting in the background; it does not
// wait for the device. Watch State / Options.OnState, or just send commands:
// they fail with ErrNotReady until the handshake is done.
//
// ctx bounds the device's life: when it is done the device stops the robot
// (STOP, if the link is up and Config.StopOnClose is not off), closes the
// port and ends, as Close does. Close must still be called to wait for that.
func Open(ctx context.Context, cfg Config, opts *Options) (*Device, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("device config: %w", err)
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	cfg = cfg.withDefaults()
	sel, _ := ParseSelector(cfg.Port) // validated above
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(ctx)
	d := &Device{
		cfg:     cfg,
		sel:     sel,
		log:     o.Logger.With("component", "devices", "device", cfg.Name),
		clk:     clock.Or(o.Clock),
		opts:    o,
		raw:     cfg.Protocol == ProtocolRaw,
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
		pending: map[uint16]*request{},
		state:   StateConnecting,
	}
	if d.raw && cfg.Raw.OK != "" {
		d.rawOK = regexp.MustCompile(cfg.Raw.OK) // validated
		if cfg.Raw.Error != "" {
			d.rawER = regexp.MustCompile(cfg.Raw.Error)
		}
	}
	d.notify()
	go d.run()
	return d, nil
}

// Config returns the configuration in use, defaults filled in.
func (d *Device) Config() Config { return d.cfg }

// State returns the current state.
func (d *Device) State() State {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state
}

// Hello returns the device's newest HELLO banner; ok is false before the
// first handshake (and always in raw mode).
func (d *Device) Hello() (h proto.Hello, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hello, d.helloGen > 0
}

// Latched reports whether the e-stop is in force: EStop was called or the
// device reported ESTOP, and the device has not confirmed a CLEAR since.
func (d *Device) Latched() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.latched
}

// Do runs a one-shot command and waits for its reply: at most one is in
// flight (others wait their turn), and one that gets no reply is resent with
// the same seq up to Config.Retries times, so the device runs it at most
// once (§7.2). In raw mode it waits for a reply pattern, or reports
// StatusSent once written.
//
// A device answer (OK, ERR) or a timeout is a Result with a nil error. The
// error is for commands the device never answered: invalid (nothing sent),
// ErrNotReady, ErrClosed, ErrDeviceReset, ErrLinkDown, ErrEStopped (a CLEAR
// that an e-stop overtook before it was sent), or ctx's error. When ctx
// ends while the command is in flight, Do returns at once and the command
// is no longer resent.
func (d *Device) Do(ctx context.Context, cmd Command) (Result, error) {
	if !d.raw && isSetpointVerb(cmd.Verb) {
		return Result{}, fmt.Errorf("%w: %s is a setpoint: use Setpoint", ErrWrongKind, cmd.Verb)
	}
	r, err := d.newRequest(kindOneShot, cmd)
	if err != nil {
		return Result{}, err
	}
	return d.submit(ctx, r)
}

// Setpoint sends a setpoint (VEL, HB, or a device's own) newest-wins: it is
// never resent, and never queued behind another setpoint. While one waits
// for room in the device's receive buffer, a newer one replaces it and the
// older returns StatusSuperseded at once. Sent setpoints wait for their reply
// (StatusOK, StatusError with CodeStale for one that arrived late) or time
// out after one CommandTimeout.
//
// While the e-stop is latched, Setpoint fails with ErrEStopped.
func (d *Device) Setpoint(ctx context.Context, cmd Command) (Result, error) {
	r, err := d.newRequest(kindSetpoint, cmd)
	if err != nil {
		return Result{}, err
	}
	return d.submit(ctx, r)
}

// EStop is the e-stop fast path. It latches the e-stop (Setpoint refuses
// until the device confirms CLEAR), drops a waiting setpoint, and writes
// the e-stop bytes ("!!!"; raw: the e-stop line three times) at once: not
// through the command queue, waiting only for a write already in progress
// and jumping the kernel's output queue. It works in any state: when the
// port is down, or the write fails, the e-stop is still latched and goes
// out first thing in the next handshake, since the device may have lost
// its state. The error only says the bytes could not be written now.
//
// The e-stop wins over a CLEAR submitted before it: one still queued is
// never sent (it fails with ErrEStopped), and one in flight is not resent.
func (d *Device) EStop() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	d.latched = true
	if sp := d.setpoint; sp != nil {
		d.finishLocked(sp, outcome{res: Result{Status: StatusSuperseded}})
	}
	d.overtakeClearsLocked()
	if d.state.Up() {
		d.state = StateEStopped
	}
	c := d.conn
	d.mu.Unlock()
	d.notify()

	if c == nil {
		d.log.Warn("e-stop latched while the port is down; it will be sent on reconnect")
		return fmt.Errorf("e-stop: %w; latched, it will be sent on reconnect", ErrLinkDown)
	}
	if _, err := c.port.WriteUrgent(d.estopBytes()); err != nil {
		c.fail(fmt.Errorf("e-stop write: %w", err))
		d.log.Error("e-stop write failed; latched, it will be sent on reconnect", "err", err)
		return fmt.Errorf("e-stop: %w; latched, it will be sent on reconnect", err)
	}
	d.log.Warn("e-stop sent")
	return nil
}

// overtakeClearsLocked keeps a CLEAR submitted before an e-stop from
// reaching the device after the e-stop bytes, where it would release it: a
// queued one fails unsent, and one in flight is not resent, since its first
// copy may not have arrived (lost, or still in the kernel's output queue,
// which the e-stop flushes).
func (d *Device) overtakeClearsLocked() {
	for _, r := range slices.Clone(d.oneshots) {
		if d.isClear(r.cmd) {
			d.finishLocked(r, outcome{err: fmt.Errorf("%w: an e-stop came before the CLEAR was sent", ErrEStopped)})
		}
	}
	if r := d.oneshot; r != nil && d.isClear(r.cmd) {
		r.maxTries = r.tries
		if r.resend { // due, not yet written: it never will be
			d.finishLocked(r, outcome{res: Result{Status: StatusTimeout, Text: "not resent after an e-stop"}})
		}
	}
}

// isClear reports whether c releases the e-stop: CLEAR, or the raw clear line.
func (d *Device) isClear(c Command) bool {
	if d.raw {
		return d.cfg.Raw.Clear != "" && c.Line == d.cfg.Raw.Clear
	}
	return c.Verb == "CLEAR"
}

func (d *Device) estopBytes() []byte {
	if d.raw {
		l := d.cfg.Raw.EStop + "\n"
		return []byte(l + l + l)
	}
	return []byte{proto.ByteEstop, proto.ByteEstop, proto.ByteEstop}
}

// Stop sends the orderly stop (STOP; raw: the stop line) as a one-shot
// command, after dropping a setpoint still waiting to be sent.
func (d *Device) Stop(ctx context.Context) (Result, error) {
	d.mu.Lock()
	if sp := d.setpoint; sp != nil {
		d.finishLocked(sp, outcome{res: Result{Status: StatusSuperseded}})
	}
	d.mu.Unlock()
	if d.raw {
		return d.Do(ctx, RawCmd(d.cfg.Raw.Stop))
	}
	return d.Do(ctx, Cmd("STOP"))
}

// Clear releases the e-stop: CLEAR, which the device confirms (raw: the
// clear line if configured; nothing confirms it). The latch is released
// when the device confirms, whichever way the CLEAR was sent. An EStop
// while the CLEAR waits to be sent drops it: Clear returns ErrEStopped.
func (d *Device) Clear(ctx context.Context) (Result, error) {
	if !d.raw {
		return d.Do(ctx, Cmd("CLEAR"))
	}
	res := Result{Status: StatusSent}
	if d.cfg.Raw.Clear != "" {
		var err error
		if res, err = d.Do(ctx, RawCmd(d.cfg.Raw.Clear)); err != nil || res.Err() != nil {
			return res, err
		}
	}
	d.mu.Lock()
	d.latched = false
	if d.state == StateEStopped {
		d.state = StateReady
	}
	d.mu.Unlock()
	d.notify()
	return res, nil
}

// Close stops the robot (STOP, if the link is up and Config.StopOnClose is
// not off, bounded by the command timeout and its retries), closes the port
// and returns once every goroutine has finished. Commands still waiting
// fail with ErrClosed.
func (d *Device) Close() error {
	d.closeOnce.Do(func() {
		d.cancel()
		<-d.done
	})
	return nil
}

// notify delivers state changes to OnState and the log, in order, from
// whichever goroutine changed the state; a change made while another
// goroutine delivers is picked up by that goroutine's loop. It never holds
// mu while calling out, so callbacks may call the Device.
func (d *Device) notify() {
	d.mu.Lock()
	if d.notifying {
		d.mu.Unlock()
		return
	}
	d.notifying = true
	for {
		s := d.state
		if d.notifiedAny && s == d.notified {
			d.notifying = false
			d.mu.Unlock()
			return
		}
		prev, had := d.notified, d.notifiedAny
		d.notified, d.notifiedAny = s, true
		d.mu.Unlock()
		if had {
			d.log.Info("state "+s.String(), "from", prev.String())
		}
		if d.opts.OnState != nil {
			d.opts.OnState(s)
		}
		d.mu.Lock()
	}
}

func isSetpointVerb(v string) bool { return v == "VEL" || v == "HB" }

var errClosing = errors.New("closing")
