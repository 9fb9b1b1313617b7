package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/teleop/teleop/operator"
	"github.com/teleop/teleop/signaling"
)

// driveConfig is the flags of `teleop drive` besides the session's.
type driveConfig struct {
	to                    string
	rate                  float64 // drives per second while a key is held
	hold, repeatHold      time.Duration
	maxLinear, maxAngular float64
	step, steps           int
}

const driveLong = `Drive a robot from the terminal, in the manner of teleop_twist_keyboard.

  w a s d or the arrow keys   drive while held (W A S D, shift+arrows: one step faster)
  space                       stop
  1-4, + and -                speed step (of --steps; step k drives at k/steps of --max-*)
  e or Esc                    E-STOP, to every connection of the session (latches)
  c                           clear the e-stop
  l                           take control (the agent's lease) or give it back
  q or Ctrl-C                 quit (a held key's stop is sent first)

A terminal reports no key release, only the keyboard's auto-repeat. A key
counts as held until --hold has passed since its press without a repeat, or
--repeat-hold since its latest repeat. While it is held, drive goes to the
robot --rate times a second ({"id":N,"linear":…,"angular":…}); on release one
stop ({"id":N}) follows, then nothing: an idle terminal sends nothing. Drives
are never queued across a reconnect, and none is sent while disconnected.

The robot is the connection whose data says role=robot (or that sends
telemetry or status). With several, pick one with --to (a connection ID or a
name). The status lines show the connection, the speed and what is being
sent, the latest ack with its latency (send to ack, on this clock), the
latest rejection with its reason, the e-stop, who holds control, and the
robot's telemetry. The terminal is restored however the command ends.`

// newDriveCmd builds `teleop drive`: keyboard teleoperation in a terminal.
func newDriveCmd() *cobra.Command {
	var c driveConfig
	cmd := &cobra.Command{
		Use:   "drive",
		Short: "Drive a robot with the keyboard (w a s d, arrows; e e-stop; q quit)",
		Long:  driveLong,
		Example: `  teleop drive --token "$(teleop token --session demo --data role=operator,name=alice)"
  TELEOP_TOKEN=… teleop drive --to rover-2 --max-linear 1.0`,
		Args: cobra.NoArgs,
	}
	sf := addSessionFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&c.to, "to", "", "the robot to drive, by connection ID or name (needed when the session has several)")
	f.Float64Var(&c.rate, "rate", 20, "drive signals per second while a key is held")
	f.DurationVar(&c.hold, "hold", operator.DefaultHold, "a key counts as held this long after its press (covers the keyboard's auto-repeat delay)")
	f.DurationVar(&c.repeatHold, "repeat-hold", operator.DefaultRepeatHold, "and this long after each auto-repeat")
	f.Float64Var(&c.maxLinear, "max-linear", operator.DefaultMaxLinear, "linear speed of the top step, m/s")
	f.Float64Var(&c.maxAngular, "max-angular", operator.DefaultMaxAngular, "angular speed of the top step, rad/s")
	f.IntVar(&c.step, "step", operator.DefaultStep, "initial speed step")
	f.IntVar(&c.steps, "steps", operator.DefaultSteps, "number of speed steps (1-9)")

	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := c.validate(); err != nil {
			return err
		}
		in, ok := cmd.InOrStdin().(*os.File)
		if !ok || !term.IsTerminal(int(in.Fd())) {
			return errors.New("teleop drive reads keys from a terminal, and stdin is not one (to send signals from a script, use `teleop signal`)")
		}
		server, token, err := sf.resolve(cmd)
		if err != nil {
			return err
		}
		return runDrive(cmd.Context(), in, cmd.OutOrStdout(), cmd.ErrOrStderr(), server, token, sf, &c)
	}
	return cmd
}

func (c *driveConfig) validate() error {
	switch {
	case c.rate <= 0 || c.rate > 100:
		return fmt.Errorf("--rate %v: want more than 0 and at most 100 per second", c.rate)
	case c.hold <= 0 || c.repeatHold <= 0:
		return errors.New("--hold and --repeat-hold must be positive")
	case c.maxLinear <= 0 || c.maxAngular <= 0:
		return errors.New("--max-linear and --max-angular must be positive")
	case c.steps < 1 || c.steps > 9:
		return fmt.Errorf("--steps %d: want 1 to 9 (the digit keys choose a step)", c.steps)
	case c.step < 1 || c.step > c.steps:
		return fmt.Errorf("--step %d: want 1 to %d", c.step, c.steps)
	}
	return nil
}

// runDrive owns the terminal for the command's life: raw mode on in, the
// screen on out, restored on every way out (q, Ctrl-C, SIGINT, SIGTERM,
// SIGHUP, a refused token, the session's end, a panic in this goroutine).
func runDrive(ctx context.Context, in *os.File, out, stderr io.Writer, server, token string, sf *sessionFlags, c *driveConfig) (err error) {
	ctx, stopSignals := signal.NotifyContext(ctx, syscall.SIGHUP)
	defer stopSignals()

	// Log lines would tear the screen: keep them, print them afterwards.
	logs := &tailBuffer{limit: 64 << 10}
	defer func() {
		if b := logs.Bytes(); len(b) > 0 {
			stderr.Write(b)
		}
	}()

	fd := int(in.Fd())
	saved, err := term.MakeRaw(fd)
	if err != nil {
		return fmt.Errorf("put the terminal in raw mode: %w", err)
	}
	scr := newScreen(out, func() int { return termWidth(out, fd) })
	defer func() {
		scr.close()
		term.Restore(fd, saved)
	}()
	scr.header(helpLines(c.steps)...)

	// The sender calls the session; the Driver's Send only queues.
	sess := signaling.NewSession(&signaling.Options{Logger: sf.logger(logs)})
	snd := newSignalSender(sess)
	d := operator.NewDriver(&operator.Options{
		Send:       snd.enqueue,
		Rate:       time.Duration(float64(time.Second) / c.rate),
		Hold:       c.hold,
		RepeatHold: c.repeatHold,
		MaxLinear:  c.maxLinear,
		MaxAngular: c.maxAngular,
		Steps:      c.steps,
		Step:       c.step,
		To:         c.to,
	})
	snd.failed = d.SendFailed
	link := newDriveLink(sess, d)
	info := screenInfo{server: server}

	sendCtx, cancelSends := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); snd.run(sendCtx) }()
	defer func() {
		d.Close() // a held key's stop
		if !snd.drain(time.Second) {
			fmt.Fprintf(logs, "teleop drive: %d signals not sent at exit\n", snd.pending())
		}
		cancelSends()
		wg.Wait()
		sess.Close()
		d.SetLink(operator.LinkDisconnected, "")
		v := d.View()
		scr.status(statusLines(v, info))
		if v.Robot.ID == "" && len(v.Robots) > 1 {
			fmt.Fprintf(logs, "%d robots in session %s; pass --to with one of:\n", len(v.Robots), info.session)
			for _, r := range v.Robots {
				fmt.Fprintf(logs, "  %s  %s\n", r.ID, r.Name)
			}
		}
	}()

	// Keys. A read of a terminal cannot be interrupted, so this goroutine
	// is the one nobody waits for: it ends with the process.
	keys := make(chan operator.Key, 256)
	go readKeys(in, keys)

	connectCtx, cancelConnect := context.WithCancel(ctx)
	defer cancelConnect()
	connected := make(chan error, 1)
	go func() { connected <- sess.Connect(connectCtx, server, token) }()
	connecting := true
	defer func() {
		if connecting {
			cancelConnect()
			<-connected
		}
	}()

	redraw := time.NewTicker(time.Second) // notes and rejections expire
	defer redraw.Stop()
	var ended <-chan struct{}
	render := func() { scr.status(statusLines(d.View(), info)) }
	render()
	for {
		select {
		case <-ctx.Done():
			return nil
		case k, ok := <-keys:
			if !ok {
				return errors.New("the terminal closed")
			}
			switch k {
			case 'q', 'Q', operator.KeyCtrlC, operator.KeyCtrlD:
				return nil
			}
			d.Key(k)
		case err := <-connected:
			connecting = false
			if err != nil {
				return connectError(server, err)
			}
			info.session, info.self = sess.SessionID(), sess.ID()
			info.name = operator.Name(sess.Connection())
			link.connected()
			ended = sess.Done()
		case <-ended:
			return fmt.Errorf("the session ended: %s", endReason(sess.Err()))
		case <-d.Changed():
			render()
		case <-redraw.C:
			render()
		}
	}
}

// connectError explains a failed first connect.
func connectError(server string, err error) error {
	var se *signaling.Error
	if errors.As(err, &se) {
		switch se.Code {
		case signaling.CodeUnauthorized:
			return fmt.Errorf("the relay at %s refused the token: %s", server, se.Message)
		case signaling.CodeSessionFull:
			return fmt.Errorf("the session is full: %s", se.Message)
		}
	}
	return fmt.Errorf("no connection to the relay: %w", err)
}

// endReason says why a session ended for good.
func endReason(err error) string {
	var se *signaling.Error
	var ce *signaling.CloseError
	switch {
	case err == nil:
		return "closed"
	case errors.As(err, &se) && se.Code == signaling.CodeUnauthorized:
		return "the relay refused the token: " + se.Message
	case errors.As(err, &ce) && ce.Code == signaling.CloseForceDisconnect:
		return "removed from the session by a moderator"
	case errors.As(err, &ce) && ce.Code == signaling.CloseSuperseded:
		return "another client connected with the same resume key"
	}
	return err.Error()
}

// readKeys decodes the terminal's input into keys until it fails.
func readKeys(in io.Reader, keys chan<- operator.Key) {
	defer close(keys)
	var dec operator.Decoder
	buf := make([]byte, 256)
	var ks []operator.Key
	for {
		n, err := in.Read(buf)
		ks = dec.Feed(ks[:0], buf[:n])
		for _, k := range ks {
			keys <- k
		}
		if err != nil {
			return
		}
	}
}

// driveLink feeds the session's connection state to the Driver. The state
// after Connect and the handlers' events are applied under one lock, so a
// drop that the handlers report right after Connect is not overwritten by
// "connected".
type driveLink struct {
	s  *signaling.Session
	d  *operator.Driver
	mu sync.Mutex
	// Guarded by mu.
	lifecycle bool // a reconnecting, reconnected or disconnected event came
}

func newDriveLink(s *signaling.Session, d *operator.Driver) *driveLink {
	l := &driveLink{s: s, d: d}
	s.OnSignal(d.Received)
	s.OnConnectionCreated(func(signaling.Connection) { l.conns() })
	s.OnConnectionDestroyed(func(signaling.Connection, string) { l.conns() })
	s.OnReconnecting(func(err error) {
		l.event(func() { d.SetLink(operator.LinkReconnecting, err.Error()) })
	})
	s.OnReconnected(func(r signaling.Reconnected) {
		l.event(func() {
			if !r.Resumed {
				// A new connection: the lease, if we held it, is gone.
				d.SetSelf(r.Connection.ConnectionID)
				d.SetConnections(s.Connections())
			}
			d.SetLink(operator.LinkConnected, "")
		})
	})
	s.OnDisconnected(func(err error) {
		l.event(func() { d.SetLink(operator.LinkDisconnected, endReason(err)) })
	})
	return l
}

func (l *driveLink) event(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lifecycle = true
	f()
}

func (l *driveLink) conns() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.d.SetConnections(l.s.Connections())
}

// connected runs once Connect has returned.
func (l *driveLink) connected() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.d.SetSelf(l.s.ID())
	l.d.SetConnections(l.s.Connections())
	if !l.lifecycle {
		l.d.SetLink(operator.LinkConnected, "")
	}
}

// signalSender sends the Driver's signals one at a time, in order, so the
// relay sees them in the order the Driver made them. Its queue keeps only
// the newest drive (a drive still queued when a newer one, a stop or an
// e-stop comes is dropped: newer wins), and an e-stop goes to the front.
// Sends that fail are reported to failed.
type signalSender struct {
	s      *signaling.Session
	failed func(signaling.Signal, error) // set before run
	wake   chan struct{}                 // cap 1

	mu sync.Mutex
	// Guarded by mu.
	queue    []signaling.Signal
	inFlight bool
	idle     chan struct{} // closed when the queue is empty and nothing is in flight; nil otherwise
}

// senderLimit bounds the queue. The sender falls behind only while a stop
// or e-stop waits for a reconnect; drives are not made then.
const senderLimit = 256

func newSignalSender(s *signaling.Session) *signalSender {
	return &signalSender{s: s, wake: make(chan struct{}, 1)}
}

// enqueue is the Driver's Send: it never blocks.
func (q *signalSender) enqueue(sig signaling.Signal) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if sig.Type == operator.TypeDrive || sig.Type == operator.TypeStop || sig.Type == operator.TypeEstop {
		q.dropLocked(func(s signaling.Signal) bool { return s.Type == operator.TypeDrive })
	}
	if sig.Type == operator.TypeEstop {
		q.queue = append([]signaling.Signal{sig}, q.queue...)
	} else {
		q.queue = append(q.queue, sig)
	}
	if len(q.queue) > senderLimit {
		// Drop the oldest signal that is neither a stop nor an e-stop.
		for i, s := range q.queue {
			if s.Type != operator.TypeStop && s.Type != operator.TypeEstop {
				q.queue = append(q.queue[:i], q.queue[i+1:]...)
				break
			}
		}
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *signalSender) dropLocked(match func(signaling.Signal) bool) {
	kept := q.queue[:0]
	for _, s := range q.queue {
		if !match(s) {
			kept = append(kept, s)
		}
	}
	clear(q.queue[len(kept):])
	q.queue = kept
}

// run sends until ctx ends.
func (q *signalSender) run(ctx context.Context) {
	for {
		q.mu.Lock()
		if len(q.queue) == 0 {
			q.inFlight = false
			if q.idle != nil {
				close(q.idle)
				q.idle = nil
			}
			q.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
				continue
			}
		}
		sig := q.queue[0]
		q.queue = q.queue[1:]
		q.inFlight = true
		q.mu.Unlock()

		if err := q.s.Signal(ctx, sig); err != nil && ctx.Err() == nil && q.failed != nil {
			q.failed(sig, err)
		}
	}
}

// drain waits up to d for the queue to empty. It reports false when
// signals were still waiting.
func (q *signalSender) drain(d time.Duration) bool {
	q.mu.Lock()
	if len(q.queue) == 0 && !q.inFlight {
		q.mu.Unlock()
		return true
	}
	if q.idle == nil {
		q.idle = make(chan struct{})
	}
	idle := q.idle
	q.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-idle:
		return true
	case <-t.C:
		return false
	}
}

func (q *signalSender) pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.queue)
	if q.inFlight {
		n++
	}
	return n
}

// tailBuffer keeps the last limit bytes written to it.
type tailBuffer struct {
	mu    sync.Mutex
	limit int
	b     []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.limit; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]byte(nil), t.b...)
}
