package signaling

// SetQueuedHook makes every Signal and ForceDisconnect call f right after
// its send is queued (before it waits for the result), so tests can order
// "the send is waiting" before "time moves".
func SetQueuedHook(s *Session, f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.testQueued = f
}

// Pending is how many sends and posts the session holds: queued, or
// written and not yet answered or confirmed.
func Pending(s *Session) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sends)
}

// PostsPerBarrier is how many unconfirmed posts make the writer ping.
const PostsPerBarrier = postsPerBarrier
