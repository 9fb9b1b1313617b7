package signaling

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/teleop/teleop/clock"
)

// Defaults of Options.
const (
	DefaultInitialBackoff   = 250 * time.Millisecond
	DefaultMaxBackoff       = 5 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultQueueLimit       = 256
	DefaultEventBuffer      = 1024
)

const (
	// backoffJitter spreads reconnect attempts by ±20 %.
	backoffJitter = 0.2
	// writeWait bounds one write to the socket.
	writeWait = 10 * time.Second
	// closeWait is how long Close waits for the relay to confirm a
	// disconnect before it drops the socket.
	closeWait = 2 * time.Second
	// defaultPingInterval stands in for limits.pingIntervalMs when a relay
	// does not announce it.
	defaultPingInterval = 9 * time.Second
	// maxReadBytes bounds one frame from the relay. A welcome lists every
	// connection of the session with its data, so it can be far larger than
	// MaxFrameBytes, which bounds what clients send.
	maxReadBytes = 8 << 20
)

// ErrQueueFull is returned by Session.Signal when Options.QueueLimit sends
// are already waiting for their result.
var ErrQueueFull = errors.New("signaling: send queue is full")

// Options configure a Session. The zero value (or nil) is usable.
type Options struct {
	// Logger receives the client's diagnostics. Nil discards them.
	Logger *slog.Logger

	// Clock drives reconnect backoff, the liveness watchdog, the time a
	// send waits in the reconnect queue (queuedMs) and Signal.Received.
	// Nil means clock.Real. Socket I/O deadlines use the wall clock.
	Clock clock.Clock

	// TokenSource, when set, is called for a token before every reconnect
	// attempt (and for the first connect when Dial's token is ""), so a
	// long-running client can reread a token file or mint a fresh token.
	// An error from it counts as a failed attempt. Nil reuses Dial's token.
	TokenSource func(ctx context.Context) (string, error)

	// InitialBackoff is the wait before the first reconnect attempt; it
	// doubles per failed attempt up to MaxBackoff. Each wait is jittered by
	// ±20 %. Defaults: 250 ms and 5 s.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration

	// ReconnectTimeout bounds how long the client keeps trying to
	// reconnect after losing its socket. Zero (the default) means forever:
	// the client gives up only on Close or when the relay refuses it for
	// good (a refused token, a forbidden role, a forced disconnect). That
	// is what an unattended agent wants. OpenTok's browser client gives up
	// after about 60 s; set 60*time.Second for that behaviour.
	ReconnectTimeout time.Duration

	// HandshakeTimeout bounds one connect: TCP, TLS, the WebSocket upgrade
	// and the welcome frame. Default 10 s.
	HandshakeTimeout time.Duration

	// QueueLimit bounds the sends that wait for their result, including
	// those queued while reconnecting. A Signal call beyond it fails at
	// once with ErrQueueFull. Default and maximum 256: the relay remembers
	// the outcome of the last 256 send ids of a connection, which is what
	// makes a resend after a lost result deliver at most once.
	QueueLimit int

	// EventBuffer bounds the events received but not yet handed to the
	// handlers. When it is full, the client keeps reading the socket
	// (results and pongs still arrive, so a handler may go on calling
	// Signal) but discards every further event on that socket without
	// counting it as received. Once the handlers have worked the buffer
	// down to half, the client drops the socket and resumes, and the relay
	// replays the discarded events from its replay buffer: nothing is lost
	// or reordered unless more events than the relay holds
	// (limits.replayFrames) were discarded, which Reconnected.Missed then
	// reports. Default 1024.
	EventBuffer int

	// NetDialContext, when set, dials the TCP connection (as in
	// net.Dialer.DialContext). Tests use it to hold the net.Conn and break
	// it.
	NetDialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// TLSClientConfig is used for https:// and wss:// relays.
	TLSClientConfig *tls.Config

	// Fallbacks are more relay URLs, the other nodes of a relay cluster
	// (docs/cluster.md), tried in order after the one given to Connect
	// when it cannot be reached: by Connect, and by every reconnect, which
	// starts with the relay last connected to and moves to the next after
	// each failed attempt. A connection resumes on any node of its cluster.
	Fallbacks []string
}

func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c.Clock = clock.Or(c.Clock)
	if c.InitialBackoff <= 0 {
		c.InitialBackoff = DefaultInitialBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.MaxBackoff < c.InitialBackoff {
		c.MaxBackoff = c.InitialBackoff
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.QueueLimit <= 0 || c.QueueLimit > DefaultQueueLimit {
		c.QueueLimit = DefaultQueueLimit
	}
	if c.EventBuffer <= 0 {
		c.EventBuffer = DefaultEventBuffer
	}
	return c
}

// Signal is a signal to send (Type, Data, To, NoRetry) or a received one
// (every field but NoRetry).
type Signal struct {
	Type string // 0–128 characters of A-Z a-z 0-9 - _ ~
	Data string // UTF-8, at most 8192 bytes
	// To is a connection ID. On a send, "" means every connection of the
	// session, the sender included. On a received signal it is set when the
	// signal was sent to this connection only.
	To string

	// NoRetry is for sends. By default (false) a send made while the client
	// is reconnecting is queued and sent after the reconnect, and a send
	// whose result was lost with the socket is resent with the same id (the
	// relay delivers it at most once): OpenTok's retryAfterReconnect=true.
	// With NoRetry such a send fails at once with code 500.
	NoRetry bool

	// From is the sender's connection ID; "" for a signal sent through
	// the REST API.
	From string
	// Seq is the event's sequence number on this connection.
	Seq uint64
	// Age is how long the signal waited between its send and its delivery
	// to this socket: the sender's reconnect queue plus the relay's buffers.
	// Network transit is not included.
	Age time.Duration
	// Received is when this client read the signal (Options.Clock).
	Received time.Time
}

// Reconnected describes a completed reconnection.
type Reconnected struct {
	// Resumed reports that the relay resumed the same connection: every
	// event since the drop follows, in order, except Missed ones.
	// When false the grace period had ended (or the relay restarted): the
	// client has a new connection, events of the gap are lost, and others
	// saw the old connection leave. Applications must treat that as a lost
	// link (the teleop agent stops the robot and drops its lease).
	Resumed bool
	// Missed counts events the relay no longer held (its replay buffer
	// overflowed).
	Missed uint64
	// MissedUnknown: the connection resumed on another node of a relay
	// cluster, which could not replay what the old node held. Events
	// after the drop may have been lost; how many is not known.
	MissedUnknown bool
	// Connection is this client's connection now; Previous the one before
	// the drop. They are equal when Resumed.
	Connection Connection
	Previous   Connection
	// Connections lists the session's connections when !Resumed (as
	// Session.Connections does from now on); nil when Resumed.
	Connections []Connection
	// Downtime is how long the client was without a socket (Options.Clock).
	Downtime time.Duration
}

// CloseError is the end of a socket that the relay decided: its WebSocket
// close code and the reason (the disconnected frame's reason, or the close
// text).
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("relay closed the socket with code %d", e.Code)
	}
	return fmt.Sprintf("relay closed the socket with code %d: %s", e.Code, e.Reason)
}

// Permanent reports whether the client must not reconnect after it.
func (e *CloseError) Permanent() bool { return e.Code == 1000 || PermanentClose(e.Code) }

type sessionState int

const (
	stateIdle      sessionState = iota // NewSession, Connect not yet successful
	stateConnected                     // a socket is up
	stateReconnecting
	stateEnded
)

// A Session is a client's membership in a signaling session, kept alive
// across network failures.
//
// # Goroutines
//
// A connected Session runs one supervisor goroutine, which reads the
// socket and reconnects; one writer goroutine per socket, the only code
// that writes to it; and one dispatcher goroutine, which calls every
// handler. Handlers therefore run one at a time, in the order the events
// arrived: per-sender order is what the application sees. A handler may
// call any Session method except Close (Close waits for the dispatcher;
// call go s.Close() from a handler). A slow handler delays later events
// only: see Options.EventBuffer for what happens when it falls far behind.
//
// All methods are safe for concurrent use.
type Session struct {
	// Static after NewSession.
	o       Options
	log     *slog.Logger
	clk     clock.Clock
	ctx     context.Context    // cancelled to tear everything down
	cancel  context.CancelFunc //
	runDone chan struct{}      // closed when the supervisor has ended
	done    chan struct{}      // closed when the dispatcher has ended
	wg      sync.WaitGroup     // supervisor and dispatcher
	ids     atomic.Uint64      // send and ping ids

	// Set by Connect before any goroutine starts, then owned by run.
	servers   []*url.URL // the URL given to Connect, then Options.Fallbacks
	server    *url.URL   // the one in use: one of servers
	token     string
	resumeKey string
	lastSeq   uint64 // highest seq handed to the event queue

	mu sync.Mutex
	// Guarded by mu.
	state   sessionState
	closing bool    // Close was called
	cur     *sconn  // the live socket; nil unless stateConnected
	sends   []*send // outstanding sends, in call order
	byID    map[string]*send
	// Posts written on the current socket and not yet confirmed by a later
	// answer, and whether the writer's own barrier ping is out.
	unconfirmed int
	barrier     bool
	err         error // why the session ended; nil after Close
	sessionID   string
	role        string
	limits      Limits
	hs          handlers

	testQueued func() // guarded by mu; called after a send is queued (export_test.go)

	// The application's view, advanced by the dispatcher as it delivers
	// events, so that it agrees with what the handlers have seen.
	// Guarded by mu.
	self  Connection
	conns []Connection

	// The event queue between the reader and the dispatcher. Guarded by mu.
	events  []event
	counted int           // signal and connection events in events
	evEnd   bool          // no event follows those queued
	evWake  chan struct{} // cap 1: events were queued
	// overflowed is the socket whose events no longer fit in the buffer;
	// the dispatcher cuts it once the buffer is down to half.
	overflowed *sconn
}

// send is one Signal, Post, ForceDisconnect or Flush call waiting for its
// result (a pong for Flush).
type send struct {
	id       string
	op       string // OpSignal, OpForceDisconnect or OpPing (Flush, and the writer's own barriers)
	sig      Signal // OpSignal
	target   string // OpForceDisconnect: the connection to remove
	quiet    bool   // Post: the relay answers only a failure
	enqueued time.Time
	// Guarded by Session.mu.
	written     bool       // written on the current socket
	everWritten bool       // written on some socket
	wseq        uint64     // position in the current socket's writes
	result      chan error // cap 1; nil for a post
}

// NewSession returns a Session that is not connected yet. Register
// handlers, then call Connect: no event can arrive before the handlers are
// in place. Dial does both steps for applications that do not need that.
func NewSession(opts *Options) *Session {
	o := opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Session{
		o:       o,
		log:     o.Logger.With("component", "signaling"),
		clk:     o.Clock,
		ctx:     ctx,
		cancel:  cancel,
		runDone: make(chan struct{}),
		done:    make(chan struct{}),
		byID:    make(map[string]*send),
		evWake:  make(chan struct{}, 1),
		hs:      handlers{byType: map[string][]func(Signal){}},
	}
}

// Dial connects to the relay at serverURL with token and returns once the
// relay has welcomed the connection. serverURL is the relay's base URL
// (http://127.0.0.1:7420, https://relay.example.com); Dial connects to its
// /v1/connect over ws:// or wss://. The token travels in an Authorization
// header.
//
// Dial does not retry: a refused token is an *Error with code 401 and the
// relay's reason, a full session an *Error with code 503, and a network
// failure is returned as is. Once connected, the Session reconnects by
// itself and ctx no longer matters.
//
// Register handlers right after Dial; an event that arrives before its
// handler exists is not delivered to it. Use NewSession, the On methods and
// Connect to rule that out.
func Dial(ctx context.Context, serverURL, token string, opts *Options) (*Session, error) {
	s := NewSession(opts)
	if err := s.Connect(ctx, serverURL, token); err != nil {
		return nil, err
	}
	return s, nil
}

// Connect connects a Session made by NewSession, as Dial does. It may be
// called again after a failure, not after a success.
func (s *Session) Connect(ctx context.Context, serverURL, token string) error {
	s.mu.Lock()
	if s.state != stateIdle || s.closing {
		s.mu.Unlock()
		return errors.New("signaling: Connect on a session that is connected or closed")
	}
	s.mu.Unlock()

	servers := make([]*url.URL, 0, 1+len(s.o.Fallbacks))
	for _, raw := range append([]string{serverURL}, s.o.Fallbacks...) {
		u, err := connectURL(raw)
		if err != nil {
			return err
		}
		servers = append(servers, u)
	}
	var err error
	if token == "" && s.o.TokenSource != nil {
		if token, err = s.o.TokenSource(ctx); err != nil {
			return fmt.Errorf("get token: %w", err)
		}
	}
	if token == "" {
		return &Error{Code: CodeUnauthorized, Message: "no token"}
	}
	var sk *sconn
	var u *url.URL
	for _, u = range servers {
		if sk, err = s.dial(ctx, u, token, "", 0); err == nil || permanent(err) || ctx.Err() != nil {
			break
		}
		if len(servers) > 1 {
			s.log.Info("relay unreachable; trying the next", "server", u.Redacted(), "err", err)
		}
	}
	if err != nil {
		return err
	}
	w := sk.welcome

	s.mu.Lock()
	if s.closing || s.state != stateIdle {
		s.mu.Unlock()
		sk.ws.Close()
		return errors.New("signaling: session closed during Connect")
	}
	s.servers, s.server, s.token = servers, u, token
	s.resumeKey, s.lastSeq = w.ResumeKey, w.Seq
	s.sessionID, s.role = w.SessionID, w.Role
	if w.Limits != nil {
		s.limits = *w.Limits
	}
	s.self = *w.Connection
	s.conns = slices.Clone(w.Connections)
	s.attachLocked(sk)
	s.log = s.log.With("connection", w.Connection.ConnectionID)
	s.mu.Unlock()
	s.log.Info("connected", "session", w.SessionID, "role", w.Role, "connections", len(w.Connections))

	s.wg.Add(2)
	go s.run(sk)
	go s.dispatch()
	return nil
}

// connectURL maps a relay base URL to its WebSocket endpoint.
func connectURL(server string) (*url.URL, error) {
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	u, err := url.Parse(server)
	if err != nil {
		return nil, fmt.Errorf("relay url: %w", err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return nil, fmt.Errorf("relay url %q: scheme must be http, https, ws or wss", server)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("relay url %q has no host", server)
	}
	if !strings.HasSuffix(u.Path, "/v1/connect") {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/connect"
	}
	u.RawPath, u.RawQuery, u.Fragment = "", "", ""
	return u, nil
}

// SessionID returns the ID of the session.
func (s *Session) SessionID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessionID
}

// Role returns the role of this client's token.
func (s *Session) Role() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.role
}

// Limits returns the relay's limits from the latest welcome.
func (s *Session) Limits() Limits {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limits
}

// ID returns this client's connection ID (Connection().ConnectionID).
func (s *Session) ID() string { return s.Connection().ConnectionID }

// Connection returns this client's own connection. It changes only when a
// reconnect yields a new connection, at the moment OnReconnected handlers
// see it.
func (s *Session) Connection() Connection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.self
}

// Connections returns the session's connections, this one included, oldest
// first, as of the last event delivered to the handlers.
func (s *Session) Connections() []Connection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.conns)
}

// Connected reports whether a socket is up right now.
func (s *Session) Connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == stateConnected
}

// Done is closed when the session has ended for good (Close, a permanent
// refusal, or ReconnectTimeout), after the last handler has returned.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns why the session ended: nil while it runs or when Close ended
// it; an *Error, a *CloseError or a reconnect failure otherwise.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Signal sends sig and returns the relay's completion: nil when the relay
// accepted it (which, as in OpenTok, does not mean anyone received it), or
// an *Error with the code: 400 (invalid type, data or to), 403 (the role may
// not signal), 404 (no such to), 413 (type or data too long), 429 (over the
// rate limit), 500 (not connected: the session ended, or the client is
// reconnecting and sig.NoRetry is set, or the socket dropped with a
// NoRetry send unanswered). It returns ErrQueueFull when QueueLimit sends
// are waiting.
//
// Type and data are checked here first, with the relay's rules and codes,
// so an invalid signal never waits in the reconnect queue.
//
// Without NoRetry, a send made while reconnecting waits (for ever, by
// default) until the client reconnects, and Signal blocks until then or
// until ctx ends. The relay is told how long it waited (queuedMs), and
// receivers see it in Signal.Age. If ctx ends first, Signal returns
// ctx.Err(); a signal already written may still be delivered.
func (s *Session) Signal(ctx context.Context, sig Signal) error {
	if err := CheckSignal(sig.Type, sig.Data); err != nil {
		return err
	}
	sig.From, sig.Seq, sig.Age, sig.Received = "", 0, 0, time.Time{}
	return s.submit(ctx, &send{op: OpSignal, sig: sig})
}

// Post sends sig like Signal but does not wait for the relay: it returns
// once sig is queued, with the errors Signal returns at once (invalid type
// or data, not connected, ErrQueueFull). The relay answers a post only when
// it refuses it, which saves a frame and a wake-up per signal for a sender
// of many small signals (acks, telemetry). Posts and signals are written in
// call order; NoRetry and the reconnect queue work as for Signal.
//
// A post that fails later (refused by the relay, or known not delivered or
// possibly delivered after a lost socket, as Signal would report) is handed
// to the OnPostFailed handlers with its error. Flush waits until every post
// made before it has been answered or confirmed.
func (s *Session) Post(sig Signal) error {
	if err := CheckSignal(sig.Type, sig.Data); err != nil {
		return err
	}
	sig.From, sig.Seq, sig.Age, sig.Received = "", 0, 0, time.Time{}
	return s.queue(&send{op: OpSignal, sig: sig, quiet: true})
}

// Flush waits until the relay has processed everything sent or posted
// before it: it returns nil once the relay has answered a ping written
// after them (posts that failed have been handed to OnPostFailed by then),
// an *Error with code 500 when the session ends first, or ctx.Err().
func (s *Session) Flush(ctx context.Context) error {
	return s.submit(ctx, &send{op: OpPing})
}

// ForceDisconnect removes the connection with the given ID from the session
// (moderators only). It returns nil once the relay has done it, or an
// *Error: 403 (this role may not), 404 (no such connection), 500 (not
// connected). It is queued across reconnects like a Signal without NoRetry.
func (s *Session) ForceDisconnect(ctx context.Context, connectionID string) error {
	return s.submit(ctx, &send{op: OpForceDisconnect, target: connectionID})
}

// submit queues snd for the writer and waits for its result.
func (s *Session) submit(ctx context.Context, snd *send) error {
	snd.result = make(chan error, 1)
	if err := s.queue(snd); err != nil {
		return err
	}
	select {
	case err := <-snd.result:
		return err
	case <-ctx.Done():
		s.mu.Lock()
		s.removeSendLocked(snd)
		s.mu.Unlock()
		return ctx.Err()
	}
}

// queue hands snd to the writer.
func (s *Session) queue(snd *send) error {
	snd.id = strconv.FormatUint(s.ids.Add(1), 10)
	snd.enqueued = s.clk.Now()
	s.mu.Lock()
	switch {
	case s.state == stateIdle:
		s.mu.Unlock()
		return &Error{Code: CodeNotConnected, Message: "not connected"}
	case s.state == stateEnded || s.closing:
		s.mu.Unlock()
		return &Error{Code: CodeNotConnected, Message: "not connected: the session is closed"}
	case s.state == stateReconnecting && snd.sig.NoRetry:
		s.mu.Unlock()
		return &Error{Code: CodeNotConnected, Message: "not connected: reconnecting"}
	case len(s.sends) >= s.o.QueueLimit:
		s.mu.Unlock()
		return ErrQueueFull
	}
	s.sends = append(s.sends, snd)
	s.byID[snd.id] = snd
	if s.cur != nil {
		s.cur.poke()
	}
	hook := s.testQueued
	s.mu.Unlock()
	if hook != nil {
		hook()
	}
	return nil
}

// removeSendLocked forgets snd; its result, if one comes, is ignored.
func (s *Session) removeSendLocked(snd *send) {
	if s.byID[snd.id] != snd {
		return
	}
	delete(s.byID, snd.id)
	if i := slices.Index(s.sends, snd); i >= 0 {
		s.sends = slices.Delete(s.sends, i, i+1)
	}
	if snd.quiet && snd.written {
		s.unconfirmed--
	}
}

// completeLocked hands snd its result and forgets it. A post's failure goes
// to the OnPostFailed handlers; its success needs no telling.
func (s *Session) completeLocked(snd *send, err error) {
	s.removeSendLocked(snd)
	switch {
	case snd.result != nil:
		snd.result <- err
	case snd.quiet && err != nil && !s.closing:
		s.enqueueLocked(event{kind: evPostFailed, sig: snd.sig, err: err})
	}
}

// confirmLocked completes the posts written on the current socket before
// its write w: the relay answered a later frame, so it has processed them,
// and any failure of theirs was answered before.
func (s *Session) confirmLocked(w uint64) {
	if s.unconfirmed == 0 {
		return
	}
	for _, snd := range slices.Clone(s.sends) {
		if snd.quiet && snd.written && snd.wseq < w {
			s.completeLocked(snd, nil)
		}
	}
}

// Ping measures a round trip to the relay with the protocol's ping op.
// It fails with code 500 while the client is not connected.
func (s *Session) Ping(ctx context.Context) (time.Duration, error) {
	id := "p" + strconv.FormatUint(s.ids.Add(1), 10)
	ch := make(chan error, 1)
	s.mu.Lock()
	sk := s.cur
	if sk == nil {
		s.mu.Unlock()
		return 0, &Error{Code: CodeNotConnected, Message: "not connected"}
	}
	start := time.Now() // a network measurement: wall clock, not Options.Clock
	sk.pings[id] = ch
	sk.ctrl = append(sk.ctrl, Frame{Op: OpPing, ID: id})
	sk.poke()
	s.mu.Unlock()

	select {
	case err := <-ch:
		if err != nil {
			return 0, err
		}
		return time.Since(start), nil
	case <-ctx.Done():
		s.mu.Lock()
		delete(sk.pings, id)
		s.mu.Unlock()
		return 0, ctx.Err()
	}
}

// Close leaves the session: it sends disconnect, waits briefly for the
// relay to confirm, and returns after every goroutine of the Session has
// ended. Sends still waiting fail with code 500, events not yet handed to
// the handlers are dropped, and OnDisconnected handlers are called with a
// nil error. Close must not be called from a handler. It always returns nil.
func (s *Session) Close() error {
	s.mu.Lock()
	if s.state == stateIdle {
		s.closing = true
		s.state = stateEnded
		s.mu.Unlock()
		s.cancel()
		close(s.done)
		return nil
	}
	if s.closing {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closing = true
	sk := s.cur
	if sk != nil {
		sk.bye = true
		sk.poke()
	}
	s.mu.Unlock()

	if sk != nil {
		t := time.NewTimer(closeWait) // socket I/O: wall clock
		select {
		case <-s.runDone:
		case <-t.C:
			s.log.Warn("relay did not confirm disconnect; dropping the socket")
		}
		t.Stop()
	}
	s.cancel()
	s.wg.Wait()
	return nil
}
