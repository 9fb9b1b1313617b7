package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/teleop/teleop/bridge"
)

// agentConfig is what `teleop agent` runs with.
type agentConfig struct {
	config    string
	metrics   string
	logFormat string
	logLevel  string
	procs     int
	gogc      int
	check     bool
	steady    bool // --steady-sysmon: acted on by main (reexecAgent) before the command runs

	started func(*bridge.Agent, net.Addr) // tests: called once the agent is built (metrics address or nil)
}

// newAgentCmd builds `teleop agent`: the bridge between a session and the
// robot's serial devices.
func newAgentCmd() *cobra.Command {
	var c agentConfig
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Join a session for a robot: map operators' signals to its serial devices, ack, report",
		Long: `Run the agent beside a robot. It reads its configuration (docs/configuration.md),
opens every device, joins the session as the robot (role=robot in its connection data),
turns operators' signals into serial commands, acks each one to its sender, forwards the
devices' telemetry and broadcasts its status. docs/agent.md describes the behaviour.

The agent refuses to start on an invalid configuration and prints every problem with its
line. It keeps rejoining the session after network failures (a token file is re-read, an
api key mints a fresh token, before each attempt). SIGINT or SIGTERM stop every device,
answer the signals still pending and leave the session; the exit code is then 0.`,
		Example: `  TELEOP_TOKEN=$(teleop token --session demo --data role=robot,name=sim-1) \
    teleop agent --config configs/demo.yaml
  teleop agent --config /etc/teleop/robot.yaml --metrics 127.0.0.1:9420 --log-format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if c.check {
				return agentCheck(cmd.Context(), c.config, cmd.OutOrStdout(), cmd.ErrOrStderr())
			}
			return runAgent(cmd.Context(), cmd.ErrOrStderr(), &c)
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.config, "config", "", "the agent's configuration file (required)")
	f.BoolVar(&c.check, "check", false, "check the configuration against the hardware and exit: open and handshake every device, print what each reports (no session)")
	f.StringVar(&c.metrics, "metrics", "", "serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9420 (default: off)")
	f.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.BoolVar(&c.steady, "steady-sysmon", true, "run with GODEBUG="+steadySysmon+" (the agent re-executes itself with it): the Go runtime's monitor thread then sleeps 10 ms at a time instead of waking at every signal, about a fifth less CPU while driving; =false to run as is")
	f.IntVar(&c.gogc, "gogc", 50, "Go's GOGC for the agent: 50 collects garbage at half the default heap growth, which keeps its resident memory about 1.5 MB smaller for a negligible CPU cost (its heap is a few MB); $GOGC wins")
	f.IntVar(&c.procs, "procs", 1, "Go's GOMAXPROCS for the agent: 1 keeps its small, serial work on one thread (half the CPU of one per core); 0 leaves Go's default; $GOMAXPROCS wins")
	cmd.MarkFlagRequired("config")
	return cmd
}

func runAgent(ctx context.Context, stderr io.Writer, c *agentConfig) error {
	logger, err := newLogger(stderr, c.logFormat, c.logLevel)
	if err != nil {
		return err
	}
	if _, set := os.LookupEnv("GOMAXPROCS"); !set && c.procs > 0 {
		runtime.GOMAXPROCS(c.procs)
	}
	if _, set := os.LookupEnv("GOGC"); !set && c.gogc > 0 {
		debug.SetGCPercent(c.gogc)
	}
	cfg, err := bridge.Load(c.config)
	if err != nil {
		var es bridge.Errors
		if errors.As(err, &es) {
			for _, e := range es {
				fmt.Fprintln(stderr, e)
			}
			return fmt.Errorf("%s: %d %s; the agent does not start", c.config, len(es), plural(len(es), "problem", "problems"))
		}
		return err
	}
	reg := prometheus.NewRegistry()
	if c.metrics != "" {
		// Only when they are served: the Go collector's set-up alone
		// costs the agent a few hundred KB.
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	agent, err := bridge.NewAgent(cfg, &bridge.AgentOptions{Logger: logger, Registry: reg})
	if err != nil {
		return err
	}

	var addr net.Addr
	if c.metrics != "" {
		ln, err := net.Listen("tcp", c.metrics)
		if err != nil {
			return fmt.Errorf("--metrics: %w", err)
		}
		addr = ln.Addr()
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
		served := make(chan struct{})
		go func() {
			defer close(served)
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("metrics server", "err", err)
			}
		}()
		defer func() {
			srv.Close()
			<-served
		}()
		logger.Info("metrics", "url", "http://"+addr.String()+"/metrics")
	}
	if c.started != nil {
		c.started(agent, addr)
	}
	defer superviseAgent(ctx, agent, logger)() // systemd: READY, WATCHDOG, STATUS, STOPPING; nothing outside it
	return agent.Run(ctx)
}
