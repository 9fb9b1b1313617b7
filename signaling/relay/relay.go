package relay

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/teleop/teleop/clock"
	"github.com/teleop/teleop/signaling"
)

// Defaults of Options; docs/signaling-protocol.md §9 lists them.
const (
	DefaultGrace             = 20 * time.Second
	DefaultPingTimeout       = 10 * time.Second
	DefaultRatePerSec        = 200
	DefaultRateBurst         = 400
	DefaultMaxConnections    = 500
	DefaultSendQueue         = 1024
	DefaultReplayFrames      = 1024
	MaxReplayBytes           = 1 << 20 // per connection
	maxSessionCreateBodySize = 64 << 10
)

// Options configure a Server. The zero value (or nil) is usable except for
// the credentials, which New requires.
type Options struct {
	APIKey, APISecret string

	Grace       time.Duration // how long a connection outlives its socket; default 20s
	PingTimeout time.Duration // drop a silent socket after this; default 10s; pings every 9/10 of it
	RatePerSec  float64       // signals per second per connection; default 200
	RateBurst   int           // default 400

	MaxConnectionsPerSession int // default 500
	SendQueue                int // frames queued per socket before it is a slow consumer; default 1024
	ReplayFrames             int // events held per connection for resume; default 1024 (and ≤ 1 MiB)

	// AllowedOrigins lists the Origin values (scheme://host[:port]) allowed
	// to open a WebSocket; "*" allows any. Empty allows any origin. A request
	// without an Origin header (not a browser) is always allowed.
	AllowedOrigins []string

	// Fallback serves every path the relay does not (e.g. a web console at
	// /). Nil answers 404.
	Fallback http.Handler

	// Cluster, when set, makes the relay one node of a cluster sharing
	// sessions through NATS (docs/cluster.md). Nil: a single process.
	Cluster *ClusterOptions

	Logger   *slog.Logger         // nil discards
	Clock    clock.Clock          // nil is the wall clock; grace periods, rate limits, ages
	Registry *prometheus.Registry // nil: a private registry (with Go and process metrics); /metrics serves it; one relay per registry
}

// Server is the relay: an http.Handler for the session protocol, the REST
// API, /metrics and /healthz. The caller owns the listener; Close ends every
// socket.
type Server struct {
	// Static after New.
	key, secret  string
	grace        time.Duration
	pingTimeout  time.Duration
	pingPeriod   time.Duration
	rate         float64
	burst        int
	maxConns     int
	sendQueue    int
	replayFrames int
	origins      map[string]bool // nil: any
	log          *slog.Logger
	clock        clock.Clock
	mux          *http.ServeMux
	upgrader     websocket.Upgrader
	metrics      *metrics
	limits       signaling.Limits
	started      time.Time

	mu       sync.Mutex
	closed   bool                // guarded by mu
	sessions map[string]*session // guarded by mu
	socks    map[*sock]struct{}  // guarded by mu: open sockets, for Close
	wg       sync.WaitGroup      // socket handlers and grace-timer callbacks; Add under mu while !closed

	keysMu sync.Mutex
	keys   map[string]*conn // guarded by keysMu: resume key → connection

	cl *cluster // nil unless Options.Cluster; set by New
}

// New returns a relay for one project (API key and secret).
func New(opts *Options) (*Server, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.APIKey == "" || o.APISecret == "" {
		return nil, errors.New("new relay: api key and secret are required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(n *int, v int) {
		if *n <= 0 {
			*n = v
		}
	}
	def(&o.Grace, DefaultGrace)
	def(&o.PingTimeout, DefaultPingTimeout)
	if o.RatePerSec <= 0 {
		o.RatePerSec = DefaultRatePerSec
	}
	defInt(&o.RateBurst, DefaultRateBurst)
	defInt(&o.MaxConnectionsPerSession, DefaultMaxConnections)
	defInt(&o.SendQueue, DefaultSendQueue)
	defInt(&o.ReplayFrames, DefaultReplayFrames)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	private := o.Registry == nil
	if private {
		o.Registry = prometheus.NewRegistry()
	}
	s := &Server{
		key:          o.APIKey,
		secret:       o.APISecret,
		grace:        o.Grace,
		pingTimeout:  o.PingTimeout,
		pingPeriod:   o.PingTimeout * 9 / 10,
		rate:         o.RatePerSec,
		burst:        o.RateBurst,
		maxConns:     o.MaxConnectionsPerSession,
		sendQueue:    o.SendQueue,
		replayFrames: o.ReplayFrames,
		log:          o.Logger.With("component", "relay"),
		clock:        clock.Or(o.Clock),
		sessions:     make(map[string]*session),
		socks:        make(map[*sock]struct{}),
		keys:         make(map[string]*conn),
	}
	s.started = s.clock.Now()
	for _, origin := range o.AllowedOrigins {
		if origin == "*" {
			s.origins = nil
			break
		}
		if s.origins == nil {
			s.origins = make(map[string]bool)
		}
		s.origins[strings.ToLower(strings.TrimSuffix(origin, "/"))] = true
	}
	s.limits = signaling.Limits{
		MaxTypeLen:     signaling.MaxTypeLen,
		MaxDataBytes:   signaling.MaxDataBytes,
		RatePerSec:     s.rate,
		RateBurst:      s.burst,
		PingIntervalMs: s.pingPeriod.Milliseconds(),
		GraceMs:        s.grace.Milliseconds(),
		ReplayFrames:   s.replayFrames,
	}
	s.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		// A small read buffer of its own (rather than net/http's 4 KB) and
		// pooled write buffers keep an idle socket small; frames larger
		// than the buffer are read straight into the frame's buffer.
		ReadBufferSize:  1024,
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     func(*http.Request) bool { return true }, // checked before the upgrade
	}
	var err error
	if s.metrics, err = newMetrics(o.Registry, private, o.Cluster != nil); err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/connect", s.serveConnect)
	mux.HandleFunc("POST /session/create", s.serveSessionCreate)
	mux.HandleFunc("POST /v2/project/{apiKey}/session/{sessionId}/signal", s.serveSignal)
	mux.HandleFunc("POST /v2/project/{apiKey}/session/{sessionId}/connection/{connectionId}/signal", s.serveSignal)
	mux.HandleFunc("DELETE /v2/project/{apiKey}/session/{sessionId}/connection/{connectionId}", s.serveForceDisconnect)
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", s.serveHealth)
	if o.Fallback != nil {
		mux.Handle("/", o.Fallback)
	} else {
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			writeJSONError(w, http.StatusNotFound, fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
		})
	}
	s.mux = mux
	if o.Cluster != nil {
		if s.cl, err = startCluster(s, *o.Cluster); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// ServeHTTP serves the session protocol at /v1/connect, the REST API,
// /metrics, /healthz, and Options.Fallback for the rest.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close closes every socket with 1001 (going away), stops the grace timers
// and returns once every goroutine of the relay has ended. Connections are
// not announced as destroyed: the relay is going away, not they. Later
// connects are refused with 503.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	socks := make([]*sock, 0, len(s.socks))
	for sk := range s.socks {
		socks = append(socks, sk)
	}
	sessions := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()

	for _, sk := range socks {
		sk.shutdown(whyServerClosing)
	}
	for _, sess := range sessions {
		sess.mu.RLock()
		for _, c := range sess.members {
			c.mu.Lock()
			c.stopGraceLocked()
			c.mu.Unlock()
		}
		sess.mu.RUnlock()
	}
	if s.cl != nil {
		s.cl.close()
	}
	s.wg.Wait()
	return nil
}

// goStart registers a goroutine (or a handler) with the server's wait group,
// unless the server is closed.
func (s *Server) goStart() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Health is the body of /healthz.
type Health struct {
	Status        string  `json:"status"`
	Sessions      int64   `json:"sessions"`
	Connections   int64   `json:"connections"`
	Sockets       int64   `json:"sockets"`
	UptimeSeconds float64 `json:"uptimeSeconds"`
	// Cluster is present on a node of a cluster. Status is "degraded"
	// while the node is cut off from NATS (it serves its own connections).
	Cluster *ClusterHealth `json:"cluster,omitempty"`
}

func (s *Server) serveHealth(w http.ResponseWriter, _ *http.Request) {
	h := Health{
		Status:        "ok",
		Sessions:      s.metrics.sessions.Load(),
		Connections:   s.metrics.connections.Load(),
		Sockets:       s.metrics.sockets.Load(),
		UptimeSeconds: s.clock.Now().Sub(s.started).Seconds(),
	}
	code := http.StatusOK
	if s.cl != nil {
		h.Cluster = s.cl.health()
		if !h.Cluster.Connected {
			h.Status = "degraded"
		}
	}
	if s.isClosed() {
		h.Status, code = "closing", http.StatusServiceUnavailable
	}
	writeJSON(w, code, h)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// writeJSONError writes {"code":…,"message":…}, the error body of every
// route.
func writeJSONError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, msg})
}
