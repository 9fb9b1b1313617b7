package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/teleop/teleop/signaling/relay"
)

// serverConfig is what `teleop server` runs with.
type serverConfig struct {
	listen            string
	apiKey, apiSecret string
	opts              relay.Options
	tlsCert, tlsKey   string
	logFormat         string
	logLevel          string
	devAllowRemote    bool
	shutdownTimeout   time.Duration
	cluster           relay.ClusterOptions
}

// newServerCmd builds `teleop server`: the signaling relay on its own
// listener, with the OpenTok-compatible REST API.
func newServerCmd() *cobra.Command {
	var c serverConfig
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the signaling relay (session protocol, OpenTok-style REST API, /metrics)",
		Long: `Run the signaling relay: WebSocket sessions at /v1/connect (docs/signaling-protocol.md),
the OpenTok-compatible REST API (docs/rest-api.md), /metrics and /healthz.

The api key and secret come from --api-key/--api-secret or TELEOP_API_KEY/TELEOP_API_SECRET
(flags win). Without either, the relay runs in dev mode: it makes up throwaway
credentials, prints them, and listens only on a loopback address unless
--dev-allow-remote is given. The relay prints "listening on <url>" once it accepts
connections (--listen 127.0.0.1:0 picks a free port). SIGINT/SIGTERM shut it down
gracefully: sockets are closed with 1001 and clients reconnect elsewhere.

With --cluster, the relay is one node of a cluster that shares sessions through NATS
(JetStream enabled): a client may join through any node and every node behaves as one
relay (docs/cluster.md). Every node needs the same api key and secret and a unique
--node-name. Without --cluster nothing is shared and NATS is never contacted.`,
		Example: `  teleop server                                        # dev mode on 127.0.0.1:7420
  TELEOP_API_KEY=12345678 TELEOP_API_SECRET=s3cret teleop server --listen :7420
  teleop server --listen :443 --tls-cert cert.pem --tls-key key.pem --allowed-origins https://ops.example
  teleop server --listen :7420 --cluster nats://10.0.0.5:4222,nats://10.0.0.6:4222 --node-name relay-1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("api-key") {
				c.apiKey = os.Getenv("TELEOP_API_KEY")
			}
			if !cmd.Flags().Changed("api-secret") {
				c.apiSecret = os.Getenv("TELEOP_API_SECRET")
			}
			return runServer(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), &c)
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.listen, "listen", "127.0.0.1:7420", "address to listen on (host:port; port 0 picks a free one)")
	f.StringVar(&c.apiKey, "api-key", "", "project api key (default $TELEOP_API_KEY)")
	f.StringVar(&c.apiSecret, "api-secret", "", "project api secret (default $TELEOP_API_SECRET)")
	f.DurationVar(&c.opts.Grace, "grace", relay.DefaultGrace, "how long a connection outlives a dropped socket, waiting for a resume")
	f.DurationVar(&c.opts.PingTimeout, "ping-timeout", relay.DefaultPingTimeout, "drop a socket silent this long (pings every 9/10 of it)")
	f.Float64Var(&c.opts.RatePerSec, "rate", relay.DefaultRatePerSec, "signals per second per connection")
	f.IntVar(&c.opts.RateBurst, "burst", relay.DefaultRateBurst, "signal burst per connection")
	f.IntVar(&c.opts.MaxConnectionsPerSession, "max-connections", relay.DefaultMaxConnections, "connections per session")
	f.IntVar(&c.opts.SendQueue, "send-queue", relay.DefaultSendQueue, "frames queued per socket before it is closed as a slow consumer (4008)")
	f.IntVar(&c.opts.ReplayFrames, "replay-frames", relay.DefaultReplayFrames, "events kept per connection for resume (and at most 1 MiB)")
	f.StringSliceVar(&c.opts.AllowedOrigins, "allowed-origins", nil, "browser origins allowed to connect, e.g. https://ops.example (default any)")
	f.StringVar(&c.tlsCert, "tls-cert", "", "TLS certificate file (PEM); serve HTTPS/WSS with --tls-key")
	f.StringVar(&c.tlsKey, "tls-key", "", "TLS private key file (PEM)")
	f.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.BoolVar(&c.devAllowRemote, "dev-allow-remote", false, "in dev mode (no credentials), listen on a non-loopback address anyway")
	f.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a graceful shutdown waits for REST requests in flight")
	f.StringVar(&c.cluster.URLs, "cluster", "", "run as a node of a cluster sharing sessions through NATS with JetStream: nats://HOST:PORT[,…] (docs/cluster.md)")
	f.StringVar(&c.cluster.NodeName, "node-name", "", "this node's name in the cluster, unique (default: the host name)")
	f.StringVar(&c.cluster.Prefix, "cluster-prefix", relay.DefaultClusterPrefix, "prefix of the cluster's NATS subjects and key-value bucket (one cluster per prefix)")
	f.DurationVar(&c.cluster.Heartbeat, "cluster-heartbeat", relay.DefaultHeartbeat, "how often a node tells the others it is alive; one silent for 3 heartbeats is taken for dead")
	return cmd
}

func runServer(ctx context.Context, stdout, stderr io.Writer, c *serverConfig) error {
	logger, err := newLogger(stderr, c.logFormat, c.logLevel)
	if err != nil {
		return err
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	dev := c.apiKey == "" && c.apiSecret == ""
	switch {
	case dev && c.cluster.URLs != "":
		return errors.New("--cluster needs the api key and secret that every node shares: " +
			"set TELEOP_API_KEY and TELEOP_API_SECRET (or --api-key/--api-secret)")
	case dev:
		if !isLoopback(c.listen) && !c.devAllowRemote {
			return fmt.Errorf("dev mode (no api key and secret) listens only on loopback, not %q: "+
				"set TELEOP_API_KEY and TELEOP_API_SECRET (or --api-key/--api-secret), or pass --dev-allow-remote", c.listen)
		}
		if c.apiKey, c.apiSecret, err = devCredentials(); err != nil {
			return err
		}
	case c.apiKey == "":
		return errors.New("an api secret without an api key: pass --api-key or set TELEOP_API_KEY")
	case c.apiSecret == "":
		return errors.New("an api key without an api secret: pass --api-secret or set TELEOP_API_SECRET")
	}

	var tlsConfig *tls.Config
	if c.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
		if err != nil {
			return fmt.Errorf("load tls key pair: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	opts := c.opts
	opts.APIKey, opts.APISecret, opts.Logger = c.apiKey, c.apiSecret, logger
	if c.cluster.URLs != "" {
		cl := c.cluster
		if cl.NodeName == "" {
			if cl.NodeName, err = os.Hostname(); err != nil {
				return fmt.Errorf("--node-name: %w", err)
			}
		}
		opts.Cluster = &cl
		logger.Info("cluster node", "node", cl.NodeName, "nats", cl.URLs)
	}
	rl, err := relay.New(&opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		rl.Close()
		return fmt.Errorf("listen on %s: %w", c.listen, err)
	}
	scheme := "http"
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
		scheme = "https"
	}
	srv := &http.Server{
		Handler:           rl,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second, // REST bodies; cleared on a WebSocket upgrade
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}

	url := fmt.Sprintf("%s://%s", scheme, ln.Addr())
	if dev {
		fmt.Fprintf(stdout, "dev mode: no api key and secret given, so these throwaway ones are in use:\n"+
			"  export TELEOP_API_KEY=%s TELEOP_API_SECRET=%s TELEOP_SERVER=%s\n"+
			"  teleop token --session demo\n"+
			"  TELEOP_TOKEN=$(teleop token --session demo) teleop listen\n", c.apiKey, c.apiSecret, url)
	}
	fmt.Fprintf(stdout, "listening on %s\n", url)
	logger.Info("relay listening", "url", url, "dev", dev, "grace", opts.Grace, "ping_timeout", opts.PingTimeout)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err = <-serveErr:
		rl.Close()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx) // stops accepting; waits for REST requests in flight
	rl.Close()               // closes the WebSockets (hijacked, so Shutdown does not)
	if serr := <-serveErr; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// isLoopback reports whether addr (host:port) names only a loopback
// interface. An empty host means every interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// devCredentials makes a throwaway api key that looks like OpenTok's (8
// digits) and a random secret.
func devCredentials() (key, secret string, err error) {
	n, err := rand.Int(rand.Reader, big.NewInt(90_000_000))
	if err != nil {
		return "", "", fmt.Errorf("make dev api key: %w", err)
	}
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("make dev api secret: %w", err)
	}
	return fmt.Sprint(10_000_000 + n.Int64()), fmt.Sprintf("%x", b), nil
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	o := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
