package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/teleop/teleop/bridge/agentbench"
)

func newBenchE2ECmd(bf *benchFlags) *cobra.Command {
	var (
		o         agentbench.Options
		noProcess bool
	)
	cmd := &cobra.Command{
		Use:   "e2e",
		Short: "Ack latency operator → relay → agent → simulated robot → ack, its floor, and the agent's CPU and memory",
		Long: `Run a relay, a simulated robot on a pty and an agent on this machine, and measure:
  agent       ack latency of drive signals: operator → relay → agent → robot → OK → ack →
              relay → operator, paced at --rate for --duration, then back to back (the next
              drive when the previous ack came) for --max-duration
  floor       the same paths minus the agent, measured the same way in the same run:
              relay hops  an echo client in the agent's place (four WebSocket hops)
              pty         VEL → OK with the robot through the agent's serial code path
  process     the agent as its own process (this binary, "teleop agent"), driven at --rate
              with the robot's telemetry at --telemetry-hz forwarded: CPU time per wall time
              (of one core) and resident memory, from /proc

Everything but the agent process shares this process, so the latencies include the
operator's and the robot's work too. The machine's load matters: run it two or three times.`,
		Example: `  teleop bench e2e
  teleop bench e2e --duration 5s --max-duration 2s --no-process --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !bf.json {
				o.Logf = func(format string, args ...any) {
					fmt.Fprintf(cmd.ErrOrStderr(), "bench: "+format+"\n", args...)
				}
			}
			if !noProcess {
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("bench e2e: find this binary for the process measurement: %w", err)
				}
				o.Binary = exe
			}
			res, err := agentbench.Run(cmd.Context(), &o)
			if err != nil {
				return fmt.Errorf("bench e2e: %w", err)
			}
			if bf.json {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			return printE2EBench(cmd.OutOrStdout(), res)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Rate, "rate", 50, "paced drives per second")
	f.DurationVar(&o.Duration, "duration", 20*time.Second, "length of each paced measurement and of the process run")
	f.DurationVar(&o.MaxDuration, "max-duration", 5*time.Second, "length of each back-to-back measurement")
	f.IntVar(&o.TelemetryHz, "telemetry-hz", 10, "the robot's telemetry rate in the process run, all of it forwarded")
	f.BoolVar(&noProcess, "no-process", false, "skip the agent process measurement")
	return cmd
}

func printE2EBench(w io.Writer, r *agentbench.Result) error {
	m := r.Machine
	fmt.Fprintf(w, "agent end to end over loopback (%s %s/%s, %d CPUs, GOMAXPROCS %d)\n", m.GoVersion, m.GOOS, m.GOARCH, m.NumCPU, m.GOMAXPROCS)
	p50 := func(l agentbench.Latency) time.Duration { return l.P50 }
	p99 := func(l agentbench.Latency) time.Duration { return l.P99 }
	p999 := func(l agentbench.Latency) time.Duration { return l.P999 }
	for _, md := range []agentbench.Mode{r.Paced, r.Max} {
		name := fmt.Sprintf("at %d/s", md.Rate)
		if md.Rate == 0 {
			name = fmt.Sprintf("back to back (%.0f acks/s)", md.AcksPerSecond)
		}
		fmt.Fprintf(w, "%s:\n", name)
		fmt.Fprintf(w, "  %-22s p50 %8s  p99 %8s  p99.9 %8s  max %8s  (%d acks)\n", "agent", us(md.Agent.P50), us(md.Agent.P99), us(md.Agent.P999), us(md.Agent.Max), md.Agent.Samples)
		fmt.Fprintf(w, "  %-22s p50 %8s  p99 %8s  p99.9 %8s  max %8s\n", "floor: relay hops", us(md.Hops.P50), us(md.Hops.P99), us(md.Hops.P999), us(md.Hops.Max))
		fmt.Fprintf(w, "  %-22s p50 %8s  p99 %8s  p99.9 %8s  max %8s\n", "floor: pty round trip", us(md.Pty.P50), us(md.Pty.P99), us(md.Pty.P999), us(md.Pty.Max))
		fmt.Fprintf(w, "  %-22s p50 %8s  p99 %8s  p99.9 %8s\n", "floor (sum)", us(md.Floor(p50)), us(md.Floor(p99)), us(md.Floor(p999)))
		if md.Agent.NotOK > 0 {
			fmt.Fprintf(w, "  %d acks were not ok\n", md.Agent.NotOK)
		}
	}
	if p := r.Process; p != nil {
		fmt.Fprintf(w, "agent process at %d/s with %d Hz telemetry for %.1fs: CPU %.2f%% of a core, RSS %.1f MB (max %.1f MB; anonymous %.1f MB, file %.1f MB), acks p50 %s p99 %s, %d telemetry signals\n",
			p.Rate, p.TelemetryHz, p.Seconds, p.CPUPercent, mb(p.RSSLastKB), mb(p.RSSMaxKB), mb(p.RSSAnonKB), mb(p.RSSFileKB), us(p.Agent.P50), us(p.Agent.P99), p.Telemetry)
	}
	return nil
}

func mb(kb int) float64 { return float64(kb) / 1024 }
