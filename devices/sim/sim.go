package sim

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync"
	"time"

	"github.com/teleop/teleop/clock"
	"github.com/teleop/teleop/devices/proto"
)

// DefaultLink is where `teleop sim` keeps a symlink to its current pty, and
// the port the demo configuration names (TELEOP_PORT). The pty path changes
// on every start and replug; the link does not.
const DefaultLink = "/tmp/teleop-sim"

// Version is the firmware version the simulator announces in HELLO.
const Version = "0.1.0"

// Options configure a Robot. The zero value (or nil) is a robot like the
// reference Uno build: 0.3 m track, 1 m/s wheels, watchdog 500 ms, 10 Hz
// telemetry, one output "lights", no link.
type Options struct {
	Clock  clock.Clock  // time of the model: watchdog, telemetry, pose; nil = wall clock
	Logger *slog.Logger // nil = discard
	Link   string       // symlink kept pointing at the current pty slave; "" = none

	FW    string // HELLO fw=; default "teleop-sim/" + Version
	Board string // HELLO board=; default "sim"
	RX    int    // receive buffer in bytes, HELLO rx=; default 64 (≥ 64)

	TrackWidth float64 // wheel separation, m; default 0.3
	MaxWheel   float64 // wheel speed limit, m/s; default 1.0 (also the max_lin cap)
	MaxLinear  float64 // boot value of max_lin, m/s; default 1.0
	MaxAngular float64 // boot value of max_ang, rad/s; default 4.0
	WdogMs     int     // boot value of wdog_ms; default 500
	TLMHz      int     // boot value of tlm_hz; default 10; -1 means 0 (off)

	Outputs []string // OUT names (values 0 or 1); default ["lights"]

	BatteryFull  float64 // V at boot; default 12.6
	BatteryEmpty float64 // V floor; default 10.5
	DrainIdle    float64 // V/s; default 0.00002
	DrainMoving  float64 // V/s per m/s of mean wheel speed; default 0.0003

	Seed uint64 // randomness of the byte faults
}

func (o *Options) normalize() (Options, error) {
	var n Options
	if o != nil {
		n = *o
	}
	n.Clock = clock.Or(n.Clock)
	if n.Logger == nil {
		n.Logger = slog.New(slog.DiscardHandler)
	}
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	if n.FW == "" {
		n.FW = "teleop-sim/" + Version
	}
	if n.Board == "" {
		n.Board = "sim"
	}
	if n.RX == 0 {
		n.RX = proto.MaxCommandLine
	}
	def(&n.TrackWidth, 0.3)
	def(&n.MaxWheel, 1.0)
	def(&n.MaxLinear, 1.0)
	def(&n.MaxAngular, 4.0)
	def(&n.BatteryFull, 12.6)
	def(&n.BatteryEmpty, 10.5)
	def(&n.DrainIdle, 0.00002)
	def(&n.DrainMoving, 0.0003)
	if n.WdogMs == 0 {
		n.WdogMs = 500
	}
	switch n.TLMHz {
	case 0:
		n.TLMHz = 10
	case -1:
		n.TLMHz = 0
	}
	if n.Outputs == nil {
		n.Outputs = []string{"lights"}
	}
	var errs []error
	if n.RX < proto.MaxCommandLine {
		errs = append(errs, fmt.Errorf("rx %d: at least %d", n.RX, proto.MaxCommandLine))
	}
	if n.TrackWidth <= 0 || n.MaxWheel <= 0 || n.MaxLinear <= 0 || n.MaxAngular <= 0 {
		errs = append(errs, errors.New("track width and speed limits must be > 0"))
	}
	if n.MaxLinear > n.MaxWheel {
		errs = append(errs, fmt.Errorf("max linear %g above max wheel %g", n.MaxLinear, n.MaxWheel))
	}
	if n.WdogMs < 50 || n.WdogMs > 5000 {
		errs = append(errs, fmt.Errorf("wdog_ms %d: 50-5000", n.WdogMs))
	}
	if n.TLMHz < 0 || n.TLMHz > 50 {
		errs = append(errs, fmt.Errorf("tlm_hz %d: 0-50", n.TLMHz))
	}
	for _, o := range n.Outputs {
		if !validOutput(o) {
			errs = append(errs, fmt.Errorf("output name %q: lower-case letters, digits, _", o))
		}
	}
	if l := len(proto.AppendHello(nil, n.hello())); l > proto.MaxDeviceLine {
		errs = append(errs, fmt.Errorf("HELLO would be %d bytes, over %d", l, proto.MaxDeviceLine))
	}
	return n, errors.Join(errs...)
}

func validOutput(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return s[0] >= 'a' && s[0] <= 'z'
}

func (o *Options) hello() proto.Hello {
	caps := []string{"vel", "hb"}
	for _, out := range o.Outputs {
		caps = append(caps, "out:"+out)
	}
	caps = append(caps, "tlm", "estop", "strict", "pose", "bat")
	return proto.Hello{Major: proto.ProtoMajor, Minor: proto.ProtoMinor, FW: o.FW, Board: o.Board, RX: o.RX, Caps: caps}
}

// Mode is the robot's protocol state (§8).
type Mode uint8

const (
	Ready    Mode = iota // RDY
	Failsafe             // FS: the watchdog cut motion (it runs only at a non-zero setpoint)
	Estop                // ES: e-stop latched
)

func (m Mode) String() string {
	switch m {
	case Ready:
		return "RDY"
	case Failsafe:
		return "FS"
	case Estop:
		return "ES"
	}
	return fmt.Sprintf("mode%d", uint8(m))
}

// Settings are the values SET changes.
type Settings struct {
	WdogMs     int
	TLMHz      int
	Strict     bool
	MaxLinear  float64
	MaxAngular float64
}

// State is a snapshot of the robot for tests and displays.
type State struct {
	Mode            Mode
	Latched         bool    // outputs held off by an e-stop ('!' seen, CLEAR not yet run)
	Linear, Angular float64 // applied body setpoint after clamping, m/s and rad/s
	Left, Right     float64 // wheel speed setpoints, m/s
	X, Y, Theta     float64 // pose, m, m, rad in (-π, π]
	Battery         float64 // V
	LastSeq         uint16  // lseq: newest applied setpoint, 0 = none
	Settings        Settings
	Outputs         map[string]int
	Executed        uint64 // one-shot commands run (not answered from the cache)
	Replayed        uint64 // one-shot commands answered from the reply cache
	Setpoints       uint64 // VEL and HB applied
	Overflows       int    // receive-buffer overflows since boot (TLM ovf)
	Boots           int    // HELLO banners at boot: 1 + resets + replugs
	LinesDropped    uint64 // device lines the writer could not send (host not reading)
	Plugged         bool
	Path            string // pty slave path; "" while unplugged
	Uptime          time.Duration
}

// Robot is a running simulated robot. Close stops it.
type Robot struct {
	opts   Options
	clk    clock.Clock
	log    *slog.Logger
	faults *Faults
	hello  proto.Hello

	prio chan []byte // '?' telemetry: jumps the queue, never splits a line
	out  chan []byte // every other device line, in order
	reqs chan func() // run on the model goroutine
	quit chan struct{}
	wg   sync.WaitGroup // the model goroutine
	once sync.Once

	mu  sync.Mutex
	dev device      // guarded by mu
	ep  *epoch      // guarded by mu; nil while unplugged
	rxq chan rxItem // guarded by mu; lines from the reader to the model, replaced at each boot

	replugAt time.Time // guarded by mu; when an unplugged robot comes back (zero: never)
	spare    *spare    // guarded by mu; the pty an unplugged robot comes back on
	batching bool      // guarded by mu; the model is handling an event: emit into batch
	batch    [][]byte  // guarded by mu
}

// New starts a robot on a new pty: it boots (HELLO) right away.
func New(opts *Options) (*Robot, error) {
	o, err := opts.normalize()
	if err != nil {
		return nil, fmt.Errorf("sim options: %w", err)
	}
	r := &Robot{
		opts:  o,
		clk:   o.Clock,
		log:   o.Logger.With("component", "sim"),
		hello: o.hello(),
		prio:  make(chan []byte, 16),
		out:   make(chan []byte, 256),
		reqs:  make(chan func()),
		quit:  make(chan struct{}),
	}
	r.faults = newFaults(r, o.Seed)
	m := newModel(r)
	r.mu.Lock()
	r.bootLocked("power-on")
	err = r.plugLocked()
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		m.run()
	}()
	return r, nil
}

// Path returns the pty slave path the host opens ("" while unplugged). It
// changes at every replug; Link does not.
func (r *Robot) Path() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ep == nil {
		return ""
	}
	return r.ep.path
}

// Link returns the symlink kept pointing at Path ("" when none was asked for).
func (r *Robot) Link() string { return r.opts.Link }

// Hello returns the banner the robot sends.
func (r *Robot) Hello() proto.Hello { return r.hello }

// Faults returns the fault knobs.
func (r *Robot) Faults() *Faults { return r.faults }

// State returns a snapshot, with the pose integrated up to now.
func (r *Robot) State() State {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := &r.dev
	now := r.clk.Now()
	d.integrate(now)
	s := State{
		Mode: d.state(), Latched: d.latched, Linear: d.lin, Angular: d.ang, Left: d.vl, Right: d.vr,
		X: d.x, Y: d.y, Theta: d.th, Battery: d.bat, LastSeq: d.lseq, Settings: d.cfg,
		Outputs:  make(map[string]int, len(d.outputs)),
		Executed: d.executed, Replayed: d.replayed, Setpoints: d.setpoints, Overflows: d.ovf,
		Boots: d.boots, LinesDropped: d.linesDropped, Plugged: r.ep != nil, Uptime: now.Sub(d.boot),
	}
	for k, v := range d.outputs {
		s.Outputs[k] = v
	}
	if r.ep != nil {
		s.Path = r.ep.path
	}
	return s
}

// Close unplugs the robot for good, removes its link and waits for its
// goroutines.
func (r *Robot) Close() error {
	r.once.Do(func() { close(r.quit) })
	r.wg.Wait()
	return nil
}

// do runs fn on the model goroutine with r.mu held and waits for it; it
// does nothing once the robot is closed.
func (r *Robot) do(fn func()) {
	done := make(chan struct{})
	select {
	case r.reqs <- func() { fn(); close(done) }:
		<-done
	case <-r.quit:
	}
}

// emit queues a device line; with the host not reading and the queue full,
// the line is lost (a UART does not wait either). Called with r.mu held.
// While the model handles an event its lines are held back until its timers
// match the new state, so a host that has read a reply may move a fake clock
// at once.
func (r *Robot) emit(line []byte) {
	if r.batching {
		r.batch = append(r.batch, line)
		return
	}
	r.send(line)
}

func (r *Robot) send(line []byte) {
	select {
	case r.out <- line:
	default:
		r.dev.linesDropped++
	}
}

// epoch is one plugged-in period: a pty pair and its reader and writer.
type epoch struct {
	master, slave *os.File
	path          string
	done          chan struct{}
	wg            sync.WaitGroup
}

// spare is a pty pair opened but not yet published: Unplug opens it before
// it closes the old pair, so the kernel (which hands out the lowest free
// number) cannot give the robot its old path back.
type spare struct {
	master, slave *os.File
}

func (s *spare) close() {
	s.master.Close()
	s.slave.Close()
}

// plugLocked puts the robot on a pty (the spare Unplug reserved, or a new
// one), points the link at it and starts the reader and writer.
func (r *Robot) plugLocked() error {
	sp := r.spare
	r.spare = nil
	if sp == nil {
		master, slave, err := openPTY()
		if err != nil {
			return err
		}
		sp = &spare{master: master, slave: slave}
	}
	ep := &epoch{master: sp.master, slave: sp.slave, path: sp.slave.Name(), done: make(chan struct{})}
	if r.opts.Link != "" {
		if err := pointLink(r.opts.Link, ep.path); err != nil {
			sp.close()
			return err
		}
	}
	r.ep = ep
	ep.wg.Add(2)
	go r.readLoop(ep)
	go r.writeLoop(ep)
	r.log.Info("plugged in", "path", ep.path, "link", r.opts.Link)
	return nil
}

// reserveLocked opens the spare pty for the next plug, unless there is one.
func (r *Robot) reserveLocked() {
	if r.spare != nil {
		return
	}
	master, slave, err := openPTY()
	if err != nil {
		// The replug opens one then; it may get the old path back.
		r.log.Warn("reserve a pty for the replug", "err", err)
		return
	}
	r.spare = &spare{master: master, slave: slave}
}

// dropSpareLocked closes the spare pty, if any.
func (r *Robot) dropSpareLocked() {
	if r.spare != nil {
		r.spare.close()
		r.spare = nil
	}
}

// unplugLocked closes the pty and waits for the reader and writer. The
// reader may be waiting for r.mu, so the lock is let go while waiting.
func (r *Robot) unplugLocked() {
	ep := r.ep
	if ep == nil {
		return
	}
	r.ep = nil
	if r.opts.Link != "" {
		removeLink(r.opts.Link, ep.path)
	}
	close(ep.done)
	ep.master.Close()
	ep.slave.Close()
	r.mu.Unlock()
	ep.wg.Wait()
	r.mu.Lock()
	r.log.Info("unplugged", "path", ep.path)
}

// readLoop plays the UART receive interrupt for one epoch.
func (r *Robot) readLoop(ep *epoch) {
	defer ep.wg.Done()
	buf := make([]byte, 512)
	var scratch []byte
	rx := rxState{line: make([]byte, 0, proto.MaxCommandLine)}
	for {
		if !r.faults.waitUnstalled(ep.done) {
			return
		}
		n, err := ep.master.Read(buf)
		if n > 0 {
			// A stall that began during the Read holds these bytes too.
			if !r.faults.waitUnstalled(ep.done) {
				return
			}
			r.receive(&rx, r.faults.apply(ToDevice, buf[:n], &scratch))
		}
		if err != nil {
			select {
			case <-ep.done:
			default:
				r.log.Warn("pty read", "err", err)
			}
			return
		}
	}
}

// writeLoop sends device lines for one epoch. A line that cannot be written
// within writeWait (the host is not reading and the pty is full) is dropped.
func (r *Robot) writeLoop(ep *epoch) {
	defer ep.wg.Done()
	var scratch []byte
	for {
		var line []byte
		select {
		case line = <-r.prio:
		default:
			select {
			case line = <-r.prio:
			case line = <-r.out:
			case <-ep.done:
				return
			}
		}
		b := r.faults.apply(ToHost, line, &scratch)
		if len(b) == 0 {
			continue
		}
		ep.master.SetWriteDeadline(time.Now().Add(writeWait))
		if _, err := ep.master.Write(b); err != nil {
			select {
			case <-ep.done:
				return
			default:
			}
			r.mu.Lock()
			r.dev.linesDropped++
			r.mu.Unlock()
		}
	}
}

const writeWait = 250 * time.Millisecond

func wrapAngle(a float64) float64 {
	a = math.Mod(a+math.Pi, 2*math.Pi)
	if a <= 0 {
		a += 2 * math.Pi
	}
	return a - math.Pi
}
