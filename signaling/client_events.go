package signaling

import "slices"

// handlers are the application's callbacks. Each slice is replaced, never
// appended to in place, so the dispatcher can call a copy taken under mu.
type handlers struct {
	signal       []func(Signal)
	byType       map[string][]func(Signal)
	created      []func(Connection)
	destroyed    []func(Connection, string)
	reconnecting []func(error)
	reconnected  []func(Reconnected)
	disconnected []func(error)
	postFailed   []func(Signal, error)
}

// OnSignal registers h for every received signal. Handlers registered for a
// signal's type (OnSignalType) run first, then these, in registration
// order, on the dispatcher goroutine (see Session).
func (s *Session) OnSignal(h func(Signal)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hs.signal = append(slices.Clip(s.hs.signal), h)
}

// OnSignalType registers h for received signals of type typ ("" for
// signals without a type).
func (s *Session) OnSignalType(typ string, h func(Signal)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hs.byType[typ] = append(slices.Clip(s.hs.byType[typ]), h)
}

// OnConnectionCreated registers h for connections that join the session
// after this one. Those present at connect time are in Connections.
func (s *Session) OnConnectionCreated(h func(Connection)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hs.created = append(slices.Clip(s.hs.created), h)
}

// OnConnectionDestroyed registers h for connections that leave the session,
// with the reason: clientDisconnected, forceDisconnected or
// networkDisconnected.
func (s *Session) OnConnectionDestroyed(h func(c Connection, reason string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hs.destroyed = append(slices.Clip(s.hs.destroyed), h)
}

// OnReconnecting registers h for the loss of the socket; err says why. The
// client is reconnecting; sends without NoRetry are queued meanwhile.
func (s *Session) OnReconnecting(h func(err error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hs.reconnecting = append(slices.Clip(s.hs.reconnecting), h)
}

// OnReconnected registers h for the end of a reconnect. It runs before any
// event received on the new socket.
func (s *Session) OnReconnected(h func(Reconnected)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hs.reconnected = append(slices.Clip(s.hs.reconnected), h)
}

// OnDisconnected registers h for the end of the session: err is nil after
// Close; an *Error (a refused token on reconnect: 401), a *CloseError
// (forced disconnect: 4410, superseded: 4409) or a reconnect failure after
// ReconnectTimeout otherwise. It is the last handler call of a Session.
func (s *Session) OnDisconnected(h func(err error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hs.disconnected = append(slices.Clip(s.hs.disconnected), h)
}

// OnPostFailed registers h for posts (Session.Post) that failed: the
// relay refused them (an *Error with its code), or they were not, or maybe
// not, delivered (code 500, as Signal would return). Closing the session
// drops the failures not yet handed over.
func (s *Session) OnPostFailed(h func(sig Signal, err error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hs.postFailed = append(slices.Clip(s.hs.postFailed), h)
}

type eventKind int

const (
	evSignal eventKind = iota
	evCreated
	evDestroyed
	evReconnecting
	evReconnected
	evDisconnected
	evPostFailed
)

type event struct {
	kind   eventKind
	sig    Signal
	conn   Connection
	reason string
	err    error
	rec    Reconnected
}

// counts reports whether e counts against Options.EventBuffer. Lifecycle
// events are few (at most a handful per outage) and always queued, as are
// failed posts (at most QueueLimit at a time).
func (e *event) counts() bool { return e.kind <= evDestroyed }

// enqueueLocked appends e to the event queue. It reports false, queuing
// nothing, when e counts against a full buffer.
func (s *Session) enqueueLocked(e event) bool {
	if e.counts() {
		if s.counted >= s.o.EventBuffer {
			return false
		}
		s.counted++
	}
	s.events = append(s.events, e)
	select {
	case s.evWake <- struct{}{}:
	default:
	}
	return true
}

// dispatch runs every handler, one event at a time, in queue order, until
// the final disconnected event has been delivered.
func (s *Session) dispatch() {
	defer s.wg.Done()
	defer close(s.done)
	for {
		s.mu.Lock()
		for len(s.events) == 0 {
			if s.evEnd {
				s.mu.Unlock()
				return
			}
			s.mu.Unlock()
			<-s.evWake
			s.mu.Lock()
		}
		e := s.events[0]
		s.events[0] = event{}
		s.events = s.events[1:]
		if len(s.events) == 0 {
			s.events = nil // let go of the drained backing array
		}
		if e.counts() {
			s.counted--
		}
		calls := s.applyLocked(&e)
		var cut *sconn
		if s.overflowed != nil && s.counted <= s.o.EventBuffer/2 {
			cut, s.overflowed = s.overflowed, nil
		}
		s.mu.Unlock()
		if cut != nil {
			cut.fail(errSlowHandlers) // resume to get the discarded events
		}
		calls()
	}
}

// applyLocked advances the application's view by e and returns the
// handler calls for it, to be made without mu.
func (s *Session) applyLocked(e *event) func() {
	h := &s.hs
	switch e.kind {
	case evSignal:
		typed, all := h.byType[e.sig.Type], h.signal
		return func() {
			for _, f := range typed {
				f(e.sig)
			}
			for _, f := range all {
				f(e.sig)
			}
		}
	case evCreated:
		if !slices.ContainsFunc(s.conns, func(c Connection) bool { return c.ConnectionID == e.conn.ConnectionID }) {
			s.conns = append(s.conns, e.conn)
		}
		fs := h.created
		return func() {
			for _, f := range fs {
				f(e.conn)
			}
		}
	case evDestroyed:
		s.conns = slices.DeleteFunc(s.conns, func(c Connection) bool { return c.ConnectionID == e.conn.ConnectionID })
		fs := h.destroyed
		return func() {
			for _, f := range fs {
				f(e.conn, e.reason)
			}
		}
	case evReconnecting:
		fs := h.reconnecting
		return func() {
			for _, f := range fs {
				f(e.err)
			}
		}
	case evReconnected:
		if !e.rec.Resumed {
			s.self = e.rec.Connection
			s.conns = slices.Clone(e.rec.Connections)
		}
		fs := h.reconnected
		return func() {
			for _, f := range fs {
				f(e.rec)
			}
		}
	case evPostFailed:
		fs := h.postFailed
		return func() {
			for _, f := range fs {
				f(e.sig, e.err)
			}
		}
	case evDisconnected:
		fs := h.disconnected
		return func() {
			for _, f := range fs {
				f(e.err)
			}
		}
	}
	return func() {}
}
