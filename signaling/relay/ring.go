package relay

import "github.com/teleop/teleop/signaling"

// replayRing holds the most recent sequenced events of one connection, so a
// resumed connection gets what it missed. It keeps at most maxFrames events
// and maxBytes of them, whether or not they were written: an event written to
// a socket that then dropped may never have arrived. It grows on demand, so an
// idle connection holds no buffer. Guarded by conn.mu.
type replayRing struct {
	buf   []item // circular; len(buf) is the capacity
	head  int    // index of the oldest
	n     int
	bytes int
}

// push appends it, evicting the oldest events to stay within the limits, and
// returns the evicted items' highest seq (0 when none was evicted).
func (r *replayRing) push(it item, maxFrames, maxBytes int) (evicted uint64) {
	sz := it.ev.size()
	for r.n > 0 && (r.n >= maxFrames || r.bytes+sz > maxBytes) {
		evicted = r.popOldest().seq
	}
	if maxFrames <= 0 || sz > maxBytes {
		return it.seq
	}
	if r.n == len(r.buf) {
		r.grow(maxFrames)
	}
	r.buf[(r.head+r.n)%len(r.buf)] = it
	r.n++
	r.bytes += sz
	return evicted
}

func (r *replayRing) popOldest() item {
	it := r.buf[r.head]
	r.buf[r.head] = item{}
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	r.bytes -= it.ev.size()
	return it
}

func (r *replayRing) grow(maxFrames int) {
	n := 2 * len(r.buf)
	if n < 8 {
		n = 8
	}
	if n > maxFrames {
		n = maxFrames
	}
	nb := make([]item, n)
	for i := 0; i < r.n; i++ {
		nb[i] = r.buf[(r.head+i)%len(r.buf)]
	}
	r.buf, r.head = nb, 0
}

// oldest returns the seq of the oldest held event, or 0 when empty.
func (r *replayRing) oldest() uint64 {
	if r.n == 0 {
		return 0
	}
	return r.buf[r.head].seq
}

// after calls f for every held event with seq > last, oldest first.
func (r *replayRing) after(last uint64, f func(item)) {
	for i := 0; i < r.n; i++ {
		if it := r.buf[(r.head+i)%len(r.buf)]; it.seq > last {
			f(it)
		}
	}
}

// release drops the buffer (the connection is gone).
func (r *replayRing) release() { *r = replayRing{} }

// resultCacheSize is how many recent send ids a connection remembers.
const resultCacheSize = signaling.MaxRememberedSends

type result struct {
	code int
	msg  string
}

// resultCache remembers the outcome of the last resultCacheSize sends of a
// connection by id, so a send repeated across a resume is answered, not
// delivered again. Guarded by conn.mu; allocated on first use.
type resultCache struct {
	m     map[string]result
	order []string // circular, len resultCacheSize once allocated
	next  int
}

func (rc *resultCache) get(id string) (result, bool) {
	r, ok := rc.m[id]
	return r, ok
}

func (rc *resultCache) put(id string, r result) {
	if rc.m == nil {
		rc.m = make(map[string]result, 16)
		rc.order = make([]string, resultCacheSize)
	}
	if _, ok := rc.m[id]; ok {
		rc.m[id] = r
		return
	}
	if old := rc.order[rc.next]; old != "" {
		delete(rc.m, old)
	}
	rc.order[rc.next] = id
	rc.next = (rc.next + 1) % resultCacheSize
	rc.m[id] = r
}

// tokenBucket is a per-connection rate limit: rate tokens per second up to
// burst. Guarded by conn.mu. Time is Unix ns from the server's clock.
type tokenBucket struct {
	tokens float64
	last   int64
}

func (tb *tokenBucket) take(now int64, rate float64, burst int) bool {
	if tb.last == 0 {
		tb.tokens = float64(burst)
	} else if d := now - tb.last; d > 0 {
		tb.tokens += float64(d) / 1e9 * rate
	}
	if tb.tokens > float64(burst) {
		tb.tokens = float64(burst)
	}
	tb.last = now
	if tb.tokens < 1 {
		return false
	}
	tb.tokens--
	return true
}
