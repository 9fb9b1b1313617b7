package relay

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/teleop/teleop/clock"
	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/token"
)

// session is a named group of connections. It exists while it has members;
// the last one to leave marks it dead and removes it from Server.sessions.
type session struct {
	id string

	mu      sync.RWMutex
	members []*conn          // guarded by mu; oldest first; replaced, never modified in place; in a cluster, other nodes' too
	byID    map[string]*conn // guarded by mu
	dead    bool             // guarded by mu: removed from Server.sessions; joiners must get a new one
}

// conn is one membership of a session. It outlives its socket for the grace
// period and can be resumed on a new one.
type conn struct {
	// Static after join.
	id      string
	created int64 // Unix ms
	data    string
	role    token.Role
	sess    *session
	info    []byte // the Connection object, JSON

	written atomic.Uint64 // highest seq the writer of a socket of this conn wrote; for drop accounting

	// Cluster: node is "" for this node's connections, else the node that
	// has it (a remote connection: no socket, ring or seq here). orphan
	// runs the grace period of a remote connection whose node died. Both
	// guarded by sess.mu (node: written with it held for writing).
	node   string
	orphan *time.Timer

	mu         sync.Mutex
	seq        uint64      // guarded by mu: seq of the last event delivered to this connection
	ring       replayRing  // guarded by mu
	sock       *sock       // guarded by mu: the socket events go to; nil in the grace period
	gone       bool        // guarded by mu: removed from its session
	graceTimer clock.Timer // guarded by mu
	graceGen   uint64      // guarded by mu: invalidates a grace timer that already fired
	resumeKey  string      // guarded by mu
	results    resultCache // guarded by mu
	bucket     tokenBucket // guarded by mu
	kvRev      uint64      // guarded by mu: cluster: revision of its bucket entry
	keyHash    string      // guarded by mu: cluster: hash of resumeKey's secret
}

// addLocked makes c a member. sess.mu must be held for writing.
func (sess *session) addLocked(c *conn) {
	members := make([]*conn, len(sess.members), len(sess.members)+1)
	copy(members, sess.members)
	sess.members = append(members, c)
	sess.byID[c.id] = c
}

func (c *conn) connection() signaling.Connection {
	return signaling.Connection{ConnectionID: c.id, CreationTime: c.created, Data: c.data}
}

// stopGraceLocked cancels a pending grace period. c.mu must be held.
func (c *conn) stopGraceLocked() {
	if c.graceTimer != nil {
		c.graceTimer.Stop()
		c.graceTimer = nil
	}
	c.graceGen++
}

func randomID(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("relay: crypto/rand: " + err.Error()) // never fails on supported platforms
	}
	return hex.EncodeToString(b)
}

func newResumeKey() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic("relay: crypto/rand: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// newConnectionID returns a random UUID (version 4), OpenTok's format.
func newConnectionID() string {
	h := randomID(16)
	b := []byte(h)
	b[12] = '4'
	b[16] = "89ab"[b[16]%4]
	return fmt.Sprintf("%s-%s-%s-%s-%s", b[0:8], b[8:12], b[12:16], b[16:20], b[20:32])
}

// validConnectionID reports whether id could be a connection ID (a `to`
// that fails is malformed, 400, rather than unknown, 404).
func validConnectionID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// session returns the live session id, creating it when create is set.
func (s *Server) session(id string, create bool) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[id]
	if sess == nil && create {
		sess = &session{id: id, byID: make(map[string]*conn)}
		s.sessions[id] = sess
		s.metrics.sessions.Add(1)
	}
	return sess
}

// dropSession forgets sess once it is dead (its last member left).
func (s *Server) dropSession(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions[sess.id] == sess {
		delete(s.sessions, sess.id)
		s.metrics.sessions.Add(-1)
	}
}

// errSessionFull refuses a join at the connection limit.
type errSessionFull struct{ limit int }

func (e errSessionFull) Error() string {
	return fmt.Sprintf("session is full (%d connections)", e.limit)
}

// join adds a new connection for claims to its session, attached to sk, and
// queues its welcome on sk before any other member can deliver to it.
func (s *Server) join(sk *sock, claims *token.Claims) (*conn, error) {
	c := &conn{
		id:      newConnectionID(),
		created: s.clock.Now().UnixMilli(),
		data:    claims.ConnectionData,
		role:    claims.Role,
		sess:    &session{id: claims.SessionID},
	}
	c.info = appendConnection(nil, c.id, c.created, c.data)
	if s.cl != nil {
		// Recorded for the cluster before anyone hears of it.
		c.resumeKey, c.keyHash = clusterKey(c.id, claims.SessionID)
		s.cl.joining(c)
	}
	for {
		sess := s.session(claims.SessionID, true)
		sess.mu.Lock()
		if sess.dead {
			sess.mu.Unlock()
			continue
		}
		if len(sess.members) >= s.maxConns {
			sess.mu.Unlock()
			if s.cl != nil {
				s.cl.leaving(c, false)
			}
			return nil, errSessionFull{s.maxConns}
		}
		c.sess = sess
		created := newPresenceEvent(c, "")
		for _, m := range sess.members {
			s.deliver(m, created)
		}
		sess.addLocked(c)
		s.metrics.connections.Add(1)

		c.mu.Lock()
		c.sock = sk
		if s.cl != nil {
			s.registerKey(c, c.resumeKey)
			s.cl.publish(sess.id, &cmsg{K: "c", ID: c.id, Created: c.created, Data: c.data, Role: string(c.role)})
		} else {
			c.resumeKey = s.newKeyFor(c, "")
		}
		sk.enqueueForce(item{ev: s.welcome(sess, c, false, 0, false)})
		c.mu.Unlock()
		sess.mu.Unlock()
		return c, nil
	}
}

// resume attaches sk to the connection that holds key, if it is still in the
// session, and queues the welcome and the replay of events after last. It
// returns nil when the key is unknown or its connection is gone.
func (s *Server) resume(sk *sock, key string, last uint64) *conn {
	s.keysMu.Lock()
	c := s.keys[key]
	s.keysMu.Unlock()
	if c == nil {
		return nil
	}
	sess := c.sess
	sess.mu.RLock()
	defer sess.mu.RUnlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone || c.resumeKey != key {
		return nil
	}
	if old := c.sock; old != nil {
		old.shutdown(whySuperseded)
	}
	c.stopGraceLocked()
	c.sock = sk
	c.resumeKey = s.newKeyFor(c, c.resumeKey)
	if last > c.seq {
		last = c.seq
	}
	var missed uint64
	oldest := c.ring.oldest()
	if oldest == 0 {
		oldest = c.seq + 1
	}
	if last+1 < oldest {
		missed = oldest - last - 1
	}
	sk.enqueueForce(item{ev: s.welcome(sess, c, true, missed, false)})
	c.ring.after(last, func(it item) { sk.enqueueForce(it) })
	s.metrics.resumes.Inc()
	if s.cl != nil {
		s.cl.rekeyed(c)
	}
	return c
}

// newKeyFor registers a fresh resume key for c and forgets old. c.mu must
// be held.
func (s *Server) newKeyFor(c *conn, old string) string {
	var k string
	if s.cl != nil {
		k, c.keyHash = clusterKey(c.id, c.sess.id)
	} else {
		k = newResumeKey()
	}
	s.keysMu.Lock()
	if old != "" {
		delete(s.keys, old)
	}
	s.keys[k] = c
	s.keysMu.Unlock()
	return k
}

// registerKey makes key resume c.
func (s *Server) registerKey(c *conn, key string) {
	s.keysMu.Lock()
	s.keys[key] = c
	s.keysMu.Unlock()
}

// welcome builds the welcome frame for c. sess.mu and c.mu must be held.
func (s *Server) welcome(sess *session, c *conn, resumed bool, missed uint64, missedUnknown bool) *event {
	conns := make([]signaling.Connection, len(sess.members))
	for i, m := range sess.members {
		conns[i] = m.connection()
	}
	self := c.connection()
	limits := s.limits
	return jsonFrame(&signaling.Frame{
		Op:            signaling.OpWelcome,
		SessionID:     sess.id,
		Connection:    &self,
		Role:          string(c.role),
		Connections:   conns,
		ResumeKey:     c.resumeKey,
		Seq:           c.seq,
		Resumed:       resumed,
		Missed:        missed,
		Limits:        &limits,
		MissedUnknown: missedUnknown,
	})
}

// deliver hands ev to m: the next seq, the replay ring and, when m has a
// socket, its queue. It never blocks; a full queue makes m's socket a slow
// consumer. m.sess.mu must be held (read or write).
func (s *Server) deliver(m *conn, ev *event) {
	if m.node != "" {
		return // another node's: that node delivers it
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gone {
		return
	}
	m.seq++
	it := item{seq: m.seq, ev: ev}
	if ev := m.ring.push(it, s.replayFrames, MaxReplayBytes); ev != 0 && ev > m.written.Load() {
		s.metrics.dropped.Inc()
	}
	if sk := m.sock; sk != nil {
		if ok, full := sk.enqueue(it); !ok && full {
			s.slowConsumer(sk)
		}
	}
}

func (s *Server) slowConsumer(sk *sock) {
	if sk.shutdown(whySlowConsumer) {
		s.metrics.slowConsumers.Inc()
	}
}

// removeLocked takes c out of its session and tells the others with reason
// (in a cluster, when announce is set and c is this node's, the other nodes
// too). It returns c's socket, if it had one, for the caller to close.
// sess.mu must be held for writing.
func (s *Server) removeLocked(sess *session, c *conn, reason string, announce bool) *sock {
	c.mu.Lock()
	if c.gone {
		c.mu.Unlock()
		return nil
	}
	c.gone = true
	c.stopGraceLocked()
	sk, key := c.sock, c.resumeKey
	c.sock = nil
	c.ring.release()
	c.mu.Unlock()

	s.keysMu.Lock()
	delete(s.keys, key)
	s.keysMu.Unlock()

	members := make([]*conn, 0, len(sess.members))
	for _, m := range sess.members {
		if m != c {
			members = append(members, m)
		}
	}
	sess.members = members
	delete(sess.byID, c.id)
	c.stopOrphanLocked()
	if c.node != "" {
		s.metrics.remoteConnections.Add(-1)
	} else {
		s.metrics.connections.Add(-1)
		if announce && s.cl != nil {
			s.cl.publish(sess.id, &cmsg{K: "d", ID: c.id, Reason: reason})
		}
	}
	ev := newPresenceEvent(c, reason)
	for _, m := range members {
		s.deliver(m, ev)
	}
	if len(members) == 0 {
		sess.dead = true
	}
	return sk
}

// unlockAndDrop unlocks sess (held for writing) and forgets it if its last
// member left.
func (s *Server) unlockAndDrop(sess *session) {
	dead := sess.dead
	sess.mu.Unlock()
	if dead {
		s.dropSession(sess)
	}
}

// remove takes c out of its session (see removeLocked). When onlyIf is not
// nil, it does so only while c is attached to that socket.
func (s *Server) remove(c *conn, reason string, onlyIf *sock) *sock {
	if s.cl != nil && (onlyIf == nil || c.onSocket(onlyIf)) {
		s.cl.leaving(c, false)
	}
	sess := c.sess
	sess.mu.Lock()
	if onlyIf != nil {
		c.mu.Lock()
		attached := c.sock == onlyIf
		c.mu.Unlock()
		if !attached {
			sess.mu.Unlock()
			return nil
		}
	}
	sk := s.removeLocked(sess, c, reason, true)
	s.unlockAndDrop(sess)
	return sk
}

// onSocket reports whether c is attached to sk.
func (c *conn) onSocket(sk *sock) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sock == sk
}

// detach ends sk's hold on c. If c is still attached to sk, it enters its
// grace period (unless the relay is closing).
func (s *Server) detach(c *conn, sk *sock) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sock != sk || c.gone {
		return
	}
	c.sock = nil
	if s.isClosed() {
		return
	}
	c.stopGraceLocked()
	gen := c.graceGen
	c.graceTimer = s.clock.AfterFunc(s.grace, func() {
		if !s.goStart() {
			return
		}
		defer s.wg.Done()
		s.graceEnded(c, gen)
	})
}

// graceEnded removes c if it is still waiting in the grace period gen.
func (s *Server) graceEnded(c *conn, gen uint64) {
	sess := c.sess
	expired := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return !c.gone && c.sock == nil && c.graceGen == gen
	}
	if s.cl != nil {
		// The cluster's record goes first, unless another node has
		// resumed the connection meanwhile ("moved" then follows).
		if !expired() || !s.cl.leaving(c, true) {
			return
		}
	}
	sess.mu.Lock()
	if !expired() || c.node != "" {
		sess.mu.Unlock()
		return
	}
	s.removeLocked(sess, c, signaling.ReasonNetworkDisconnected, true)
	s.unlockAndDrop(sess)
	s.log.Debug("grace period ended", "session", sess.id, "connection", c.id)
}

// forceDisconnect removes connection id from session sessionID with reason
// forceDisconnected, tells its socket and closes it with 4410. It reports
// whether there was such a connection.
func (s *Server) forceDisconnect(sessionID, id string) bool {
	sess := s.session(sessionID, false)
	if sess == nil {
		return false
	}
	sess.mu.Lock()
	c := sess.byID[id]
	if c == nil {
		sess.mu.Unlock()
		return false
	}
	if c.node != "" {
		// Another node's: that node removes it and announces it.
		s.cl.publish(sess.id, &cmsg{K: "x", ID: id})
		sess.mu.Unlock()
		return true
	}
	if s.cl != nil {
		sess.mu.Unlock()
		s.cl.leaving(c, false)
		sess.mu.Lock()
		if sess.byID[id] != c || c.node != "" {
			sess.mu.Unlock()
			return true // gone or moved meanwhile
		}
	}
	sk := s.removeLocked(sess, c, signaling.ReasonForceDisconnected, true)
	s.unlockAndDrop(sess)
	if sk != nil {
		sk.enqueue(item{ev: disconnectedFrame(signaling.ReasonForceDisconnected)})
		sk.shutdown(whyForceDisconnected)
	}
	return true
}

// signal delivers a signal in sess from `from` (nil: the REST API) to `to`
// ("" : every member, the sender included). It returns the completion code
// and, unless 200, why. Validation of type and data is the caller's.
func (s *Server) signal(sess *session, from *conn, to, typ, data string, queuedMs int64) (int, string) {
	if to != "" && !validConnectionID(to) {
		return signaling.CodeInvalid, "the to field is not a connection ID"
	}
	code, msg, unknown := s.signalLocked(sess, from, to, typ, data, queuedMs)
	if unknown && s.cl != nil {
		// A connection this node has not heard of yet may have joined
		// another node a moment ago: the cluster's record decides.
		return s.cl.signalUnheard(sess.id, clusterSignal(from, to, typ, data, queuedMs))
	}
	return code, msg
}

// clusterSignal is the cluster event of a signal.
func clusterSignal(from *conn, to, typ, data string, queuedMs int64) *cmsg {
	m := &cmsg{K: "s", Type: typ, Data: data, To: to, Queued: queuedMs}
	if from != nil {
		m.ID = from.id
	}
	return m
}

// signalLocked delivers m to this node's receivers and, in a cluster,
// publishes it for the others': every broadcast (a connection that joined
// another node a moment ago is a receiver too), and a signal to another
// node's connection. unknown reports a `to` this node does not know.
func (s *Server) signalLocked(sess *session, from *conn, to, typ, data string, queuedMs int64) (code int, msg string, unknown bool) {
	sess.mu.RLock()
	defer sess.mu.RUnlock()
	if sess.dead {
		return signaling.CodeNotFound, "the session has no connections", s.cl != nil && to == ""
	}
	if from != nil {
		from.mu.Lock()
		gone := from.gone
		from.mu.Unlock()
		if gone {
			return signaling.CodeNotConnected, "this connection has left the session", false
		}
	}
	ev := newSignalEvent(typ, data, from, to, s.clock.Now().UnixNano(), queuedMs)
	publish := s.cl != nil && to == ""
	if to != "" {
		target := sess.byID[to]
		if target == nil {
			return signaling.CodeNotFound, fmt.Sprintf("connection %s is not in this session", to), true
		}
		s.deliver(target, ev)
		publish = target.node != ""
	} else {
		for _, c := range sess.members {
			s.deliver(c, ev)
		}
	}
	if publish {
		s.cl.publish(sess.id, clusterSignal(from, to, typ, data, queuedMs))
	}
	return signaling.CodeOK, "", false
}
