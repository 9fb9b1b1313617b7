package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/teleop/teleop/signaling/relay/relaybench"
)

// benchFlags are shared by every `teleop bench` subcommand.
type benchFlags struct {
	json bool
}

// newBenchCmd builds `teleop bench`: measurements of teleop's parts, one
// subcommand each (relay; later e2e), printed as text or JSON.
func newBenchCmd() *cobra.Command {
	var bf benchFlags
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure teleop's parts on this machine (relay, …)",
		Args:  cobra.NoArgs,
	}
	cmd.PersistentFlags().BoolVar(&bf.json, "json", false, "print the results as JSON")
	cmd.AddCommand(newBenchRelayCmd(&bf))
	cmd.AddCommand(newBenchE2ECmd(&bf))
	return cmd
}

func newBenchRelayCmd(bf *benchFlags) *cobra.Command {
	var o relaybench.Options
	var cf compareFlags
	var cl clusterFlags
	cmd := &cobra.Command{
		Use:   "relay",
		Short: "Relay latency, throughput and memory per idle connection, over loopback",
		Long: `Run a relay on a loopback port and measure, with clients in the same process:
  latency     1→1 signals at --rate per second for --duration: sender write → receiver read
  throughput  one sender, as fast as the receivers keep up, for --duration each:
              1→1 (to one connection) and 1→N broadcast for every N in --fanouts
  memory      Go heap + goroutine stacks per idle connection with --conns connections

Clients share the CPUs with the relay, so the numbers are a floor for the relay alone.
The machine's load matters: run it two or three times.

--compare runs this binary as "teleop server", mosquitto and nats-server instead, each a
process on a free 127.0.0.1 port, through the same workloads (payloads of 100 B and 8 KB,
fan-out to 10 and 100, server RSS per idle connection), and prints them side by side with
each one's ratio to teleop server, plus a PNG chart of the latency distributions (--chart).

--cluster runs the latency and broadcast (--fanouts, default 10) workloads twice, workload by
workload: on one relay, then with the sender on one node of a cluster and the receivers on the
other --nodes (relays in this process, sharing sessions through a nats-server that the bench
starts on a free 127.0.0.1 port), and prints them side by side with the ratio cross/single.
It needs nats-server (Debian package nats-server).`,
		Example: `  teleop bench relay
  teleop bench relay --duration 2s --fanouts 10 --conns 1000 --json
  teleop bench relay --compare --chart compare.png
  teleop bench relay --cluster --nodes 3 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cl.on {
				return runBenchCluster(cmd, bf, &o, &cl)
			}
			if cmd.Flags().Changed("nodes") {
				return errors.New("--nodes goes with --cluster")
			}
			if cf.on {
				return runBenchCompare(cmd, bf, &o, &cf)
			}
			if cmd.Flags().Changed("chart") {
				return errChartWithoutCompare
			}
			if !bf.json {
				o.Logf = func(format string, args ...any) {
					fmt.Fprintf(cmd.ErrOrStderr(), "bench: "+format+"\n", args...)
				}
			}
			res, err := relaybench.Run(cmd.Context(), &o)
			if err != nil {
				return fmt.Errorf("bench relay: %w", err)
			}
			if bf.json {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			return printRelayBench(cmd.OutOrStdout(), res)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.Duration, "duration", 5*time.Second, "length of the latency run and of each throughput run")
	f.IntVar(&o.Rate, "rate", 1000, "signals per second of the latency run")
	f.IntVar(&o.DataBytes, "data-bytes", 100, "signal data size")
	f.IntSliceVar(&o.Fanouts, "fanouts", []int{1, 10, 100}, "receivers of the throughput runs (1 is a signal to one connection)")
	f.IntVar(&o.IdleConns, "conns", 5000, "idle connections of the memory run (-1 skips it)")
	addCompareFlags(cmd, &cf)
	addClusterFlags(cmd, &cl)
	return cmd
}

func printRelayBench(w io.Writer, r *relaybench.Result) error {
	m := r.Machine
	fmt.Fprintf(w, "relay over loopback (%s %s/%s, %d CPUs, GOMAXPROCS %d)\n", m.GoVersion, m.GOOS, m.GOARCH, m.NumCPU, m.GOMAXPROCS)
	l := r.Latency
	fmt.Fprintf(w, "latency 1→1 at %d/s:  p50 %v  p99 %v  p99.9 %v  max %v  (%d signals)\n",
		l.Rate, us(l.P50), us(l.P99), us(l.P999), us(l.Max), l.Samples)
	for _, t := range r.Throughput {
		kind := "to one connection"
		if t.Receivers > 1 {
			kind = "broadcast"
		}
		fmt.Fprintf(w, "throughput 1→%-3d %-17s  %9.0f delivered/s  (%d signals sent in %.1fs)\n",
			t.Receivers, kind, t.DeliveredPerS, t.Sent, t.Seconds)
	}
	if mm := r.Memory; mm != nil {
		fmt.Fprintf(w, "memory, %d idle connections:  %.1f KB per connection (heap %.1f KB, stacks %.1f KB, %d goroutines)\n",
			mm.Conns, mm.BytesPerConn/1024, mm.HeapPerConn/1024, mm.StackPerConn/1024, mm.Goroutines)
	}
	return nil
}

func us(d time.Duration) string {
	return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
}
