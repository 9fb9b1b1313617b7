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
