package relay

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/token"
)

const (
	writeWait = 10 * time.Second // bound of one batch write
	closeWait = 1 * time.Second  // how long the writer waits for the reader after sending a close frame
	flushSize = 64 << 10         // flushConn writes through past this
	readChunk = 4 << 10          // initial read buffer of a frame
)

// why is the reason a socket ends. It decides the close code and what
// happens to the connection.
type why int

const (
	whyNone              why = iota
	whyPeerClosed            // the client sent close 1000 or 1001: it left
	whyPeerAbnormal          // the client sent another close code: a network loss
	whyNetwork               // read or write error, EOF
	whyPingTimeout           // nothing received within the ping timeout
	whyTooBig                // a frame over MaxFrameBytes
	whySlowConsumer          // the send queue filled
	whySuperseded            // the connection resumed on another socket
	whyForceDisconnected     // a moderator or the REST API removed the connection
	whyDisconnect            // the client sent the disconnect op
	whyServerClosing         // Server.Close
	whyTokenRefused          // the connect was refused: bad token
	whySessionFull           // the connect was refused: session at its limit
)

var whyNames = [...]string{
	whyNone: "none", whyPeerClosed: "client_closed", whyPeerAbnormal: "client_closed_abnormally",
	whyNetwork: "network", whyPingTimeout: "ping_timeout", whyTooBig: "frame_too_big",
	whySlowConsumer: "slow_consumer", whySuperseded: "superseded", whyForceDisconnected: "force_disconnected",
	whyDisconnect: "disconnect", whyServerClosing: "server_closing", whyTokenRefused: "token_refused",
	whySessionFull: "session_full",
}

func (w why) String() string {
	if int(w) < len(whyNames) {
		return whyNames[w]
	}
	return "why(" + strconv.Itoa(int(w)) + ")"
}

// closeCode is the WebSocket close code the relay sends for w.
func (w why) closeCode() int {
	switch w {
	case whyPeerClosed, whyDisconnect:
		return websocket.CloseNormalClosure
	case whyServerClosing:
		return websocket.CloseGoingAway
	case whyTooBig:
		return websocket.CloseMessageTooBig
	case whyPingTimeout:
		return signaling.ClosePingTimeout
	case whySlowConsumer:
		return signaling.CloseSlowConsumer
	case whySuperseded:
		return signaling.CloseSuperseded
	case whyForceDisconnected:
		return signaling.CloseForceDisconnect
	case whyTokenRefused:
		return signaling.CloseTokenRefused
	case whySessionFull:
		return signaling.CloseSessionFull
	}
	return websocket.CloseAbnormalClosure // not sent: a network loss gets no close frame we choose
}

// closeText is the reason sent in the close frame, for people reading
// traces; clients act on the code.
func (w why) closeText() string {
	switch w {
	case whyDisconnect:
		return "disconnected"
	case whyServerClosing:
		return "relay shutting down"
	case whyTooBig:
		return "frame over 65536 bytes"
	case whyPingTimeout:
		return "ping timeout"
	case whySlowConsumer:
		return "slow consumer: resume to catch up"
	case whySuperseded:
		return "superseded by a resume on another socket"
	case whyForceDisconnected:
		return "force-disconnected"
	case whyTokenRefused:
		return "token refused"
	case whySessionFull:
		return "session full"
	}
	return ""
}

// flush reports whether frames queued before the close are written first.
func (w why) flush() bool {
	switch w {
	case whyForceDisconnected, whyDisconnect, whyTokenRefused, whySessionFull:
		return true
	}
	return false
}

// sock is one WebSocket. Its reader is run (readLoop), its writer
// writeLoop, the only goroutine that writes to ws (the HTTP handler writes
// once, the handshake, before either starts).
type sock struct {
	// Static after serveConnect sets them up.
	srv        *Server
	ws         *websocket.Conn
	fc         *flushConn
	log        *slog.Logger
	wake       chan struct{} // cap 1: the queue or the close state changed
	readerDone chan struct{} // closed when the reader loop has returned
	c          *conn         // set before writeLoop starts; nil when the connect was refused

	mu       sync.Mutex
	q        []item // guarded by mu
	pong     []byte // guarded by mu: payload of a WebSocket pong to send
	wantPong bool   // guarded by mu
	closing  bool   // guarded by mu
	why      why    // guarded by mu: set with closing
	peerCode int    // guarded by mu: the close code the client sent, echoed
}

// enqueue queues it unless the socket is closing (ok false, full false) or
// its queue is full (ok false, full true). It never blocks.
func (sk *sock) enqueue(it item) (ok, full bool) {
	sk.mu.Lock()
	if sk.closing {
		sk.mu.Unlock()
		return false, false
	}
	if len(sk.q) >= sk.srv.sendQueue {
		sk.mu.Unlock()
		return false, true
	}
	sk.q = append(sk.q, it)
	sk.mu.Unlock()
	sk.poke()
	return true, false
}

// enqueueForce queues it past the queue bound: a welcome and its replay,
// bounded by the replay buffer.
func (sk *sock) enqueueForce(it item) {
	sk.mu.Lock()
	if !sk.closing {
		sk.q = append(sk.q, it)
	}
	sk.mu.Unlock()
	sk.poke()
}

// send queues a frame for this socket's client; a full queue makes it a slow
// consumer.
func (sk *sock) send(ev *event) {
	if ok, full := sk.enqueue(item{ev: ev}); !ok && full {
		sk.srv.slowConsumer(sk)
	}
}

func (sk *sock) poke() {
	select {
	case sk.wake <- struct{}{}:
	default:
	}
}

// shutdown asks the writer to close the socket for reason w (the first
// reason wins) and reports whether this call set it.
func (sk *sock) shutdown(w why) bool {
	sk.mu.Lock()
	if sk.closing {
		sk.mu.Unlock()
		return false
	}
	sk.closing, sk.why = true, w
	sk.mu.Unlock()
	sk.poke()
	return true
}

func (sk *sock) isClosing() bool {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	return sk.closing
}

// serveConnect is GET /v1/connect: upgrade, admit (token or resume), then
// hand the socket to its reader goroutine (run).
func (s *Server) serveConnect(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		writeJSONError(w, http.StatusBadRequest, "GET /v1/connect is a WebSocket endpoint: send an Upgrade: websocket request")
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" && s.origins != nil && !s.origins[strings.ToLower(origin)] {
		writeJSONError(w, http.StatusForbidden, "origin "+origin+" is not allowed")
		return
	}
	if !s.goStart() {
		writeJSONError(w, http.StatusServiceUnavailable, "relay is shutting down")
		return
	}
	hw := &hijackWrapper{ResponseWriter: w}
	ws, err := s.upgrader.Upgrade(hw, r, nil)
	if err != nil {
		s.wg.Done()
		s.log.Debug("upgrade failed", "err", err, "remote", r.RemoteAddr)
		return // the upgrader answered with an HTTP error
	}
	_ = hw.fc.SetWriteDeadline(time.Now().Add(writeWait))
	if err := hw.fc.Flush(); err != nil { // the handshake response
		hw.fc.Close()
		s.wg.Done()
		return
	}
	sk := &sock{
		srv:        s,
		ws:         ws,
		fc:         hw.fc,
		log:        s.log.With("remote", r.RemoteAddr),
		wake:       make(chan struct{}, 1),
		readerDone: make(chan struct{}),
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		hw.fc.Close()
		s.wg.Done()
		return
	}
	s.socks[sk] = struct{}{}
	s.mu.Unlock()
	s.metrics.sockets.Add(1)
	s.admit(sk, r)
	// The socket's reader runs in a goroutine of its own, owned by the
	// server (its wait group), so that net/http's per-request state and
	// buffers are released when this handler returns.
	go sk.run()
}

// run is the socket's reader and the owner of its writer. It returns when
// both have ended and the connection's fate is settled.
func (sk *sock) run() {
	s := sk.srv
	defer s.wg.Done()
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		sk.writeLoop()
	}()
	end := sk.readLoop()
	close(sk.readerDone)
	sk.shutdown(end) // no-op when a reason was set already
	sk.mu.Lock()
	reason := sk.why
	sk.mu.Unlock()

	if c := sk.c; c != nil {
		if reason == whyPeerClosed {
			s.remove(c, signaling.ReasonClientDisconnected, sk) // only while c is still on sk
		}
		s.detach(c, sk) // grace, unless c left or moved to another socket
	}
	<-writerDone
	sk.fc.Close()
	s.mu.Lock()
	delete(s.socks, sk)
	s.mu.Unlock()
	s.metrics.sockets.Add(-1)
	s.metrics.closes.WithLabelValues(reason.String()).Inc()
	sk.log.Debug("socket closed", "reason", reason)
}

// admit authenticates the socket's request and joins or resumes its
// connection, queueing the welcome, or queues the refusal and the close.
func (s *Server) admit(sk *sock, r *http.Request) {
	q := r.URL.Query()
	if key := q.Get("resume"); key != "" {
		last, _ := strconv.ParseUint(q.Get("last"), 10, 64)
		c := s.resume(sk, key, last)
		if c == nil && s.cl != nil {
			c = s.cl.resume(sk, key, last) // a connection of another node
		}
		if c != nil {
			sk.c = c
			sk.log = sk.log.With("session", c.sess.id, "connection", c.id)
			sk.log.Debug("resumed", "last", last)
			return
		}
	}
	tok := q.Get("token")
	if tok == "" {
		if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			tok = strings.TrimSpace(h[7:])
		}
	}
	var claims *token.Claims
	var err error
	if tok == "" {
		err = errors.New("no token: pass ?token=<token> or an Authorization: Bearer header")
	} else {
		claims, err = token.Verify(tok, s.key, s.secret, s.clock.Now())
	}
	if err != nil {
		s.metrics.authFailures.WithLabelValues("connect").Inc()
		sk.log.Info("token refused", "err", err)
		sk.enqueueForce(item{ev: errorFrame(signaling.CodeUnauthorized, err.Error())})
		sk.shutdown(whyTokenRefused)
		return
	}
	c, err := s.join(sk, claims)
	if err != nil {
		sk.enqueueForce(item{ev: errorFrame(signaling.CodeSessionFull, err.Error())})
		sk.shutdown(whySessionFull)
		return
	}
	sk.c = c
	sk.log = sk.log.With("session", c.sess.id, "connection", c.id)
	sk.log.Debug("joined", "role", c.role)
}

var errTooBig = errors.New("frame too big")

// readLoop reads frames until the socket ends and returns why it ended. It
// handles each frame unless the socket is closing (then it only drains, so
// the client's close reply is read and not answered with a reset).
func (sk *sock) readLoop() why {
	ws := sk.ws
	ws.SetCloseHandler(func(code int, text string) error {
		w := whyPeerAbnormal
		if code == websocket.CloseNormalClosure || code == websocket.CloseGoingAway {
			w = whyPeerClosed
		}
		sk.mu.Lock()
		sk.peerCode = code
		sk.mu.Unlock()
		sk.shutdown(w)
		return nil
	})
	ws.SetPingHandler(func(data string) error {
		sk.pushDeadline()
		sk.mu.Lock()
		sk.pong, sk.wantPong = []byte(data), true // one pending pong; a faster pinger loses some
		sk.mu.Unlock()
		sk.poke()
		return nil
	})
	ws.SetPongHandler(func(string) error {
		sk.pushDeadline()
		return nil
	})
	sk.pushDeadline()
	for {
		typ, rd, err := ws.NextReader()
		if err != nil {
			return sk.classify(err)
		}
		sk.pushDeadline()
		bp := getBuf()
		*bp, err = readFrame((*bp)[:0], rd)
		if err == nil && sk.c != nil && !sk.isClosing() {
			sk.srv.handleFrame(sk, typ, *bp)
		}
		putBuf(bp)
		if err != nil {
			if errors.Is(err, errTooBig) {
				return whyTooBig
			}
			return sk.classify(err)
		}
	}
}

// bufPool holds the buffers a socket reads a frame into and writes a batch
// from, so that an idle socket holds none.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, readChunk); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) <= 4*readChunk {
		bufPool.Put(b)
	}
}

// classify maps a read error to why the socket ended.
func (sk *sock) classify(err error) why {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		if ce.Code == websocket.CloseNormalClosure || ce.Code == websocket.CloseGoingAway {
			return whyPeerClosed
		}
		return whyPeerAbnormal
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && !sk.isClosing() {
		return whyPingTimeout
	}
	return whyNetwork
}

// readFrame reads one message into buf, refusing more than MaxFrameBytes.
func readFrame(buf []byte, r io.Reader) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			if len(buf) > signaling.MaxFrameBytes {
				return buf, errTooBig
			}
			n := 2 * cap(buf)
			if n < readChunk {
				n = readChunk
			}
			nb := make([]byte, len(buf), n)
			copy(nb, buf)
			buf = nb
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			if len(buf) > signaling.MaxFrameBytes {
				return buf, errTooBig
			}
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// pushDeadline moves the read deadline a ping timeout into the future; any
// frame, ping or pong from the client proves it alive. Real time: it is the
// network's deadline.
func (sk *sock) pushDeadline() {
	_ = sk.ws.SetReadDeadline(time.Now().Add(sk.srv.pingTimeout))
}

// writeLoop is the only writer of the socket: queued frames (batched into as
// few writes as it can), pongs, pings every ping period and, at the end, the
// close frame. It returns after the close frame, or on a write error.
func (sk *sock) writeLoop() {
	ws, fc := sk.ws, sk.fc
	ping := time.NewTicker(sk.srv.pingPeriod)
	defer ping.Stop()
	var batch []item
	for {
		select {
		case <-sk.wake:
		case <-ping.C:
			_ = fc.SetWriteDeadline(time.Now().Add(writeWait))
			if err := ws.WriteMessage(websocket.PingMessage, nil); err != nil || fc.Flush() != nil {
				sk.abort()
				return
			}
			continue
		}
		sk.mu.Lock()
		batch, sk.q = sk.q, batch[:0]
		pong, wantPong := sk.pong, sk.wantPong
		sk.wantPong = false
		closing, w, peerCode := sk.closing, sk.why, sk.peerCode
		sk.mu.Unlock()

		_ = fc.SetWriteDeadline(time.Now().Add(writeWait))
		var err error
		if wantPong {
			err = ws.WriteMessage(websocket.PongMessage, pong)
		}
		if err == nil && (!closing || w.flush()) {
			err = sk.writeItems(batch)
		}
		clear(batch)
		if cap(batch) > 256 {
			batch = nil
		}
		if err == nil {
			err = fc.Flush()
		}
		if err != nil {
			sk.abort()
			return
		}
		if closing {
			sk.writeClose(w, peerCode)
			return
		}
	}
}

// writeItems writes queued frames into the flushConn (which writes through
// every flushSize bytes).
func (sk *sock) writeItems(batch []item) error {
	if len(batch) == 0 {
		return nil
	}
	frame := getBuf()
	defer putBuf(frame)
	now := sk.srv.clock.Now().UnixNano()
	var maxSeq uint64
	signals := 0
	for _, it := range batch {
		*frame = appendFrame((*frame)[:0], it, now)
		if err := sk.ws.WriteMessage(websocket.TextMessage, *frame); err != nil {
			return err
		}
		if it.seq > maxSeq {
			maxSeq = it.seq
		}
		if it.ev.kind == evSignal {
			signals++
		}
	}
	if maxSeq > 0 && sk.c != nil && maxSeq > sk.c.written.Load() {
		sk.c.written.Store(maxSeq)
	}
	if signals > 0 {
		sk.srv.metrics.signalsOut.Add(float64(signals))
	}
	return nil
}

// writeClose sends the close frame for w, then waits (at most closeWait) for
// the reader to see the client's reply before closing the connection under
// it.
func (sk *sock) writeClose(w why, peerCode int) {
	if w != whyNetwork {
		code, text := w.closeCode(), w.closeText()
		if w == whyPeerClosed || w == whyPeerAbnormal {
			code, text = peerCode, "" // echo what the client sent
		}
		_ = sk.fc.SetWriteDeadline(time.Now().Add(closeWait))
		_ = sk.ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(code, text))
		_ = sk.fc.Flush()
	}
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-sk.readerDone:
	case <-t.C:
		sk.fc.Close() // unblocks the reader
	}
}

// abort ends a socket whose writes fail: the reader sees the closed
// connection and returns.
func (sk *sock) abort() {
	sk.shutdown(whyNetwork)
	sk.fc.Close()
}

// flushConn buffers the writes of a hijacked connection so that the writer
// sends a batch of frames in one system call (Flush). Writes past flushSize
// go through. The buffer comes from a pool and returns to it at each Flush,
// so an idle socket holds none.
type flushConn struct {
	net.Conn
	mu  sync.Mutex
	buf *[]byte // guarded by mu
}

var flushPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

func (fc *flushConn) Write(p []byte) (int, error) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.buf == nil {
		fc.buf = flushPool.Get().(*[]byte)
	}
	*fc.buf = append(*fc.buf, p...)
	if len(*fc.buf) >= flushSize {
		if err := fc.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush writes what is buffered.
func (fc *flushConn) Flush() error {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.flushLocked()
}

func (fc *flushConn) flushLocked() error {
	if fc.buf == nil {
		return nil
	}
	b := fc.buf
	_, err := fc.Conn.Write(*b)
	*b = (*b)[:0]
	fc.buf = nil
	if cap(*b) <= 4*flushSize {
		flushPool.Put(b)
	}
	return err
}

// hijackWrapper gives the upgrader a flushConn in place of the raw
// connection.
type hijackWrapper struct {
	http.ResponseWriter
	fc *flushConn
}

func (h *hijackWrapper) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("response writer cannot hijack")
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.fc = &flushConn{Conn: c}
	return h.fc, brw, nil
}
