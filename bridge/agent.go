package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/teleop/teleop/clock"
	"github.com/teleop/teleop/devices"
	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/token"
)

// AgentOptions are the parts of an Agent that are not configuration. A nil
// *AgentOptions means all defaults.
type AgentOptions struct {
	Logger *slog.Logger // nil discards
	// Clock drives the agent's timers (deadman, lease idle, max age, rate
	// limits, status and telemetry pacing), the session client's (backoff,
	// liveness, signal ages) and the devices' unless Device says otherwise.
	// Nil is the wall clock.
	Clock clock.Clock
	// Registry receives the agent's metrics. Nil: a private registry with
	// the Go and process collectors too (Agent.Registry returns it).
	Registry *prometheus.Registry
	// Device, when set, adjusts a device's configuration and options before
	// it is opened (tests: a shorter boot wait; the wall clock for the serial
	// link while the agent's clock is fake). The callbacks in opts are the
	// agent's and are set after it.
	Device func(name string, cfg *devices.Config, opts *devices.Options)
	// Session, when set, adjusts the session client's options (tests: a
	// dialer that can cut the connection).
	Session func(opts *signaling.Options)
}

// Agent joins a signaling session for a robot: it maps operators' signals
// to serial commands on the robot's devices, acks each one to its sender,
// forwards telemetry, broadcasts status, and enforces the five safety
// invariants of DESIGN.md around all that (docs/agent.md).
//
// NewAgent checks the configuration; Run opens the devices, joins the
// session and serves until its context ends. Status may be called at any
// time.
type Agent struct {
	cfg     *Config
	mapper  *Mapper
	opts    AgentOptions
	baseLog *slog.Logger // the caller's logger; devices add their own attributes
	log     *slog.Logger // component=agent
	clk     clock.Clock
	reg     *prometheus.Registry
	m       *agentMetrics
	out     *outbox
	status  *statusPub

	devs      []*agentDevice // config order
	devByName map[string]*agentDevice

	running atomic.Bool
	wg      sync.WaitGroup // e-stop writers and lease/telemetry timer work in flight

	mu sync.Mutex // guards everything below
	// Lock order: Agent.mu, then agentDevice.mu. Nothing is called on the
	// session or a device with either held, except the device's State.
	sess       *signaling.Session
	self       string            // our connection ID
	conns      map[string]string // the session's connections: ID → data
	connected  bool
	backAt     time.Time // the last reconnect: setpoints sent before it are refused
	closing    bool
	lease      lease
	leaseTimer clock.Timer
	buckets    map[bucketKey]*bucket
	latchBy    string // who latched the newest e-stop
}

// Timing of the agent's own work.
const (
	statusDebounce = 100 * time.Millisecond // status bursts are coalesced within this
	ackFlushWait   = time.Second
	joinBackoffMin = 250 * time.Millisecond
	joinBackoffMax = 5 * time.Second
)

// NewAgent checks cfg (as Load or Parse returned it; a Config built in Go
// needs ApplyDefaults first) and returns an Agent that has not started.
func NewAgent(cfg *Config, opts *AgentOptions) (*Agent, error) {
	mapper, err := NewMapper(cfg)
	if err != nil {
		return nil, err
	}
	var o AgentOptions
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	private := o.Registry == nil
	if private {
		o.Registry = prometheus.NewRegistry()
	}
	m, err := newAgentMetrics(o.Registry, private)
	if err != nil {
		return nil, fmt.Errorf("agent metrics: %w", err)
	}
	a := &Agent{
		cfg:       cfg,
		mapper:    mapper,
		opts:      o,
		baseLog:   o.Logger,
		log:       o.Logger.With("component", "agent"),
		clk:       clock.Or(o.Clock),
		reg:       o.Registry,
		m:         m,
		devByName: map[string]*agentDevice{},
		conns:     map[string]string{},
		buckets:   map[bucketKey]*bucket{},
		lease: lease{
			exclusive: cfg.Safety.Lease == LeaseExclusive,
			idle:      cfg.Safety.LeaseIdle.D(),
		},
	}
	a.out = newOutbox(a)
	a.status = newStatusPub(a)
	for _, dc := range cfg.Devices {
		d := newAgentDevice(a, dc)
		a.devs = append(a.devs, d)
		a.devByName[dc.Name] = d
		m.deviceUp.WithLabelValues(dc.Name).Set(0)
	}
	return a, nil
}

// Connection returns the agent's connection ID in the session, "" while
// it is not connected (before it joined, while it reconnects, after Run).
func (a *Agent) Connection() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.connected {
		return ""
	}
	return a.self
}

// Registry is where the agent's metrics are registered.
func (a *Agent) Registry() *prometheus.Registry { return a.reg }

// Run opens every device, joins the session (retrying until it gets in,
// or until a refused token or role, which are returned as errors) and
// serves until ctx ends. Then it stops every device, answers the signals
// still pending, leaves the session and returns nil. It returns an error
// when a device cannot be set up or the session ends for good (refused
// token on reconnect, forced disconnect), after stopping the devices.
// Run may be called once.
func (a *Agent) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("agent: Run called twice")
	}
	// The devices and workers outlive ctx until the shutdown is done.
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	for i, d := range a.devs {
		if err := d.open(runCtx); err != nil {
			cancelRun()
			for _, o := range a.devs[:i] {
				o.device().Close()
			}
			return err
		}
	}

	workCtx, cancelWork := context.WithCancel(runCtx)
	defer cancelWork()
	var workers errgroup.Group
	for _, d := range a.devs {
		workers.Go(func() error { d.run(workCtx); return nil })
		workers.Go(func() error { d.runOneshots(workCtx); return nil })
	}
	var loops errgroup.Group
	loops.Go(func() error { a.status.run(runCtx); return nil })

	sess := a.newSession()
	a.mu.Lock()
	a.sess = sess
	a.mu.Unlock()
	a.out.start(sess)

	var runErr error
	if err := a.join(ctx, sess); err != nil {
		if ctx.Err() == nil {
			runErr = err
		}
	} else {
		a.joined(sess)
		select {
		case <-ctx.Done():
			a.log.Info("stopping")
		case <-sess.Done():
			runErr = fmt.Errorf("session ended: %w", sess.Err())
			a.log.Error("session ended for good", "err", sess.Err())
		}
	}

	a.shutdown(sess, cancelWork, &workers)
	cancelRun()
	loops.Wait()
	a.wg.Wait()
	return runErr
}

// shutdown is the end of Run: nothing new is taken, what waits is
// answered, every device is stopped and closed, the last acks go out, and
// the agent leaves the session.
func (a *Agent) shutdown(sess *signaling.Session, cancelWork context.CancelFunc, workers *errgroup.Group) {
	start := time.Now()
	a.mu.Lock()
	a.closing = true
	if a.leaseTimer != nil {
		a.leaseTimer.Stop()
	}
	a.mu.Unlock()

	// 1. Nothing new goes to a device: the waiting setpoint is refused, the
	// one being submitted is given up (if it is not on the wire yet, it
	// never will be), the workers end and answer what still waited.
	why := rejected(CodeShutdown, "agent stopping")
	for _, d := range a.devs {
		d.mu.Lock()
		d.closed = true
		old := d.supersedeLocked(why)
		d.disarmDeadmanLocked()
		d.mu.Unlock()
		if old != nil {
			a.finish(old, why)
		}
	}
	cancelWork()
	workers.Wait()
	a.wg.Wait()

	// 2. Stop every device, all at once: Close sends STOP first (unless
	// safety.stop_on_shutdown is off), after anything already on the
	// wire, then closes the port.
	var closing sync.WaitGroup
	for _, d := range a.devs {
		if dev := d.device(); dev != nil {
			closing.Add(1)
			go func() {
				defer closing.Done()
				if *dev.Config().StopOnClose {
					d.log.Info("stop", "why", "shutdown")
				}
				dev.Close()
			}()
		}
	}
	closing.Wait()

	// 3. The last acks, then leave.
	a.out.close(ackFlushWait)
	sess.Close()
	a.mu.Lock()
	a.connected = false
	a.mu.Unlock()
	a.log.Info("stopped", "took", time.Since(start).Round(time.Millisecond))
}

// ---- the session ----

func (a *Agent) newSession() *signaling.Session {
	so := signaling.Options{Logger: a.baseLog, Clock: a.clk, TokenSource: a.tokenSource(), Fallbacks: a.cfg.Session.FallbackServers}
	if a.opts.Session != nil {
		a.opts.Session(&so)
	}
	s := signaling.NewSession(&so)
	s.OnSignal(a.onSignal)
	s.OnConnectionCreated(a.onConnectionCreated)
	s.OnConnectionDestroyed(a.onConnectionDestroyed)
	s.OnReconnecting(a.onReconnecting)
	s.OnReconnected(a.onReconnected)
	s.OnDisconnected(a.onDisconnected)
	return s
}

// tokenSource returns the session client's token source: the token file,
// re-read before every connect, or a token minted before every connect;
// nil for a fixed token.
func (a *Agent) tokenSource() func(context.Context) (string, error) {
	s := &a.cfg.Session
	switch {
	case s.TokenFile != "":
		return func(context.Context) (string, error) {
			b, err := os.ReadFile(s.TokenFile)
			if err != nil {
				return "", fmt.Errorf("read token file: %w", err)
			}
			tok := strings.TrimSpace(string(b))
			if tok == "" {
				return "", fmt.Errorf("token file %s is empty", s.TokenFile)
			}
			return tok, nil
		}
	case s.APIKey != "":
		data := robotConnData(s.ConnectionData, a.cfg.Access.RoleKey)
		return func(context.Context) (string, error) {
			return token.New(s.APIKey, s.APISecret, s.SessionID, &token.Options{
				Role: token.Role(s.Role), ConnectionData: data, TTL: s.TokenTTL.D(), Now: a.clk.Now(),
			})
		}
	}
	return nil
}

// robotConnData is the connection data of a minted token: it names the
// robot and says role=robot, so consoles tell it from operators.
func robotConnData(data, roleKey string) string {
	if strings.TrimSpace(data) == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "robot"
		}
		return roleKey + "=robot,name=" + host
	}
	if RoleOf(data, roleKey) != "" || strings.HasPrefix(strings.TrimSpace(data), "{") {
		return data
	}
	return roleKey + "=robot," + data
}

// join connects, retrying with backoff until it gets in or ctx ends. A
// refused token or role ends it, unless the token comes from a file that
// may be rotated meanwhile.
func (a *Agent) join(ctx context.Context, sess *signaling.Session) error {
	server := a.cfg.Session.Server
	tok := a.cfg.Session.Token
	wait := time.Duration(0)
	for attempt := 1; ; attempt++ {
		err := sess.Connect(ctx, server, tok)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var se *signaling.Error
		if errors.As(err, &se) && (se.Code == signaling.CodeUnauthorized || se.Code == signaling.CodeForbidden) &&
			a.cfg.Session.TokenFile == "" {
			return fmt.Errorf("join the session at %s: %w", server, err)
		}
		wait = min(max(2*wait, joinBackoffMin), joinBackoffMax)
		d := wait - time.Duration(rand.Int64N(int64(wait/4)+1))
		a.log.Warn("cannot join the session; retrying", "server", server, "attempt", attempt, "err", err, "in", d.Round(time.Millisecond))
		t := a.clk.NewTimer(d)
		select {
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// joined records the connection and announces the agent's status.
func (a *Agent) joined(sess *signaling.Session) {
	self := sess.ID()
	a.mu.Lock()
	a.self, a.connected = self, true
	for _, c := range sess.Connections() {
		a.conns[c.ConnectionID] = c.Data
	}
	a.mu.Unlock()
	a.log.Info("joined the session", "session", sess.SessionID(), "connection", self, "role", sess.Role())
	if data := sess.Connection().Data; RoleOf(data, a.cfg.Access.RoleKey) != "robot" {
		a.log.Warn("the agent's connection data does not say "+a.cfg.Access.RoleKey+"=robot; consoles tell robots from operators by it",
			"data", data)
	}
	a.status.force("")
}

func (a *Agent) onConnectionCreated(c signaling.Connection) {
	a.mu.Lock()
	a.conns[c.ConnectionID] = c.Data
	a.mu.Unlock()
	a.status.force(c.ConnectionID) // a newcomer learns the state at once
}

func (a *Agent) onConnectionDestroyed(c signaling.Connection, reason string) {
	a.mu.Lock()
	delete(a.conns, c.ConnectionID)
	for k := range a.buckets {
		if k.from == c.ConnectionID {
			delete(a.buckets, k)
		}
	}
	ended := a.lease.drop(c.ConnectionID)
	a.mu.Unlock()
	if ended {
		a.leaseEnded(c.ConnectionID, leaseLeft)
	}
}

// onReconnecting: the link to the relay is lost. The robot stops first;
// nothing resumes by itself.
func (a *Agent) onReconnecting(err error) {
	a.log.Warn("session lost; stopping every device", "err", err)
	a.mu.Lock()
	a.connected = false
	a.mu.Unlock()
	a.stopAll("session lost", rejected(CodeSessionLost, "the agent lost its session"), *a.cfg.Safety.StopOnSessionLoss)
}

func (a *Agent) onReconnected(r signaling.Reconnected) {
	now := a.clk.Now()
	a.m.sessionReconnects.WithLabelValues(fmt.Sprint(r.Resumed)).Inc()
	a.mu.Lock()
	a.connected, a.backAt = true, now
	var lost string
	if !r.Resumed {
		a.self = r.Connection.ConnectionID
		clear(a.conns)
		for _, c := range r.Connections {
			a.conns[c.ConnectionID] = c.Data
		}
		if h := a.lease.holder; h != "" {
			if _, ok := a.conns[h]; !ok && a.lease.drop(h) {
				lost = h
			}
		}
	}
	a.mu.Unlock()
	a.log.Info("session back", "resumed", r.Resumed, "missed", r.Missed, "downtime", r.Downtime.Round(time.Millisecond))
	if lost != "" {
		a.leaseEnded(lost, leaseLost)
	}
	a.status.force("")
}

func (a *Agent) onDisconnected(err error) {
	if err == nil {
		return // Close: the shutdown has stopped the devices already
	}
	a.mu.Lock()
	a.connected = false
	a.mu.Unlock()
	a.stopAll("session ended", rejected(CodeSessionLost, "the agent's session ended"), true)
}

// stopAll stops every device ahead of anything queued (when stop is true),
// refusing the waiting setpoints with why.
func (a *Agent) stopAll(reason string, why outcome, stop bool) {
	for _, d := range a.devs {
		if stop {
			d.stop(ctlOp{why: reason}, why, true)
			continue
		}
		d.mu.Lock()
		old := d.supersedeLocked(why)
		d.disarmDeadmanLocked()
		d.mu.Unlock()
		if old != nil {
			a.finish(old, why)
		}
	}
}

// ---- the lease ----

// armLeaseLocked (re)arms the idle timer for the current holder.
func (a *Agent) armLeaseLocked() {
	if a.leaseTimer != nil {
		a.leaseTimer.Stop()
		a.leaseTimer = nil
	}
	until := a.lease.idleUntil()
	if until.IsZero() || a.closing {
		return
	}
	a.leaseTimer = a.clk.AfterFunc(until.Sub(a.clk.Now()), a.leaseCheck)
}

// leaseCheck ends an idle lease, or re-arms for the holder's latest signal.
func (a *Agent) leaseCheck() {
	a.mu.Lock()
	was, ended := a.lease.expire(a.clk.Now())
	if !ended {
		a.armLeaseLocked()
	}
	a.mu.Unlock()
	if ended {
		a.leaseEnded(was, leaseIdle)
	}
}

// leaseEnded reacts to a lease that ended: the devices that may still be
// moving on the old holder's input stop, and status says so.
func (a *Agent) leaseEnded(was string, why leaseEnd) {
	a.mu.Lock()
	holder := a.lease.holder
	a.mu.Unlock()
	a.log.Info("lease ended", "holder", was, "why", string(why), "new_holder", holder)
	if holder == "" {
		a.m.leaseHeld.Set(0)
	}
	for _, d := range a.devs {
		if d.moving() {
			d.stop(ctlOp{why: "lease " + string(why)}, outcome{status: AckSuperseded, code: CodeLease, reason: "the lease ended"}, true)
		}
	}
	a.changed(true)
}

// connData is the connection data of a connection in the session. A
// connection the agent has not recorded yet (a signal handled just before
// joined ran) is looked up in the session's own list.
func (a *Agent) connData(id string) (string, bool) {
	if id == "" {
		return "", false
	}
	a.mu.Lock()
	d, ok := a.conns[id]
	sess := a.sess
	a.mu.Unlock()
	if ok || sess == nil {
		return d, ok
	}
	for _, c := range sess.Connections() {
		if c.ConnectionID == id {
			return c.Data, true
		}
	}
	return "", false
}
