package agentbench_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/teleop/teleop/bridge/agentbench"
)

// TestRunSmoke runs everything briefly, the agent process included, and
// checks the result's shape only (a benchmark, not a timed test).
func TestRunSmoke(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "teleop")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/teleop").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	res, err := agentbench.Run(context.Background(), &agentbench.Options{
		Duration: 300 * time.Millisecond, MaxDuration: 300 * time.Millisecond, Binary: bin, Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []agentbench.Mode{res.Paced, res.Max} {
		if m.Agent.Samples == 0 || m.Hops.Samples == 0 || m.Pty.Samples == 0 {
			t.Errorf("mode %+v", m)
		}
	}
	if p := res.Process; p == nil || p.Agent.Samples == 0 || p.RSSMaxKB == 0 || p.Seconds == 0 || p.Telemetry == 0 {
		t.Errorf("process %+v", p)
	}
	t.Logf("%+v", res)
}

// The Go benchmarks: b.N drives (or round trips); -benchtime 1000x is 20 s
// at 50 Hz. They report the percentiles as metrics.
//
//	go test -run '^$' -bench . -benchtime 1000x ./bridge/agentbench
func BenchmarkAgent(b *testing.B) {
	for _, c := range []struct {
		name string
		rate int
	}{{"50Hz", 50}, {"backToBack", 0}} {
		b.Run(c.name, func(b *testing.B) {
			l, acks, err := agentbench.RunAgent(context.Background(), c.rate, time.Hour, b.N)
			if err != nil {
				b.Fatal(err)
			}
			report(b, l)
			b.ReportMetric(acks, "acks/s")
		})
	}
}

func BenchmarkFloorRelayHops(b *testing.B) {
	for _, c := range []struct {
		name string
		rate int
	}{{"50Hz", 50}, {"backToBack", 0}} {
		b.Run(c.name, func(b *testing.B) {
			l, err := agentbench.RunHops(context.Background(), c.rate, time.Hour, b.N)
			if err != nil {
				b.Fatal(err)
			}
			report(b, l)
		})
	}
}

func BenchmarkFloorPty(b *testing.B) {
	for _, c := range []struct {
		name string
		rate int
	}{{"50Hz", 50}, {"backToBack", 0}} {
		b.Run(c.name, func(b *testing.B) {
			l, err := agentbench.RunPty(context.Background(), c.rate, time.Hour, b.N)
			if err != nil {
				b.Fatal(err)
			}
			report(b, l)
		})
	}
}

func report(b *testing.B, l agentbench.Latency) {
	b.ReportMetric(0, "ns/op") // the percentiles say it; a mean per op would mislead
	b.ReportMetric(float64(l.P50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(l.P99.Microseconds()), "p99-µs")
	b.ReportMetric(float64(l.P999.Microseconds()), "p99.9-µs")
	b.ReportMetric(float64(l.NotOK), "not-ok-acks")
}
