package relaybench

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestRunSmoke runs every measurement briefly and checks outcomes only.
func TestRunSmoke(t *testing.T) {
	res, err := Run(context.Background(), &Options{
		Duration: 300 * time.Millisecond, Fanouts: []int{1, 3}, IdleConns: 40, Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Latency.Samples == 0 || len(res.Throughput) != 2 || res.Throughput[1].Delivered == 0 || res.Memory.Conns != 40 {
		t.Fatalf("result %+v", res)
	}
}

func BenchmarkRelayLatency(b *testing.B) { benchLatency(b, 100) }

// BenchmarkRelayLatency8KB is the latency of signals with the largest data
// the relay accepts (signaling.MaxDataBytes).
func BenchmarkRelayLatency8KB(b *testing.B) { benchLatency(b, 8192) }

func benchLatency(b *testing.B, dataBytes int) {
	// b.N signals at 1 kHz; ns/op is the pacing, the metrics are the point.
	d := time.Duration(b.N) * time.Millisecond
	b.ResetTimer()
	l, err := RunLatency(context.Background(), 1000, d, dataBytes)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(l.P50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(l.P99.Microseconds()), "p99-µs")
	b.ReportMetric(float64(l.P999.Microseconds()), "p99.9-µs")
}

func BenchmarkRelayThroughput(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("1to%d", n), func(b *testing.B) {
			tp, err := RunThroughput(context.Background(), n, time.Second, 100)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(tp.DeliveredPerS, "deliveries/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func BenchmarkRelayIdleMemory(b *testing.B) {
	m, err := RunIdleMemory(context.Background(), 5000)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(m.BytesPerConn, "bytes/conn")
	b.ReportMetric(m.HeapPerConn, "heap-bytes/conn")
	b.ReportMetric(m.StackPerConn, "stack-bytes/conn")
	b.ReportMetric(0, "ns/op")
}
