package compare

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const (
	warmup = 200 * time.Millisecond // of the latency run, not counted
	// window is how far a sender may run ahead of its slowest receiver (and,
	// on the relay, of its own results): well under every server's queue, so
	// that no one is dropped as a slow consumer.
	window    = 256
	drainWait = 5 * time.Second // for the last messages after a run
)

// Latency is sender-write → receiver-read of 1→1 messages at a fixed rate.
type Latency struct {
	Rate    int           `json:"rate"`
	Samples int           `json:"samples"`
	P50     time.Duration `json:"p50Ns"`
	P99     time.Duration `json:"p99Ns"`
	P999    time.Duration `json:"p999Ns"`
	Max     time.Duration `json:"maxNs"`
	sorted  []time.Duration
}

// Throughput is messages delivered per second to the receivers of one
// sender's broadcasts.
type Throughput struct {
	Receivers     int     `json:"receivers"`
	Sent          int64   `json:"sent"`
	Delivered     int64   `json:"delivered"`
	Seconds       float64 `json:"seconds"`
	DeliveredPerS float64 `json:"deliveredPerSecond"`
}

// Memory is the server's RSS growth per idle connection.
type Memory struct {
	Conns        int     `json:"conns"`
	RSSBefore    int64   `json:"rssBytesBefore"`
	RSSAfter     int64   `json:"rssBytesAfter"`
	BytesPerConn float64 `json:"bytesPerConn"`
}

// runLatency sends 1→1 messages at rate per second for d (after a warm-up)
// and measures each from just before the sender's send to just after the
// receiver's read, on one monotonic clock. The payload carries the send time.
func runLatency(ctx context.Context, dr driver, rate int, d time.Duration, payload int) (*Latency, error) {
	base := time.Now()
	var (
		mu       sync.Mutex
		samples  = make([]time.Duration, 0, int(d.Seconds()*float64(rate))+16)
		received atomic.Int64
		bad      firstErr
	)
	recv, err := dr.connect(ctx, "lat", func(p []byte) {
		now := time.Since(base)
		sent, err := strconv.ParseInt(string(digits(p)), 10, 64)
		if err != nil {
			bad.set(fmt.Errorf("receiver: bad payload %.40q", p))
			return
		}
		received.Add(1)
		if time.Duration(sent) >= warmup {
			mu.Lock()
			samples = append(samples, now-time.Duration(sent))
			mu.Unlock()
		}
	}, nil)
	if err != nil {
		return nil, err
	}
	clients := []client{recv}
	defer func() { closeClients(clients) }()
	sender, err := dr.connect(ctx, "lat", nil, nil)
	if err != nil {
		return nil, err
	}
	clients = append(clients, sender)

	buf := make([]byte, 0, payload)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	end := time.Now().Add(warmup + d)
	var sent int64
	for time.Now().Before(end) && ctx.Err() == nil {
		<-tick.C
		buf = strconv.AppendInt(buf[:0], int64(time.Since(base)), 10)
		buf = append(buf, '-')
		for len(buf) < payload {
			buf = append(buf, 'x')
		}
		if err := sender.send(recv.id(), buf); err != nil {
			return nil, fmt.Errorf("send: %w", err)
		}
		sent++
	}
	for wait := time.Now().Add(drainWait); received.Load() < sent && time.Now().Before(wait); {
		time.Sleep(time.Millisecond)
	}
	err = closeClients(clients)
	clients = nil
	if err := errors.Join(err, bad.get()); err != nil {
		return nil, err
	}
	if got := received.Load(); got != sent {
		return nil, fmt.Errorf("received %d of %d messages", got, sent)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(samples) == 0 {
		return nil, errors.New("no latency samples")
	}
	slices.Sort(samples)
	q := func(p float64) time.Duration { return samples[min(len(samples)-1, int(p*float64(len(samples))))] }
	return &Latency{Rate: rate, Samples: len(samples), P50: q(0.50), P99: q(0.99), P999: q(0.999),
		Max: samples[len(samples)-1], sorted: samples}, ctx.Err()
}

func digits(s []byte) []byte {
	for i, c := range s {
		if c < '0' || c > '9' {
			return s[:i]
		}
	}
	return s
}

// runThroughput has one sender broadcast to receivers as fast as they keep
// up, for d, and counts what they receive.
func runThroughput(ctx context.Context, dr driver, receivers int, d time.Duration, payload int) (*Throughput, error) {
	counts := make([]atomic.Int64, receivers)
	// Flow control: the sender sleeps on progress while it is a window
	// ahead of the slowest receiver (spinning would take CPU from them).
	var waiting atomic.Bool
	progress := make(chan struct{}, 1)
	poke := func() {
		if waiting.Load() {
			select {
			case progress <- struct{}{}:
			default:
			}
		}
	}
	var socks []client
	defer func() { closeClients(socks) }()
	for i := range counts {
		c, err := dr.connect(ctx, "tp", func([]byte) { counts[i].Add(1); poke() }, nil)
		if err != nil {
			return nil, fmt.Errorf("receiver %d: %w", i, err)
		}
		socks = append(socks, c)
	}
	sender, err := dr.connect(ctx, "tp", nil, poke)
	if err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	socks = append(socks, sender)

	minCount := func() int64 {
		m, ok := sender.acks()
		if !ok {
			m = counts[0].Load()
		}
		for i := range counts {
			m = min(m, counts[i].Load())
		}
		return m
	}
	data := make([]byte, payload)
	for i := range data {
		data[i] = 'x'
	}
	var sent int64
	start := time.Now()
	end := start.Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		if sent-minCount() >= window {
			waiting.Store(true)
			stalled := time.Now().Add(10 * time.Second)
			for sent-minCount() >= window/2 && time.Now().Before(stalled) {
				select {
				case <-progress:
				case <-time.After(10 * time.Millisecond):
				}
			}
			waiting.Store(false)
			if sent-minCount() >= window/2 {
				return nil, errors.New("no progress for 10s: a receiver fell behind or was dropped")
			}
		}
		if err := sender.send("", data); err != nil {
			return nil, fmt.Errorf("send: %w", err)
		}
		sent++
	}
	for wait := time.Now().Add(drainWait); minCount() < sent && time.Now().Before(wait); {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	var delivered int64
	for i := range counts {
		delivered += counts[i].Load()
	}
	err = closeClients(socks)
	socks = nil
	if err != nil {
		return nil, err
	}
	if want := sent * int64(receivers); delivered != want {
		return nil, fmt.Errorf("delivered %d of %d messages", delivered, want)
	}
	return &Throughput{Receivers: receivers, Sent: sent, Delivered: delivered, Seconds: elapsed.Seconds(),
		DeliveredPerS: float64(delivered) / elapsed.Seconds()}, ctx.Err()
}

// runIdle opens n idle connections, two per group, and measures the growth
// of the server's RSS per connection. A few connections opened and closed
// first warm up the server's pools.
func runIdle(ctx context.Context, s *server, dr driver, n int) (*Memory, error) {
	open := func(n int, prefix string) ([]net.Conn, error) {
		conns := make([]net.Conn, 0, n)
		for i := 0; i < n; i++ {
			c, err := dr.dialIdle(ctx, prefix+strconv.Itoa(i/2))
			if err != nil {
				closeAll(conns)
				return nil, fmt.Errorf("idle connection %d: %w", i, err)
			}
			conns = append(conns, c)
		}
		return conns, nil
	}
	warm, err := open(20, "warm-")
	if err != nil {
		return nil, err
	}
	closeAll(warm)
	settle := 300 * time.Millisecond // for the server to finish with them
	time.Sleep(settle)
	before, err := s.rss()
	if err != nil {
		return nil, err
	}
	conns, err := open(n, "idle-")
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	time.Sleep(settle)
	after, err := s.rss()
	if err != nil {
		return nil, err
	}
	return &Memory{Conns: n, RSSBefore: before, RSSAfter: after,
		BytesPerConn: float64(after-before) / float64(n)}, ctx.Err()
}

// closeClients closes every client and returns their errors.
func closeClients(cs []client) error {
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.close())
	}
	return errors.Join(errs...)
}

func closeAll(cs []net.Conn) {
	for _, c := range cs {
		c.Close()
	}
}
