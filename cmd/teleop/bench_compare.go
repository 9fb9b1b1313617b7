package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/teleop/teleop/bench/compare"
	"github.com/teleop/teleop/signaling/relay/relaybench"
)

// compareFlags are `teleop bench relay --compare` and its chart.
type compareFlags struct {
	on    bool
	chart string
}

const defaultChart = "teleop-bench-compare.png"

func addCompareFlags(cmd *cobra.Command, cf *compareFlags) {
	f := cmd.Flags()
	f.BoolVar(&cf.on, "compare", false, "compare teleop server with mosquitto and nats-server, each a process on a loopback port:\n"+
		"payloads of 100 B and 8 KB (or --data-bytes), fan-out to 10 and 100 (or --fanouts)")
	f.StringVar(&cf.chart, "chart", "", "with --compare: PNG of the latency distributions\n"+
		"(default: next to the output when stdout is a file, else ./"+defaultChart+")")
}

// runBenchCompare is `teleop bench relay --compare`: this binary as
// `teleop server`, mosquitto and nats-server through the same workloads.
func runBenchCompare(cmd *cobra.Command, bf *benchFlags, o *relaybench.Options, cf *compareFlags) error {
	stderr := cmd.ErrOrStderr()
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench relay --compare: find the teleop binary: %w", err)
	}
	co := compare.Options{
		Binaries:  compare.Binaries{Teleop: self},
		Duration:  o.Duration,
		Rate:      o.Rate,
		IdleConns: o.IdleConns,
	}
	if cmd.Flags().Changed("data-bytes") {
		co.Payloads = []int{o.DataBytes}
	}
	if cmd.Flags().Changed("fanouts") {
		co.Fanouts = o.Fanouts
	}
	plan := compare.PlanFor(&co)
	if err := co.Validate(); err != nil {
		return fmt.Errorf("bench relay --compare: %w", err)
	}
	chart := cf.chart
	if chart == "" {
		chart = chartNextTo(cmd.OutOrStdout())
	}
	if chart, err = filepath.Abs(chart); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bench: teleop server vs mosquitto vs nats-server, %v per run: %s\n", co.Duration, plan)
	if !bf.json {
		co.Logf = func(format string, args ...any) {
			fmt.Fprintf(stderr, "bench: "+format+"\n", args...)
		}
	}
	res, err := compare.Run(cmd.Context(), &co)
	if err != nil {
		return fmt.Errorf("bench relay --compare: %w", err)
	}
	if err := res.WriteChart(chart); err != nil {
		return fmt.Errorf("bench relay --compare: %w", err)
	}
	res.Chart = chart
	if bf.json {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return res.WriteText(cmd.OutOrStdout())
}

// chartNextTo names the chart after the file stdout is redirected to
// (out.json → out.png), or defaultChart in the working directory.
func chartNextTo(w io.Writer) string {
	f, ok := w.(*os.File)
	if !ok {
		return defaultChart
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return defaultChart
	}
	p, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil || !filepath.IsAbs(p) {
		return defaultChart
	}
	base := strings.TrimSuffix(p, filepath.Ext(p))
	if base+".png" == p {
		return base + "-latency.png"
	}
	return base + ".png"
}

var errChartWithoutCompare = errors.New("--chart goes with --compare")
