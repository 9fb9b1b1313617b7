package signaling

// SetQueuedHook makes every Signal and ForceDisconnect call f right after
// its send is queued (before it waits for the result), so tests can order
// "the send is waiting" before "time moves".
func SetQueuedHook(s *Session, f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.testQueued = f
}
