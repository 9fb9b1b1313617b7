package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/teleop/teleop/clock"
)

// errSlowHandlers ends a socket on which events were discarded because the
// handlers fell behind (Options.EventBuffer), to resume and get them again.
var errSlowHandlers = errors.New("handlers fell behind: event buffer was full, resuming to replay the events discarded meanwhile")

// sconn is one WebSocket of a Session. The supervisor (run) reads it; the
// writer goroutine (writeLoop) is the only code that writes to it.
type sconn struct {
	ws      *websocket.Conn
	welcome *Frame

	ctx        context.Context    // ends the writer; child of Session.ctx
	cancel     context.CancelFunc //
	wake       chan struct{}      // cap 1: sends or control frames to write
	pong       chan string        // cap 1: a WebSocket ping to answer
	writerDone chan struct{}
	echo       atomic.Int32 // close code received from the relay, to echo

	causeMu sync.Mutex
	cause   error // guarded by causeMu: why the socket was cut from our side

	// Owned by run (the reader).
	liveness clock.Timer
	reason   string // from a disconnected frame

	// Guarded by Session.mu.
	ctrl       []Frame               // ping ops to write
	pings      map[string]chan error // outstanding Ping calls
	writes     uint64                // sends written on this socket (send.wseq)
	bye        bool                  // write a disconnect frame
	byeSent    bool
	discarding bool // the event buffer overflowed: drop every further event
}

func (sk *sconn) poke() {
	select {
	case sk.wake <- struct{}{}:
	default:
	}
}

// fail cuts the socket from our side with err as the cause; the reader
// then returns.
func (sk *sconn) fail(err error) {
	sk.causeMu.Lock()
	if sk.cause == nil {
		sk.cause = err
	}
	sk.causeMu.Unlock()
	sk.ws.NetConn().Close()
}

func (sk *sconn) failure() error {
	sk.causeMu.Lock()
	defer sk.causeMu.Unlock()
	return sk.cause
}

func (sk *sconn) write(f *Frame) error {
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode %s frame: %w", f.Op, err)
	}
	sk.ws.SetWriteDeadline(time.Now().Add(writeWait))
	if err := sk.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		return fmt.Errorf("write %s frame: %w", f.Op, err)
	}
	return nil
}

// dial opens one socket and reads its welcome. resumeKey, when set, asks
// the relay to resume the connection after event last.
func (s *Session) dial(ctx context.Context, u *url.URL, token, resumeKey string, last uint64) (*sconn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.o.HandshakeTimeout)
	defer cancel()

	target := *u
	if resumeKey != "" {
		target.RawQuery = url.Values{"resume": {resumeKey}, "last": {strconv.FormatUint(last, 10)}}.Encode()
	}
	d := websocket.Dialer{
		NetDialContext:   s.o.NetDialContext,
		TLSClientConfig:  s.o.TLSClientConfig,
		HandshakeTimeout: s.o.HandshakeTimeout,
	}
	ws, resp, err := d.DialContext(ctx, target.String(), http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		if resp != nil {
			return nil, httpRefusal(resp)
		}
		return nil, fmt.Errorf("connect to %s: %w", u.Host, err)
	}
	ws.SetReadLimit(maxReadBytes)
	if dl, ok := ctx.Deadline(); ok {
		ws.SetReadDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { ws.NetConn().Close() })
	w, err := readWelcome(ws)
	if !stop() && err == nil {
		err = fmt.Errorf("read welcome: %w", context.Cause(ctx))
	}
	if err != nil {
		ws.Close()
		return nil, err
	}
	ws.SetReadDeadline(time.Time{})

	sk := &sconn{
		ws:         ws,
		welcome:    w,
		wake:       make(chan struct{}, 1),
		pong:       make(chan string, 1),
		writerDone: make(chan struct{}),
		pings:      make(map[string]chan error),
	}
	ws.SetCloseHandler(func(code int, _ string) error {
		sk.echo.Store(int32(code)) // the writer echoes it
		return nil
	})
	return sk, nil
}

// httpRefusal turns a failed upgrade into an *Error with the relay's
// status and message.
func httpRefusal(resp *http.Response) error {
	msg := http.StatusText(resp.StatusCode)
	if resp.Body != nil {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var body struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(b, &body) == nil && body.Message != "" {
			msg = body.Message
		}
	}
	return &Error{Code: resp.StatusCode, Message: msg}
}

// readWelcome reads the first frame: a welcome, or the error frame of a
// refusal.
func readWelcome(ws *websocket.Conn) (*Frame, error) {
	_, b, err := ws.ReadMessage()
	if err != nil {
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return nil, closeRefusal(ce.Code, ce.Text)
		}
		return nil, fmt.Errorf("read welcome: %w", err)
	}
	f, err := DecodeFrame(b)
	if err != nil {
		return nil, fmt.Errorf("read welcome: %w", err)
	}
	switch f.Op {
	case OpWelcome:
		if f.Connection == nil || f.Connection.ConnectionID == "" {
			return nil, &Error{Code: CodeUnexpectedReply, Message: "welcome without a connection"}
		}
		return f, nil
	case OpError:
		return nil, &Error{Code: f.Code, Message: f.Message}
	}
	return nil, &Error{Code: CodeUnexpectedReply, Message: fmt.Sprintf("first frame is %q, not welcome", f.Op)}
}

// closeRefusal maps a close without a preceding error frame to the error a
// refusal with that code would carry.
func closeRefusal(code int, text string) error {
	switch code {
	case CloseTokenRefused:
		return &Error{Code: CodeUnauthorized, Message: text}
	case CloseForbidden:
		return &Error{Code: CodeForbidden, Message: text}
	case CloseSessionFull:
		return &Error{Code: CodeSessionFull, Message: text}
	}
	return &CloseError{Code: code, Reason: text}
}

// permanent reports whether err forbids reconnecting.
func permanent(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Code == CodeUnauthorized || e.Code == CodeForbidden
	}
	var ce *CloseError
	return errors.As(err, &ce) && ce.Permanent()
}

// run is the supervisor: it reads the socket (serve) and, when the socket
// ends, reconnects or ends the session.
func (s *Session) run(sk *sconn) {
	defer s.wg.Done()
	defer close(s.runDone)
	self := *sk.welcome.Connection
	for {
		cause := s.serve(sk)

		s.mu.Lock()
		s.cur = nil // no Ping or send may wait on this socket any more
		if s.overflowed == sk {
			s.overflowed = nil // the resume replays what it discarded
		}
		for id, ch := range sk.pings {
			ch <- &Error{Code: CodeNotConnected, Message: "not connected: the socket dropped"}
			delete(sk.pings, id)
		}
		closing := s.closing || s.ctx.Err() != nil
		s.mu.Unlock()
		if closing {
			s.finish(nil)
			return
		}
		if permanent(cause) {
			s.log.Warn("relay ended the session", "err", cause)
			s.finish(cause)
			return
		}
		s.log.Info("socket lost; reconnecting", "err", cause)
		down := s.clk.Now()
		s.lose(cause)

		next, err := s.reconnect()
		if err != nil {
			if s.ctx.Err() != nil {
				err = nil // Close
			}
			s.finish(err)
			return
		}
		sk = next
		w := sk.welcome
		rec := Reconnected{
			Resumed:       w.Resumed && w.Connection.ConnectionID == self.ConnectionID,
			Missed:        w.Missed,
			MissedUnknown: w.MissedUnknown,
			Connection:    *w.Connection,
			Previous:      self,
			Downtime:      s.clk.Now().Sub(down),
		}
		s.resumeKey = w.ResumeKey
		if !rec.Resumed {
			rec.Connections = slices.Clone(w.Connections)
			s.lastSeq = w.Seq
		} else if w.Missed > 0 || w.MissedUnknown {
			s.log.Warn("resumed with events missed", "missed", w.Missed, "unknown", w.MissedUnknown)
		}
		self = *w.Connection

		s.mu.Lock()
		if w.Limits != nil {
			s.limits = *w.Limits
		}
		if !rec.Resumed {
			// The relay's memory of send ids belonged to the old
			// connection: a send written there might have been
			// delivered, so it is not resent (at most once).
			for _, snd := range slices.Clone(s.sends) {
				if snd.everWritten {
					s.completeLocked(snd, &Error{Code: CodeNotConnected,
						Message: "not connected: the connection was replaced before the relay answered; the signal may have been delivered"})
				}
			}
		}
		s.enqueueLocked(event{kind: evReconnected, rec: rec})
		s.attachLocked(sk)
		s.mu.Unlock()
		if rec.Resumed {
			s.log.Info("reconnected; connection resumed", "downtime", rec.Downtime, "missed", rec.Missed)
		} else {
			s.log.Warn("reconnected with a new connection; the old one is gone",
				"previous", rec.Previous.ConnectionID, "connection", rec.Connection.ConnectionID)
		}
	}
}

// attachLocked makes sk the live socket. Its writer, started by serve,
// first writes what waited for a socket.
func (s *Session) attachLocked(sk *sconn) {
	s.state, s.cur = stateConnected, sk
	if s.closing {
		sk.bye = true
	}
	sk.poke()
}

// serve runs one socket until it ends and returns why.
func (s *Session) serve(sk *sconn) error {
	sk.ctx, sk.cancel = context.WithCancel(s.ctx)
	go s.writeLoop(sk)

	ping := defaultPingInterval
	if l := sk.welcome.Limits; l != nil && l.PingIntervalMs > 0 {
		ping = time.Duration(l.PingIntervalMs) * time.Millisecond
	}
	dead := 2 * ping
	sk.liveness = s.clk.AfterFunc(dead, func() {
		sk.fail(fmt.Errorf("nothing from the relay for %v", dead))
	})
	cause := s.readLoop(sk, dead)
	sk.liveness.Stop()
	sk.cancel()
	<-sk.writerDone
	sk.ws.Close()
	return cause
}

// readLoop reads frames until the socket fails. Every frame and every
// WebSocket ping pushes the liveness deadline forward by dead.
func (s *Session) readLoop(sk *sconn, dead time.Duration) error {
	sk.ws.SetPingHandler(func(data string) error {
		sk.liveness.Reset(dead)
		select {
		case sk.pong <- data:
		default: // pinged faster than we answer: skip one
		}
		return nil
	})
	for {
		typ, b, err := sk.ws.ReadMessage()
		if err != nil {
			if c := sk.failure(); c != nil {
				return c
			}
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				reason := sk.reason
				if reason == "" {
					reason = ce.Text
				}
				return &CloseError{Code: ce.Code, Reason: reason}
			}
			return fmt.Errorf("read: %w", err)
		}
		sk.liveness.Reset(dead)
		if typ != websocket.TextMessage {
			continue
		}
		f, err := DecodeFrame(b)
		if err != nil {
			s.log.Warn("undecodable frame from the relay", "err", err)
			continue
		}
		s.handleFrame(sk, f)
	}
}

// handleFrame acts on one frame from the relay.
func (s *Session) handleFrame(sk *sconn, f *Frame) {
	switch f.Op {
	case OpSignal, OpConnectionCreated, OpConnectionDestroyed:
		if f.Seq != 0 && f.Seq <= s.lastSeq {
			s.log.Debug("dropping an event already delivered", "seq", f.Seq, "last", s.lastSeq)
			return
		}
		if f.Seq != 0 && f.Seq != s.lastSeq+1 {
			s.log.Debug("sequence gap", "seq", f.Seq, "last", s.lastSeq)
		}
		e, ok := s.eventOf(f) // !ok: malformed, skipped
		s.mu.Lock()
		if sk.discarding || (ok && !s.enqueueLocked(e)) {
			// Not received: lastSeq stays, and the resume that follows
			// the drain gets this event replayed.
			if !sk.discarding {
				sk.discarding, s.overflowed = true, sk
				s.log.Warn("handlers fell behind; discarding events until they catch up, then resuming",
					"buffer", s.o.EventBuffer, "seq", f.Seq)
			}
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		if f.Seq != 0 {
			s.lastSeq = f.Seq
		}
	case OpResult:
		var err error
		switch f.Code {
		case CodeOK:
		case 0:
			err = &Error{Code: CodeUnexpectedReply, Message: "result without a code"}
		default:
			err = &Error{Code: f.Code, Message: f.Message}
		}
		s.mu.Lock()
		if snd := s.byID[f.ID]; snd != nil {
			s.confirmLocked(snd.wseq)
			s.completeLocked(snd, err)
		}
		s.mu.Unlock()
	case OpPong:
		s.mu.Lock()
		if ch, ok := sk.pings[f.ID]; ok {
			delete(sk.pings, f.ID)
			ch <- nil
		} else if snd := s.byID[f.ID]; snd != nil && snd.op == OpPing {
			s.confirmLocked(snd.wseq)
			s.completeLocked(snd, nil)
			if snd.result == nil {
				s.barrier = false
			}
		}
		s.mu.Unlock()
	case OpDisconnected:
		sk.reason = f.Reason
	case OpError:
		s.log.Warn("relay refused a frame", "code", f.Code, "message", f.Message)
	default:
		s.log.Debug("ignoring frame", "op", f.Op)
	}
}

// eventOf converts an event frame; ok is false for a malformed one.
func (s *Session) eventOf(f *Frame) (event, bool) {
	switch f.Op {
	case OpSignal:
		return event{kind: evSignal, sig: Signal{
			Type:     f.Type,
			Data:     f.Data,
			To:       f.To,
			From:     Deref(f.From),
			Seq:      f.Seq,
			Age:      time.Duration(f.AgeMs) * time.Millisecond,
			Received: s.clk.Now(),
		}}, true
	case OpConnectionCreated, OpConnectionDestroyed:
		if f.Connection == nil {
			s.log.Warn("connection event without a connection", "op", f.Op, "seq", f.Seq)
			return event{}, false
		}
		kind := evCreated
		if f.Op == OpConnectionDestroyed {
			kind = evDestroyed
		}
		return event{kind: kind, conn: *f.Connection, reason: f.Reason}, true
	}
	return event{}, false
}

// writeLoop is the only writer of sk.ws.
func (s *Session) writeLoop(sk *sconn) {
	defer close(sk.writerDone)
	for {
		select {
		case <-sk.ctx.Done():
			if code := sk.echo.Load(); code != 0 {
				sk.ws.WriteControl(websocket.CloseMessage,
					websocket.FormatCloseMessage(int(code), ""), time.Now().Add(time.Second))
			}
			sk.ws.NetConn().Close()
			return
		case data := <-sk.pong:
			if err := sk.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(writeWait)); err != nil {
				sk.fail(fmt.Errorf("write pong: %w", err))
				return
			}
		case <-sk.wake:
			if err := s.flush(sk); err != nil {
				sk.fail(err)
				return
			}
		}
	}
}

// flush writes the queued control frames, every send not yet written on
// this socket, in call order, and the disconnect frame when asked.
func (s *Session) flush(sk *sconn) error {
	s.mu.Lock()
	ctrl := sk.ctrl
	sk.ctrl = nil
	var todo []*send
	for _, snd := range s.sends {
		if !snd.written {
			todo = append(todo, snd)
		}
	}
	s.mu.Unlock()

	for i := range ctrl {
		if err := sk.write(&ctrl[i]); err != nil {
			return err
		}
	}
	for _, snd := range todo {
		s.mu.Lock()
		if s.byID[snd.id] != snd || snd.written {
			s.mu.Unlock() // abandoned by its caller meanwhile
			continue
		}
		f := Frame{Op: snd.op, ID: snd.id}
		switch snd.op {
		case OpForceDisconnect:
			f.ConnectionID = snd.target
		case OpSignal:
			f.Type, f.Data, f.To, f.Quiet = snd.sig.Type, snd.sig.Data, snd.sig.To, snd.quiet
			f.QueuedMs = max(0, s.clk.Now().Sub(snd.enqueued).Milliseconds())
		}
		s.markWrittenLocked(sk, snd)
		s.mu.Unlock()
		if err := sk.write(&f); err != nil {
			return err
		}
	}

	s.mu.Lock()
	var barrier *send
	if s.unconfirmed >= postsPerBarrier && !s.barrier {
		// Posts are confirmed by a later answer; without sends of its
		// own to answer, a ping every postsPerBarrier posts does it.
		barrier = &send{op: OpPing, id: strconv.FormatUint(s.ids.Add(1), 10), enqueued: s.clk.Now()}
		s.sends = append(s.sends, barrier)
		s.byID[barrier.id] = barrier
		s.markWrittenLocked(sk, barrier)
		s.barrier = true
	}
	s.mu.Unlock()
	if barrier != nil {
		if err := sk.write(&Frame{Op: OpPing, ID: barrier.id}); err != nil {
			return err
		}
	}

	s.mu.Lock()
	bye := sk.bye && !sk.byeSent
	sk.byeSent = sk.byeSent || bye
	s.mu.Unlock()
	if bye {
		return sk.write(&Frame{Op: OpDisconnect})
	}
	return nil
}

// postsPerBarrier is how many unconfirmed posts make the writer add a ping
// of its own (see Session.Post).
const postsPerBarrier = DefaultQueueLimit / 4

// markWrittenLocked records that snd is about to be written on sk.
func (s *Session) markWrittenLocked(sk *sconn, snd *send) {
	sk.writes++
	snd.written, snd.everWritten, snd.wseq = true, true, sk.writes
	if snd.quiet {
		s.unconfirmed++
	}
}

// lose records the loss of the socket: sends with NoRetry fail, the others
// wait to be written again on the next socket.
func (s *Session) lose(cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state, s.cur = stateReconnecting, nil
	for _, snd := range slices.Clone(s.sends) {
		switch {
		case snd.op == OpPing && snd.result == nil:
			s.removeSendLocked(snd) // the writer's barrier: the next socket gets its own
		case !snd.sig.NoRetry:
			snd.written = false
		case snd.written:
			s.completeLocked(snd, &Error{Code: CodeNotConnected,
				Message: "not connected: the socket dropped before the relay answered; the signal may have been delivered"})
		default:
			s.completeLocked(snd, &Error{Code: CodeNotConnected, Message: "not connected: the socket dropped"})
		}
	}
	s.unconfirmed, s.barrier = 0, false // every written send is now unwritten, failed or gone
	s.enqueueLocked(event{kind: evReconnecting, err: cause})
}

// reconnect dials until a socket is up, the relay refuses for good,
// ReconnectTimeout passes or the session is closed.
func (s *Session) reconnect() (*sconn, error) {
	start := s.clk.Now()
	backoff := s.o.InitialBackoff
	var lastErr error
	for attempt := 1; ; attempt++ {
		wait := jitter(backoff)
		if t := s.o.ReconnectTimeout; t > 0 && attempt > 1 {
			left := t - s.clk.Now().Sub(start)
			if left <= 0 {
				return nil, fmt.Errorf("reconnect: gave up after %v and %d attempts: %w", t, attempt-1, lastErr)
			}
			wait = min(wait, left)
		}
		if err := s.sleep(wait); err != nil {
			return nil, err
		}

		token := s.token
		var err error
		if s.o.TokenSource != nil {
			token, err = s.o.TokenSource(s.ctx)
			if err != nil {
				err = fmt.Errorf("get token: %w", err)
			}
		}
		var sk *sconn
		if err == nil {
			sk, err = s.dial(s.ctx, s.server, token, s.resumeKey, s.lastSeq)
		}
		if err == nil {
			s.token = token
			return sk, nil
		}
		if len(s.servers) > 1 && !permanent(err) {
			// The next node of the cluster for the next attempt.
			i := slices.Index(s.servers, s.server)
			s.server = s.servers[(i+1)%len(s.servers)]
		}
		if s.ctx.Err() != nil {
			return nil, s.ctx.Err()
		}
		if permanent(err) {
			s.log.Warn("relay refused the reconnect", "err", err)
			return nil, err
		}
		s.log.Info("reconnect attempt failed", "attempt", attempt, "err", err)
		lastErr = err
		backoff = min(2*backoff, s.o.MaxBackoff)
	}
}

// jitter spreads d by ±backoffJitter.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (1 - backoffJitter + 2*backoffJitter*rand.Float64()))
}

// sleep waits d on the session's clock, or until the session is closed.
func (s *Session) sleep(d time.Duration) error {
	t := s.clk.NewTimer(d)
	select {
	case <-t.C():
		return nil
	case <-s.ctx.Done():
		t.Stop()
		return s.ctx.Err()
	}
}

// finish ends the session: pending sends fail, the dispatcher delivers the
// disconnected event last and stops.
func (s *Session) finish(err error) {
	s.mu.Lock()
	s.state, s.cur = stateEnded, nil
	if s.closing {
		err = nil
		s.events, s.counted = nil, 0 // Close drops what the handlers have not seen
	}
	s.err = err
	for _, snd := range slices.Clone(s.sends) {
		s.completeLocked(snd, &Error{Code: CodeNotConnected, Message: "not connected: the session ended"})
	}
	s.enqueueLocked(event{kind: evDisconnected, err: err})
	s.evEnd = true
	s.mu.Unlock()
	s.cancel()
	if err != nil {
		s.log.Warn("session ended", "err", err)
	} else {
		s.log.Info("session closed")
	}
}
