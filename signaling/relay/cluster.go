package relay

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/token"
)

// Defaults of ClusterOptions.
const (
	DefaultClusterPrefix = "teleop"
	DefaultHeartbeat     = time.Second
	kvTimeout            = 2 * time.Second // one key-value operation
)

// ClusterOptions make a relay one node of a cluster that shares sessions
// through NATS (docs/cluster.md). Every node of a cluster needs the same
// API key and secret, Prefix and NATS.
type ClusterOptions struct {
	// URLs are the NATS servers, comma-separated: nats://host:4222[,…].
	URLs string
	// NodeName names this node; unique in the cluster. Required.
	NodeName string
	// Prefix of the NATS subjects and key-value buckets; default "teleop".
	Prefix string
	// Heartbeat is how often the node says it is alive; default 1 s.
	Heartbeat time.Duration
	// NodeTimeout is how long a node may be silent before the others take
	// it for dead and start the grace period of its connections; default
	// three heartbeats.
	NodeTimeout time.Duration
}

// cluster is a relay's membership of a cluster. Every node hears every
// session's events (subject <prefix>.s.<session>) and keeps every session's
// membership: its own connections (local) and the others' (remote, with
// node set). Events are delivered by the node of the receiver: a node
// delivers what it hears to its local connections only.
//
// Shared state lives in one JetStream key-value bucket, <prefix>_conns:
// one entry per connection (its identity, its node and a hash of its resume
// key). A node writes an entry before it announces the connection and
// deletes it before it announces the end, so a node that starts and reads
// the bucket after subscribing misses nothing. Moving a connection between
// nodes (a resume elsewhere) and ending a connection whose node died are
// compare-and-set operations on the entry's revision: of two nodes that try
// at once, one wins.
type cluster struct {
	s    *Server
	o    ClusterOptions
	log  *slog.Logger
	nc   *nats.Conn
	js   jetstream.JetStream
	kv   jetstream.KeyValue // guarded by mu; see bucket
	subj string             // <prefix>.s.
	// self is this node in events, entries and heartbeats: its name and
	// a random suffix, so a node restarted under the same name is a new
	// node and the others end the connections of the old one.
	self string

	inited    chan struct{} // closed once nc and js are set
	ready     chan struct{} // closed once the first snapshot is loaded
	applyMu   sync.Mutex    // serialises applying events and re-syncing
	up        atomic.Bool   // connected to NATS
	hbPaused  atomic.Bool   // tests: a node too slow to send its heartbeats
	resyncing atomic.Bool

	mu      sync.Mutex
	nodes   map[string]time.Time // guarded by mu: last heartbeat of every other node
	dead    map[string]bool      // guarded by mu: nodes taken for dead
	closing bool                 // guarded by mu
	backlog []*cmsg              // guarded by mu: ends of our connections not announced (NATS down)

	wg   sync.WaitGroup
	stop chan struct{}
	once sync.Once // shut
}

// cmsg is one event on a session's subject.
type cmsg struct {
	K       string `json:"k"`            // c: created, d: destroyed, s: signal, m: moved, x: kick (force disconnect)
	S       string `json:"s"`            // session ID
	N       string `json:"n"`            // the node that sends it (m: the connection's new node)
	ID      string `json:"id,omitempty"` // connection (c d m x), sender (s, "" for REST)
	Created int64  `json:"ct,omitempty"` // c
	Data    string `json:"d,omitempty"`  // c: connection data; s: signal data
	Role    string `json:"r,omitempty"`  // c
	Reason  string `json:"why,omitempty"`
	Type    string `json:"t,omitempty"`  // s
	To      string `json:"to,omitempty"` // s
	Queued  int64  `json:"q,omitempty"`  // s: ms the sender and the first node held it
}

// centry is a connection's entry in the key-value bucket.
type centry struct {
	S       string `json:"s"`
	ID      string `json:"id"`
	Created int64  `json:"ct"`
	Data    string `json:"d"`
	Role    string `json:"r"`
	Node    string `json:"n"`
	KeyHash string `json:"kh"` // hex SHA-256 of the resume key's secret part
}

// hb is a heartbeat (or, with Bye, a node's goodbye).
type hb struct {
	N   string `json:"n"`
	Bye bool   `json:"bye,omitempty"`
}

func encSession(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

func entryKey(sessionID, connID string) string { return encSession(sessionID) + "." + connID }

func keyHash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// clusterKey is a resume key a node of the cluster can resolve:
// <connection>.<session, base64url>.<secret>. The secret alone is random;
// the bucket holds its hash.
func clusterKey(connID, sessionID string) (key, hash string) {
	secret := newResumeKey()
	return connID + "." + encSession(sessionID) + "." + secret, keyHash(secret)
}

func parseClusterKey(key string) (connID, sessionID, secret string, ok bool) {
	parts := strings.Split(key, ".")
	if len(parts) != 3 || !validConnectionID(parts[0]) {
		return "", "", "", false
	}
	sid, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || len(sid) == 0 {
		return "", "", "", false
	}
	return parts[0], string(sid), parts[2], true
}

// startCluster connects to NATS (retrying in the background when it is
// down: the node serves its own connections meanwhile), opens the bucket,
// loads the membership and starts the heartbeat.
func startCluster(s *Server, o ClusterOptions) (*cluster, error) {
	if o.NodeName == "" {
		return nil, errors.New("cluster: a node name is required")
	}
	if strings.ContainsAny(o.NodeName, ".*> \t\r\n") {
		return nil, fmt.Errorf("cluster: node name %q may not contain '.', '*', '>' or spaces", o.NodeName)
	}
	if o.Prefix == "" {
		o.Prefix = DefaultClusterPrefix
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.NodeTimeout <= 0 {
		o.NodeTimeout = 3 * o.Heartbeat
	}
	cl := &cluster{
		s: s, o: o, log: s.log.With("node", o.NodeName),
		self:   o.NodeName + "~" + randomID(4),
		subj:   o.Prefix + ".s.",
		ready:  make(chan struct{}),
		inited: make(chan struct{}),
		nodes:  make(map[string]time.Time),
		dead:   make(map[string]bool),
		stop:   make(chan struct{}),
	}
	nc, err := nats.Connect(o.URLs,
		nats.Name("teleop-relay "+o.NodeName),
		nats.NoEcho(), // a node applies its own events itself
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ReconnectBufSize(-1), // no events buffered while down: they would arrive out of date
		nats.ConnectHandler(func(*nats.Conn) { <-cl.inited; cl.connected("connected") }),
		nats.ReconnectHandler(func(*nats.Conn) { <-cl.inited; cl.connected("reconnected") }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			cl.up.Store(false)
			s.metrics.clusterUp.Set(0)
			cl.log.Warn("cluster: lost NATS; serving local connections only", "err", err)
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			cl.log.Warn("cluster: NATS error", "err", err)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	cl.nc = nc
	if cl.js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if _, err := nc.Subscribe(cl.subj+"*", cl.onEvent); err != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster: subscribe: %w", err)
	}
	if _, err := nc.Subscribe(o.Prefix+".hb", cl.onHeartbeat); err != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster: subscribe: %w", err)
	}
	close(cl.inited)
	if nc.IsConnected() {
		cl.connected("connected")
	}
	cl.wg.Add(1)
	go cl.heartbeat()
	return cl, nil
}

// connected runs when the NATS connection is (re)established: it opens the
// bucket if needed and re-syncs the membership in the background.
func (cl *cluster) connected(what string) {
	cl.up.Store(true)
	if !cl.resyncing.CompareAndSwap(false, true) {
		return
	}
	cl.wg.Add(1)
	go func() {
		defer cl.wg.Done()
		defer cl.resyncing.Store(false)
		for {
			err := cl.resync()
			if err == nil {
				cl.s.metrics.clusterUp.Set(1)
				cl.log.Info("cluster: "+what, "nats", cl.nc.ConnectedUrlRedacted())
				return
			}
			cl.log.Warn("cluster: re-sync failed; retrying", "err", err)
			select {
			case <-cl.stop:
				return
			case <-time.After(cl.o.Heartbeat): // NATS reconnect pacing: wall clock
			}
			if !cl.nc.IsConnected() {
				return // the next reconnect starts over
			}
		}
	}()
}

// resync makes this node's view and the bucket agree: it writes the entries
// of its own connections (announcing them again, for nodes that took them
// for gone) and reloads everyone else's, telling its local connections
// about the differences.
func (cl *cluster) resync() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*kvTimeout)
	defer cancel()
	{ // again after every reconnect: a restarted NATS has lost it
		kv, err := cl.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      cl.o.Prefix + "_conns",
			Description: "teleop relay cluster: connections, their node and resume key hash",
			History:     1,
			Storage:     jetstream.MemoryStorage,
		})
		if err != nil {
			return fmt.Errorf("key-value bucket: %w", err)
		}
		cl.mu.Lock()
		cl.kv = kv
		cl.mu.Unlock()
	}
	kv := cl.bucket()
	cl.applyMu.Lock()
	defer cl.applyMu.Unlock()

	// What the bucket says, read after the subscription started: an event
	// applied after this is newer than the snapshot.
	entries := make(map[string]centry)
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("read bucket: %w", err)
	}
	for e := range w.Updates() {
		if e == nil {
			break // the initial values are in
		}
		var ce centry
		if json.Unmarshal(e.Value(), &ce) == nil {
			entries[e.Key()] = ce
		}
	}
	w.Stop()

	s := cl.s
	s.mu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()

	// Nobody is judged on the time we could not hear them: every node
	// gets a fresh NodeTimeout, and grace periods start over.
	now := time.Now()
	cl.mu.Lock()
	for n := range cl.nodes {
		cl.nodes[n] = now
	}
	clear(cl.dead)
	cl.mu.Unlock()
	for _, sess := range sessions {
		sess.mu.Lock()
		for _, c := range sess.members {
			c.stopOrphanLocked()
		}
		sess.mu.Unlock()
	}

	// Our own connections: written (again) and announced (again).
	var mine []*conn
	for _, sess := range sessions {
		sess.mu.RLock()
		for _, c := range sess.members {
			if c.node == "" {
				mine = append(mine, c)
			}
		}
		sess.mu.RUnlock()
	}
	for _, c := range mine {
		k := entryKey(c.sess.id, c.id)
		c.mu.Lock()
		e := c.entry(cl.self)
		gone := c.gone
		c.mu.Unlock()
		if gone {
			continue
		}
		delete(entries, k)
		if err := cl.put(ctx, c, e); err != nil {
			return err
		}
		cl.publish(c.sess.id, &cmsg{K: "c", ID: c.id, Created: c.created, Data: c.data, Role: string(c.role)})
	}

	// Ours that ended while NATS was away: forgotten and announced.
	cl.mu.Lock()
	backlog := cl.backlog
	cl.backlog = nil
	cl.mu.Unlock()
	for _, m := range backlog {
		_ = kv.Delete(ctx, entryKey(m.S, m.ID))
		cl.publish(m.S, m)
		delete(entries, entryKey(m.S, m.ID))
	}

	// Everyone else's: add what we do not know. A connection that is not
	// in the bucket is not dropped here: its node may not have re-synced
	// yet. It ends by its node's event, or, if its node is gone, by the
	// grace period that the node's silence starts.
	for _, e := range entries {
		if e.Node == cl.self {
			continue
		}
		cl.applyCreated(&cmsg{K: "c", S: e.S, N: e.Node, ID: e.ID, Created: e.Created, Data: e.Data, Role: e.Role})
		cl.mu.Lock()
		if _, ok := cl.nodes[e.Node]; !ok {
			cl.nodes[e.Node] = now // heard of: it has NodeTimeout to show it is alive
		}
		cl.mu.Unlock()
	}
	for _, sess := range sessions {
		sess.mu.RLock()
		for _, c := range sess.members {
			if c.node != "" {
				cl.mu.Lock()
				if _, ok := cl.nodes[c.node]; !ok {
					cl.nodes[c.node] = now
				}
				cl.mu.Unlock()
			}
		}
		sess.mu.RUnlock()
	}
	select {
	case <-cl.ready:
	default:
		close(cl.ready)
	}
	return nil
}

// entry is c's bucket entry on node. c.mu must be held.
func (c *conn) entry(node string) centry {
	return centry{S: c.sess.id, ID: c.id, Created: c.created, Data: c.data, Role: string(c.role), Node: node, KeyHash: c.keyHash}
}

func (cl *cluster) put(ctx context.Context, c *conn, e centry) error {
	kv := cl.bucket()
	if kv == nil {
		return errors.New("no bucket yet")
	}
	b, _ := json.Marshal(e)
	rev, err := kv.Put(ctx, entryKey(c.sess.id, c.id), b)
	if err != nil {
		return fmt.Errorf("write entry of %s: %w", c.id, err)
	}
	c.mu.Lock()
	c.kvRev = rev
	c.mu.Unlock()
	return nil
}

// publish sends an event of session sessionID to the other nodes. Without
// NATS it is dropped: the re-sync on reconnect settles presence.
func (cl *cluster) publish(sessionID string, m *cmsg) {
	m.S, m.N = sessionID, cl.self
	b, err := json.Marshal(m)
	if err != nil {
		return
	}
	if !cl.up.Load() || cl.nc.Publish(cl.subj+encSession(sessionID), b) != nil {
		cl.s.metrics.clusterDropped.Inc()
		if m.K == "d" {
			cl.mu.Lock()
			cl.backlog = append(cl.backlog, m) // announced by the re-sync
			cl.mu.Unlock()
		}
	}
}

// bucket is the key-value bucket; nil before the first sync.
func (cl *cluster) bucket() jetstream.KeyValue {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.kv
}

// ---- local changes, told to the cluster ----

// joining writes the entry of c, a new local connection, before anyone
// hears of it. Without NATS the join goes on; the re-sync writes it later.
func (cl *cluster) joining(c *conn) {
	kv := cl.bucket()
	if !cl.up.Load() || kv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), kvTimeout)
	defer cancel()
	c.mu.Lock()
	e := c.entry(cl.self)
	c.mu.Unlock()
	if err := cl.put(ctx, c, e); err != nil {
		cl.log.Warn("cluster: could not record a connection", "err", err)
	}
}

// rekeyed records c's new resume key (after a resume on this node).
func (cl *cluster) rekeyed(c *conn) {
	kv := cl.bucket()
	if !cl.up.Load() || kv == nil {
		return
	}
	cl.wg.Add(1)
	go func() {
		defer cl.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), kvTimeout)
		defer cancel()
		c.mu.Lock()
		e, rev, gone := c.entry(cl.self), c.kvRev, c.gone
		c.mu.Unlock()
		if gone {
			return
		}
		b, _ := json.Marshal(e)
		if rev, err := kv.Update(ctx, entryKey(c.sess.id, c.id), b, rev); err == nil {
			c.mu.Lock()
			c.kvRev = rev
			c.mu.Unlock()
		}
	}()
}

// leaving deletes c's entry: c ended on this node. graceEnd asks for a
// compare-and-set: it fails (false) when another node took c over.
func (cl *cluster) leaving(c *conn, graceEnd bool) bool {
	kv := cl.bucket()
	if !cl.up.Load() || kv == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), kvTimeout)
	defer cancel()
	c.mu.Lock()
	rev := c.kvRev
	c.mu.Unlock()
	var opts []jetstream.KVDeleteOpt
	if graceEnd && rev != 0 {
		opts = append(opts, jetstream.LastRevision(rev))
	}
	err := kv.Delete(ctx, entryKey(c.sess.id, c.id), opts...)
	if err != nil && graceEnd && errors.Is(err, jetstream.ErrKeyExists) {
		return false // wrong last sequence: another node resumed it
	}
	return true
}

// signalUnheard sends m, a signal for a connection (or a session) this node
// has not heard of, if the bucket knows it: it may have joined another node
// a moment ago. 404 otherwise.
func (cl *cluster) signalUnheard(sessionID string, m *cmsg) (int, string) {
	kv := cl.bucket()
	if cl.up.Load() && kv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), kvTimeout)
		defer cancel()
		found := false
		if m.To != "" {
			_, err := kv.Get(ctx, entryKey(sessionID, m.To))
			found = err == nil
		} else if l, err := kv.ListKeysFiltered(ctx, encSession(sessionID)+".*"); err == nil {
			for range l.Keys() {
				found = true
			}
		}
		if found {
			cl.publish(sessionID, m)
			return signaling.CodeOK, ""
		}
	}
	if m.To != "" {
		return signaling.CodeNotFound, fmt.Sprintf("connection %s is not in this session", m.To)
	}
	return signaling.CodeNotFound, fmt.Sprintf("session %s has no connections", sessionID)
}

// ---- events from other nodes ----

func (cl *cluster) onEvent(msg *nats.Msg) {
	<-cl.ready
	var m cmsg
	if err := json.Unmarshal(msg.Data, &m); err != nil || m.S == "" || m.N == cl.self {
		return
	}
	cl.applyMu.Lock()
	defer cl.applyMu.Unlock()
	switch m.K {
	case "c":
		cl.applyCreated(&m)
	case "d":
		cl.applyDestroyed(&m)
	case "s":
		cl.applySignal(&m)
	case "m":
		cl.applyMoved(&m)
	case "x":
		cl.applyKick(&m)
	}
}

// applyCreated adds a remote connection (or moves a known one to m.N) and
// tells the local members. It returns the connection.
func (cl *cluster) applyCreated(m *cmsg) *conn {
	s := cl.s
	for {
		sess := s.session(m.S, true)
		sess.mu.Lock()
		if sess.dead {
			sess.mu.Unlock()
			continue
		}
		if c := sess.byID[m.ID]; c != nil {
			if c.node != "" && c.node != m.N {
				c.node = m.N
			}
			sess.mu.Unlock()
			cl.heardOf(m.N)
			return c
		}
		role, err := token.ParseRole(m.Role)
		if err != nil {
			role = token.Publisher
		}
		c := &conn{id: m.ID, created: m.Created, data: m.Data, role: role, sess: sess, node: m.N}
		c.info = appendConnection(nil, c.id, c.created, c.data)
		ev := newPresenceEvent(c, "")
		for _, mm := range sess.members {
			s.deliver(mm, ev)
		}
		sess.addLocked(c)
		s.metrics.remoteConnections.Add(1)
		sess.mu.Unlock()
		cl.heardOf(m.N)
		return c
	}
}

// heardOf: node has connections. A node not heard of before has
// NodeTimeout from now to show it is alive; one taken for dead that has a
// connection again (a node back after a partition) is alive.
func (cl *cluster) heardOf(node string) {
	cl.mu.Lock()
	_, known := cl.nodes[node]
	wasDead := cl.dead[node]
	if !known || wasDead {
		delete(cl.dead, node)
		cl.nodes[node] = time.Now()
	}
	cl.mu.Unlock()
	if wasDead {
		cl.stopOrphansOf(node)
	}
}

func (cl *cluster) applyDestroyed(m *cmsg) {
	s := cl.s
	sess := s.session(m.S, false)
	if sess == nil {
		return
	}
	sess.mu.Lock()
	c := sess.byID[m.ID]
	var sk *sock
	if c != nil {
		// A local connection ends too when the cluster ended it (its
		// node was cut off from NATS longer than the grace period).
		sk = s.removeLocked(sess, c, m.Reason, false)
	}
	s.unlockAndDrop(sess)
	if sk != nil {
		sk.shutdown(whyNetwork)
	}
}

func (cl *cluster) applySignal(m *cmsg) {
	s := cl.s
	sess := s.session(m.S, false)
	if sess == nil {
		return
	}
	sess.mu.RLock()
	defer sess.mu.RUnlock()
	var from *conn
	if m.ID != "" {
		if from = sess.byID[m.ID]; from == nil {
			return // not a member (any more): nothing after connectionDestroyed
		}
	}
	ev := newSignalEvent(m.Type, m.Data, from, m.To, s.clock.Now().UnixNano(), m.Queued)
	if m.To != "" {
		if c := sess.byID[m.To]; c != nil && c.node == "" {
			s.deliver(c, ev)
		}
		return
	}
	for _, c := range sess.members {
		if c.node == "" {
			s.deliver(c, ev)
		}
	}
}

// applyMoved: connection m.ID resumed on node m.N. If it was ours, its
// socket here is superseded and its state dropped.
func (cl *cluster) applyMoved(m *cmsg) {
	s := cl.s
	sess := s.session(m.S, false)
	if sess == nil {
		return
	}
	sess.mu.Lock()
	c := sess.byID[m.ID]
	if c == nil {
		sess.mu.Unlock()
		cl.applyCreated(&cmsg{K: "c", S: m.S, N: m.N, ID: m.ID, Created: m.Created, Data: m.Data, Role: m.Role})
		return
	}
	var sk *sock
	if c.node == "" {
		c.mu.Lock()
		sk, c.sock = c.sock, nil
		c.stopGraceLocked()
		c.ring.release()
		key := c.resumeKey
		c.resumeKey = ""
		c.mu.Unlock()
		s.keysMu.Lock()
		delete(s.keys, key)
		s.keysMu.Unlock()
		s.metrics.connections.Add(-1)
		s.metrics.remoteConnections.Add(1)
		cl.log.Info("cluster: connection resumed on another node", "session", m.S, "connection", m.ID, "on", m.N)
	}
	c.node = m.N
	c.stopOrphanLocked()
	sess.mu.Unlock()
	if sk != nil {
		sk.shutdown(whySuperseded)
	}
	cl.heardOf(m.N)
}

// applyKick: a node asks the node of connection m.ID to remove it.
func (cl *cluster) applyKick(m *cmsg) {
	s := cl.s
	sess := s.session(m.S, false)
	if sess == nil {
		return
	}
	sess.mu.RLock()
	c := sess.byID[m.ID]
	local := c != nil && c.node == ""
	sess.mu.RUnlock()
	if local {
		s.forceDisconnect(m.S, m.ID)
	}
}

// ---- resume on another node ----

// resume takes over a connection of another node (dead or alive) for sk:
// the bucket entry moves to this node (compare-and-set), the others hear
// "moved", and the client gets a welcome with the same connection. Events
// the old node held for it are not replayed: the welcome says
// missedUnknown. nil: no such connection, or the key does not match.
func (cl *cluster) resume(sk *sock, key string, last uint64) *conn {
	kv := cl.bucket()
	if !cl.up.Load() || kv == nil {
		return nil
	}
	connID, sessionID, secret, ok := parseClusterKey(key)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), kvTimeout)
	defer cancel()
	k := entryKey(sessionID, connID)
	e, err := kv.Get(ctx, k)
	if err != nil {
		return nil
	}
	var ce centry
	if json.Unmarshal(e.Value(), &ce) != nil || ce.Node == cl.self ||
		subtle.ConstantTimeCompare([]byte(keyHash(secret)), []byte(ce.KeyHash)) != 1 {
		return nil
	}
	s := cl.s
	// The new key first, so the entry moves with it in one write.
	newKey, newHash := clusterKey(connID, sessionID)
	from := ce.Node
	ce.Node, ce.KeyHash = cl.self, newHash
	b, _ := json.Marshal(ce)
	rev, err := kv.Update(ctx, k, b, e.Revision())
	if err != nil {
		return nil // another node took it, or ended it, first
	}
	role, err := token.ParseRole(ce.Role)
	if err != nil {
		role = token.Publisher
	}

	cl.applyMu.Lock()
	defer cl.applyMu.Unlock()
	for {
		sess := s.session(sessionID, true)
		sess.mu.Lock()
		if sess.dead {
			sess.mu.Unlock()
			continue
		}
		c := sess.byID[connID]
		if c == nil {
			c = &conn{id: connID, created: ce.Created, data: ce.Data, role: role, sess: sess}
			c.info = appendConnection(nil, c.id, c.created, c.data)
			sess.addLocked(c)
		} else if c.node != "" {
			c.stopOrphanLocked()
			s.metrics.remoteConnections.Add(-1)
		} else {
			// Ours, as far as we knew: the bucket says it moved away and
			// the "moved" is still on its way. This socket wins.
			c.mu.Lock()
			if old := c.sock; old != nil {
				old.shutdown(whySuperseded)
			}
			c.stopGraceLocked()
			c.ring.release()
			c.mu.Unlock()
			s.metrics.connections.Add(-1)
		}
		c.node = ""
		s.metrics.connections.Add(1)
		c.mu.Lock()
		c.sock = sk
		c.seq = last // the client's numbering goes on from what it processed
		s.keysMu.Lock()
		if c.resumeKey != "" {
			delete(s.keys, c.resumeKey)
		}
		c.kvRev, c.keyHash, c.resumeKey = rev, newHash, newKey
		s.keys[newKey] = c
		s.keysMu.Unlock()
		w := s.welcome(sess, c, true, 0, true)
		sk.enqueueForce(item{ev: w})
		c.mu.Unlock()
		cl.publish(sessionID, &cmsg{K: "m", ID: c.id, Created: c.created, Data: c.data, Role: string(c.role)})
		sess.mu.Unlock()
		s.metrics.resumes.Inc()
		s.metrics.clusterTakeovers.Inc()
		cl.log.Info("cluster: resumed a connection from another node", "session", sessionID, "connection", connID, "from", from)
		return c
	}
}

// ---- liveness of nodes ----

func (cl *cluster) onHeartbeat(msg *nats.Msg) {
	var h hb
	if json.Unmarshal(msg.Data, &h) != nil || h.N == "" || h.N == cl.self {
		return
	}
	if h.Bye {
		cl.log.Info("cluster: node left", "left", h.N)
		cl.nodeDead(h.N)
		return
	}
	cl.mu.Lock()
	wasDead := cl.dead[h.N]
	delete(cl.dead, h.N)
	cl.nodes[h.N] = time.Now()
	cl.mu.Unlock()
	if wasDead {
		// Slow, not dead (a long pause, a congested link): its
		// connections' grace periods are off.
		cl.log.Info("cluster: node is back", "back", h.N)
		cl.stopOrphansOf(h.N)
	}
}

// stopOrphansOf cancels the grace periods of node's connections.
func (cl *cluster) stopOrphansOf(node string) {
	s := cl.s
	s.mu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	for _, sess := range sessions {
		sess.mu.Lock()
		for _, c := range sess.members {
			if c.node == node {
				c.stopOrphanLocked()
			}
		}
		sess.mu.Unlock()
	}
}

func (cl *cluster) isDead(node string) bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.dead[node]
}

// heartbeat says this node is alive and takes silent nodes for dead.
func (cl *cluster) heartbeat() {
	defer cl.wg.Done()
	b, _ := json.Marshal(hb{N: cl.self})
	t := time.NewTicker(cl.o.Heartbeat) // liveness between processes: wall clock
	defer t.Stop()
	for {
		if cl.up.Load() {
			if !cl.hbPaused.Load() {
				_ = cl.nc.Publish(cl.o.Prefix+".hb", b)
			}
			now := time.Now()
			var dead []string
			cl.mu.Lock()
			for n, at := range cl.nodes {
				if !cl.dead[n] && now.Sub(at) > cl.o.NodeTimeout {
					dead = append(dead, n)
				}
			}
			alive := 0
			for n := range cl.nodes {
				if !cl.dead[n] {
					alive++
				}
			}
			cl.mu.Unlock()
			cl.s.metrics.clusterNodes.Set(float64(alive + 1))
			for _, n := range dead {
				cl.log.Warn("cluster: node silent; its connections enter their grace period", "silent", n, "for", cl.o.NodeTimeout)
				cl.nodeDead(n)
			}
		}
		select {
		case <-cl.stop:
			return
		case <-t.C:
		}
	}
}

// nodeDead starts the grace period of every connection of node n. When it
// ends and nobody resumed the connection, the node that wins the delete
// of its entry announces connectionDestroyed networkDisconnected.
func (cl *cluster) nodeDead(n string) {
	cl.mu.Lock()
	if cl.dead[n] || cl.closing {
		cl.mu.Unlock()
		return
	}
	cl.dead[n] = true
	cl.mu.Unlock()
	s := cl.s
	s.mu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	for _, sess := range sessions {
		sess.mu.Lock()
		for _, c := range sess.members {
			if c.node == n && c.orphan == nil {
				c := c
				c.orphan = time.AfterFunc(s.grace, func() { cl.orphanExpired(c, n) }) // wall clock, as the heartbeats
			}
		}
		sess.mu.Unlock()
	}
}

// stopOrphanLocked cancels c's grace period as an orphan. sess.mu held.
func (c *conn) stopOrphanLocked() {
	if c.orphan != nil {
		c.orphan.Stop()
		c.orphan = nil
	}
}

func (cl *cluster) orphanExpired(c *conn, node string) {
	s := cl.s
	if !s.goStart() {
		return
	}
	defer s.wg.Done()
	retry := func() { // later: NATS is away (the re-sync starts over) or failed
		c.sess.mu.Lock()
		defer c.sess.mu.Unlock()
		if c.orphan != nil && c.node == node {
			c.orphan = time.AfterFunc(cl.o.Heartbeat, func() { cl.orphanExpired(c, node) })
		}
	}
	if !cl.isDead(node) {
		c.sess.mu.Lock()
		c.orphan = nil // its node came back
		c.sess.mu.Unlock()
		return
	}
	kv := cl.bucket()
	if !cl.up.Load() || kv == nil {
		retry()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), kvTimeout)
	defer cancel()
	k := entryKey(c.sess.id, c.id)
	e, err := kv.Get(ctx, k)
	announce := false
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		// Another node ended it; its event follows (or came).
	case err != nil:
		retry()
		return
	default:
		var ce centry
		if json.Unmarshal(e.Value(), &ce) != nil || ce.Node != node {
			return // resumed elsewhere: "moved" follows
		}
		if kv.Delete(ctx, k, jetstream.LastRevision(e.Revision())) != nil {
			return // someone was faster
		}
		announce = true
	}
	cl.applyMu.Lock()
	defer cl.applyMu.Unlock()
	sess := c.sess
	sess.mu.Lock()
	c.orphan = nil
	if sess.byID[c.id] != c || c.node != node {
		sess.mu.Unlock()
		return
	}
	s.removeLocked(sess, c, signaling.ReasonNetworkDisconnected, false)
	if announce {
		cl.publish(sess.id, &cmsg{K: "d", ID: c.id, Reason: signaling.ReasonNetworkDisconnected})
	}
	s.unlockAndDrop(sess)
}

// ---- health and shutdown ----

// ClusterHealth is the cluster part of /healthz.
type ClusterHealth struct {
	Node      string `json:"node"`
	Connected bool   `json:"connected"` // to NATS
	Nodes     int    `json:"nodes"`     // alive, this one included
	Remote    int64  `json:"remoteConnections"`
}

func (cl *cluster) health() *ClusterHealth {
	cl.mu.Lock()
	alive := 1
	for n := range cl.nodes {
		if !cl.dead[n] {
			alive++
		}
	}
	cl.mu.Unlock()
	return &ClusterHealth{Node: cl.o.NodeName, Connected: cl.up.Load() && !cl.resyncing.Load(), Nodes: alive, Remote: cl.s.metrics.remoteConnections.Load()}
}

// close says goodbye (the others start the grace periods of this node's
// connections at once, for their clients to resume elsewhere) and leaves.
func (cl *cluster) close() {
	cl.mu.Lock()
	cl.closing = true
	cl.mu.Unlock()
	if cl.up.Load() && !cl.isShut() {
		b, _ := json.Marshal(hb{N: cl.self, Bye: true})
		_ = cl.nc.Publish(cl.o.Prefix+".hb", b)
		_ = cl.nc.Flush()
	}
	cl.shut()
}

// shut stops the heartbeat and NATS, once.
func (cl *cluster) shut() {
	cl.once.Do(func() {
		close(cl.stop)
		cl.nc.Close()
		cl.wg.Wait()
		cl.stopOrphans()
	})
}

func (cl *cluster) stopOrphans() {
	s := cl.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sess := range s.sessions {
		sess.mu.Lock()
		for _, c := range sess.members {
			c.stopOrphanLocked()
		}
		sess.mu.Unlock()
	}
}

func (cl *cluster) isShut() bool {
	select {
	case <-cl.stop:
		return true
	default:
		return false
	}
}

// crash ends the node's cluster membership the way a killed process
// would: no goodbye, entries left behind. Tests only.
func (cl *cluster) crash() {
	cl.mu.Lock()
	cl.closing = true
	cl.mu.Unlock()
	cl.shut()
}
