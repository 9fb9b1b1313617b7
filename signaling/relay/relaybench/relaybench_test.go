package relaybench

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/teleop/teleop/internal/natstest"
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

// TestRunClusterSmoke runs the cluster comparison briefly on three nodes
// (receivers on two of them) and checks outcomes only.
func TestRunClusterSmoke(t *testing.T) {
	ns := natstest.ForTest(t)
	res, err := RunCluster(context.Background(), &ClusterOptions{
		Duration: 200 * time.Millisecond, Fanouts: []int{3}, Nodes: 3, NATS: ns.URL(), Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	l := res.Latency
	if l.Single.Samples == 0 || l.Cross.Samples == 0 || l.P50Ratio == 0 || len(res.Throughput) != 1 {
		t.Fatalf("result %+v", res)
	}
	if tp := res.Throughput[0]; tp.Receivers != 3 || tp.Single.Delivered == 0 || tp.Cross.Delivered == 0 || tp.Ratio == 0 {
		t.Fatalf("throughput %+v", tp)
	}
}

func BenchmarkRelayLatency(b *testing.B) { benchLatency(b, Topology{}, 100) }

// BenchmarkRelayLatencyCrossNode is BenchmarkRelayLatency with the sender
// and the receiver on two nodes of a cluster on a real nats-server.
func BenchmarkRelayLatencyCrossNode(b *testing.B) { benchLatency(b, crossNode(b, 2), 100) }

// BenchmarkRelayLatency8KB is the latency of signals with the largest data
// the relay accepts (signaling.MaxDataBytes).
func BenchmarkRelayLatency8KB(b *testing.B) { benchLatency(b, Topology{}, 8192) }

// crossNode starts a nats-server for b (skipped without one, unless
// TELEOP_REQUIRE_BROKERS=1) and returns a cluster of n nodes on it.
func crossNode(b *testing.B, n int) Topology {
	return Topology{NATS: natstest.ForTest(b).URL(), Nodes: n}
}

func benchLatency(b *testing.B, t Topology, dataBytes int) {
	// b.N signals at 1 kHz; ns/op is the pacing, the metrics are the point.
	d := time.Duration(b.N) * time.Millisecond
	b.ResetTimer()
	l, err := RunLatencyOn(context.Background(), t, 1000, d, dataBytes)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(l.P50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(l.P99.Microseconds()), "p99-µs")
	b.ReportMetric(float64(l.P999.Microseconds()), "p99.9-µs")
}

func BenchmarkRelayThroughput(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("1to%d", n), func(b *testing.B) { benchThroughput(b, Topology{}, n) })
	}
}

// BenchmarkRelayThroughputCrossNode is BenchmarkRelayThroughput with the
// sender on one node of a cluster and the receivers on another (or, for
// 3nodes, spread over two others).
func BenchmarkRelayThroughputCrossNode(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("1to%d", n), func(b *testing.B) { benchThroughput(b, crossNode(b, 2), n) })
	}
	b.Run("3nodes-1to10", func(b *testing.B) { benchThroughput(b, crossNode(b, 3), 10) })
}

func benchThroughput(b *testing.B, t Topology, receivers int) {
	tp, err := RunThroughputOn(context.Background(), t, receivers, time.Second, 100)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(tp.DeliveredPerS, "deliveries/s")
	b.ReportMetric(0, "ns/op")
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

// BenchmarkNATSLatencyFloor is what a cross-node signal cannot go below on
// NATS: a message from one nats.go connection to an async subscription of
// another, both in this process, through the same kind of nats-server, at
// 1 kHz, 200 bytes (a cluster event with 100 bytes of signal data), timed
// as RunLatency times a signal. The relay's cross-node path is this plus a
// relay's work on each side (docs/benchmarks.md).
func BenchmarkNATSLatencyFloor(b *testing.B) {
	url := natstest.ForTest(b).URL()
	pub, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	sub, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	base := time.Now()
	const warmup = 200 * time.Millisecond
	var mu sync.Mutex
	var samples []time.Duration
	if _, err := sub.Subscribe("floor", func(m *nats.Msg) {
		now := time.Since(base)
		sent, err := strconv.ParseInt(digits(string(m.Data)), 10, 64)
		if err != nil || time.Duration(sent) < warmup {
			return
		}
		mu.Lock()
		samples = append(samples, now-time.Duration(sent))
		mu.Unlock()
	}); err != nil {
		b.Fatal(err)
	}
	if err := sub.Flush(); err != nil { // the subscription is in place
		b.Fatal(err)
	}
	pad := []byte("-" + strings.Repeat("x", 180))
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	b.ResetTimer()
	end := time.Now().Add(warmup + time.Duration(b.N)*time.Millisecond)
	var buf []byte
	for time.Now().Before(end) {
		<-tick.C
		buf = append(strconv.AppendInt(buf[:0], int64(time.Since(base)), 10), pad...)
		if err := pub.Publish("floor", buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := pub.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := sub.Flush(); err != nil { // every message is in
		b.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(samples) == 0 {
		b.Fatal("no samples")
	}
	slices.Sort(samples)
	q := func(p float64) time.Duration { return samples[min(len(samples)-1, int(p*float64(len(samples))))] }
	b.ReportMetric(float64(q(0.50).Microseconds()), "p50-µs")
	b.ReportMetric(float64(q(0.99).Microseconds()), "p99-µs")
	b.ReportMetric(float64(q(0.999).Microseconds()), "p99.9-µs")
}
