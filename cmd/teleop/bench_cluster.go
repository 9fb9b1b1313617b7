package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/teleop/teleop/bench/compare"
	"github.com/teleop/teleop/signaling/relay/relaybench"
)

// clusterFlags are `teleop bench relay --cluster` and its node count.
type clusterFlags struct {
	on    bool
	nodes int
}

func addClusterFlags(cmd *cobra.Command, cl *clusterFlags) {
	f := cmd.Flags()
	f.BoolVar(&cl.on, "cluster", false, "latency and broadcast throughput on one relay and across the nodes of a cluster on nats-server,\n"+
		"side by side: 1→1 latency and 1→10 broadcast (or --fanouts)")
	f.IntVar(&cl.nodes, "nodes", 2, "with --cluster: relays in the cluster; the sender's node and the receivers' (spread over the others)")
}

// runBenchCluster is `teleop bench relay --cluster`.
func runBenchCluster(cmd *cobra.Command, bf *benchFlags, o *relaybench.Options, cl *clusterFlags) error {
	f := cmd.Flags()
	switch {
	case f.Changed("compare"):
		return errors.New("--cluster and --compare are separate runs: give one")
	case f.Changed("conns"), f.Changed("chart"):
		return errors.New("--cluster measures no memory and draws no chart: --conns and --chart go without it")
	case cl.nodes < 2:
		return fmt.Errorf("--nodes %d: a cluster has at least 2 nodes", cl.nodes)
	}
	co := relaybench.ClusterOptions{Duration: o.Duration, Rate: o.Rate, DataBytes: o.DataBytes, Nodes: cl.nodes}
	if f.Changed("fanouts") {
		co.Fanouts = o.Fanouts
	}
	if !bf.json {
		co.Logf = func(format string, args ...any) {
			fmt.Fprintf(cmd.ErrOrStderr(), "bench: "+format+"\n", args...)
		}
	}
	res, err := relaybench.RunCluster(cmd.Context(), &co)
	if err != nil {
		return fmt.Errorf("bench relay --cluster: %w", err)
	}
	if bf.json {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return printClusterBench(cmd.OutOrStdout(), res, o.Duration)
}

// clusterTarget is issue 8's: cross-node p50 at most twice single node's.
const clusterTarget = 2.0

func printClusterBench(w io.Writer, r *relaybench.ClusterResult, d time.Duration) error {
	m := r.Machine
	fmt.Fprintf(w, "relay over loopback: single node vs cross-node, %v per run\n", d)
	fmt.Fprintf(w, "machine: %s %s/%s, %d CPUs, GOMAXPROCS %d, load %s → %s\n",
		m.GoVersion, m.GOOS, m.GOARCH, m.NumCPU, m.GOMAXPROCS, r.LoadBefore, r.LoadAfter)
	others := make([]string, r.Nodes-1)
	for i := range others {
		others[i] = fmt.Sprintf("n%d", i+2)
	}
	nats := "nats-server"
	if r.NATSServer != "" {
		nats += " " + r.NATSServer
	}
	fmt.Fprintf(w, "cross-node: %d relays in this process, nodes of one cluster on %s (a process of its own);\n"+
		"            the sender on n1, the receivers on %s\n\n", r.Nodes, nats, strings.Join(others, ", "))

	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintf(tw, "\tsingle node\tcross-node\tcross/single\n")
	l := r.Latency
	fmt.Fprintf(tw, "latency 1→1 p50\t%s\t%s\t×%.2f\n", dur(l.Single.P50), dur(l.Cross.P50), l.P50Ratio)
	fmt.Fprintf(tw, "latency 1→1 p99\t%s\t%s\t×%.2f\n", dur(l.Single.P99), dur(l.Cross.P99), l.P99Ratio)
	fmt.Fprintf(tw, "latency 1→1 p99.9\t%s\t%s\t×%.2f\n", dur(l.Single.P999), dur(l.Cross.P999), l.P999Ratio)
	fmt.Fprintf(tw, "latency samples\t%d\t%d\tat %d/s\n", l.Single.Samples, l.Cross.Samples, l.Single.Rate)
	for _, t := range r.Throughput {
		kind := "broadcast"
		if t.Receivers == 1 {
			kind = "to one connection"
		}
		fmt.Fprintf(tw, "%s 1→%d /s\t%s\t%s\t×%.2f\n", kind, t.Receivers, compare.Thousands(t.Single.DeliveredPerS), compare.Thousands(t.Cross.DeliveredPerS), t.Ratio)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verdict := "met"
	if l.P50Ratio > clusterTarget {
		verdict = "missed"
	}
	fmt.Fprintf(w, "\ntarget cross-node p50 ≤ %.0f× single node's: %s (×%.2f)\n", clusterTarget, verdict, l.P50Ratio)
	return nil
}

// dur prints a latency in µs below 1 ms, else in ms.
func dur(d time.Duration) string {
	if d < time.Millisecond {
		return us(d)
	}
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}
