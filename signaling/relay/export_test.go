package relay

import dto "github.com/prometheus/client_model/go"

// ConnStateForTest returns "active" (on a socket), "grace" (waiting for a
// resume) or "gone" for connection id of session sessionID.
func (s *Server) ConnStateForTest(sessionID, id string) string {
	sess := s.session(sessionID, false)
	if sess == nil {
		return "gone"
	}
	sess.mu.RLock()
	c := sess.byID[id]
	sess.mu.RUnlock()
	if c == nil {
		return "gone"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.gone:
		return "gone"
	case c.sock == nil:
		return "grace"
	}
	return "active"
}

// SocketsForTest returns how many sockets are open.
func (s *Server) SocketsForTest() int64 { return s.metrics.sockets.Load() }

// SlowConsumersForTest returns how many sockets were closed as slow consumers.
func (s *Server) SlowConsumersForTest() int {
	var m dto.Metric
	_ = s.metrics.slowConsumers.Write(&m)
	return int(m.GetCounter().GetValue())
}

// CrashForTest makes the relay stop as a killed process would: NATS and
// every TCP connection cut, no goodbye, no close frames. Close it after.
func (s *Server) CrashForTest() {
	if s.cl != nil {
		s.cl.crash()
	}
	s.mu.Lock()
	for sk := range s.socks {
		sk.fc.Close()
	}
	s.mu.Unlock()
}

// KnowsForTest reports whether the relay has connection id in session
// sessionID, and whether it is another node's.
func (s *Server) KnowsForTest(sessionID, id string) (known, remote bool) {
	sess := s.session(sessionID, false)
	if sess == nil {
		return false, false
	}
	sess.mu.RLock()
	defer sess.mu.RUnlock()
	c := sess.byID[id]
	return c != nil, c != nil && c.node != ""
}

// PauseHeartbeatsForTest stops (or resumes) the node's heartbeats, as a
// node too slow to send them would.
func (s *Server) PauseHeartbeatsForTest(paused bool) { s.cl.hbPaused.Store(paused) }

// InGraceForTest reports whether the relay runs a grace period for
// connection id of another node (its node taken for dead).
func (s *Server) InGraceForTest(sessionID, id string) bool {
	sess := s.session(sessionID, false)
	if sess == nil {
		return false
	}
	sess.mu.RLock()
	defer sess.mu.RUnlock()
	c := sess.byID[id]
	return c != nil && c.orphan != nil
}
