// Package relaybench measures the relay over loopback WebSockets: signal
// latency at a fixed rate, delivered signals per second for 1→1 and 1→N
// broadcast, and memory per idle connection. `teleop bench relay` and the
// Go benchmarks of this package run it; docs/benchmarks.md has results.
//
// Clients and relay share the process (and its CPUs), so every number
// includes the clients' cost too; latency is measured from just before the
// sender's write to just after the receiver's read, on one monotonic clock.
//
// The latency and throughput workloads also run across the nodes of a
// cluster (a Topology: relays in this process on a real nats-server),
// with the sender on one node and the receivers on the others; RunCluster
// runs them next to the single-relay runs (`teleop bench relay --cluster`).
package relaybench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/teleop/teleop/signaling/relay"
	"github.com/teleop/teleop/signaling/token"
)

const (
	benchKey    = "10000001"
	benchSecret = "relay-bench-secret"
)

// Options shape a run. Zero values are the defaults.
type Options struct {
	Duration  time.Duration // of the latency run and of each throughput run; default 5s
	Rate      int           // latency signals per second; default 1000
	DataBytes int           // signal data size; default 100
	Fanouts   []int         // receivers of the throughput runs; default 1, 10, 100
	IdleConns int           // connections of the memory run; default 5000; <0 skips it
	Logf      func(format string, args ...any)
}

func (o *Options) defaults() {
	if o.Duration <= 0 {
		o.Duration = 5 * time.Second
	}
	if o.Rate <= 0 {
		o.Rate = 1000
	}
	if o.DataBytes <= 0 {
		o.DataBytes = 100
	}
	if o.Fanouts == nil {
		o.Fanouts = []int{1, 10, 100}
	}
	if o.IdleConns == 0 {
		o.IdleConns = 5000
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// Result is one run of everything.
type Result struct {
	Machine    Machine      `json:"machine"`
	Latency    *Latency     `json:"latency"`
	Throughput []Throughput `json:"throughput"`
	Memory     *Memory      `json:"memory,omitempty"`
}

// Machine says where the numbers come from.
type Machine struct {
	GoVersion  string `json:"goVersion"`
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	NumCPU     int    `json:"numCPU"`
	GOMAXPROCS int    `json:"gomaxprocs"`
}

// Latency is sender-write → receiver-read of 1→1 signals at a fixed rate.
type Latency struct {
	Rate    int           `json:"rate"`
	Samples int           `json:"samples"`
	P50     time.Duration `json:"p50Ns"`
	P99     time.Duration `json:"p99Ns"`
	P999    time.Duration `json:"p999Ns"`
	Max     time.Duration `json:"maxNs"`
}

// Throughput is signals delivered per second to the receivers of one
// sender (broadcast when Receivers > 1; the relay also echoes each
// broadcast to the sender, not counted here).
type Throughput struct {
	Receivers     int     `json:"receivers"`
	Sent          int64   `json:"sent"`
	Delivered     int64   `json:"delivered"`
	Seconds       float64 `json:"seconds"`
	DeliveredPerS float64 `json:"deliveredPerSecond"`
}

// Memory is the Go heap and goroutine stacks per idle connection.
type Memory struct {
	Conns        int     `json:"conns"`
	SessionSize  int     `json:"sessionSize"`
	HeapPerConn  float64 `json:"heapBytesPerConn"`
	StackPerConn float64 `json:"stackBytesPerConn"`
	BytesPerConn float64 `json:"bytesPerConn"`
	Goroutines   int     `json:"goroutinesPerConn"`
}

// Run runs the latency, throughput and memory measurements in turn.
func Run(ctx context.Context, o *Options) (*Result, error) {
	var opts Options
	if o != nil {
		opts = *o
	}
	opts.defaults()
	res := &Result{Machine: Machine{
		GoVersion: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH,
		NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
	}}
	var err error
	opts.Logf("latency: 1→1 at %d/s for %v", opts.Rate, opts.Duration)
	if res.Latency, err = RunLatency(ctx, opts.Rate, opts.Duration, opts.DataBytes); err != nil {
		return nil, err
	}
	for _, n := range opts.Fanouts {
		opts.Logf("throughput: 1→%d for %v", n, opts.Duration)
		tp, err := RunThroughput(ctx, n, opts.Duration, opts.DataBytes)
		if err != nil {
			return nil, err
		}
		res.Throughput = append(res.Throughput, *tp)
	}
	if opts.IdleConns > 0 {
		opts.Logf("memory: %d idle connections", opts.IdleConns)
		if res.Memory, err = RunIdleMemory(ctx, opts.IdleConns); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// bench is a relay on a loopback listener.
type bench struct {
	relay *relay.Server
	srv   *http.Server
	ln    net.Listener
	url   string // ws://127.0.0.1:N/v1/connect
	done  chan struct{}
}

func startRelay(o relay.Options) (*bench, error) {
	o.APIKey, o.APISecret = benchKey, benchSecret
	if o.RatePerSec == 0 {
		o.RatePerSec, o.RateBurst = 1e9, 1e9 // measure the relay, not its rate limit
	}
	r, err := relay.New(&o)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.Close()
		return nil, err
	}
	b := &bench{relay: r, srv: &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}, ln: ln,
		url: "ws://" + ln.Addr().String() + "/v1/connect", done: make(chan struct{})}
	go func() {
		defer close(b.done)
		_ = b.srv.Serve(ln)
	}()
	return b, nil
}

func (b *bench) close() {
	_ = b.srv.Close()
	_ = b.relay.Close()
	<-b.done
}

func (b *bench) token(session string) (string, error) {
	return token.New(benchKey, benchSecret, session, &token.Options{TTL: time.Hour})
}

// peer is a client of a run: its socket, its connection ID and the
// welcome it read.
type peer struct {
	ws      *websocket.Conn
	id      string
	welcome []byte
}

// dial connects to session and reads the welcome.
func (b *bench) dial(ctx context.Context, session string) (*peer, error) {
	tok, err := b.token(session)
	if err != nil {
		return nil, err
	}
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, b.url+"?"+url.Values{"token": {tok}}.Encode(), nil)
	if err != nil {
		return nil, err
	}
	_, msg, err := ws.ReadMessage()
	if err != nil {
		ws.Close()
		return nil, err
	}
	id := field(msg, `"connection":{"connectionId":"`)
	if id == "" {
		ws.Close()
		return nil, fmt.Errorf("no connection ID in welcome %.200s", msg)
	}
	return &peer{ws: ws, id: id, welcome: msg}, nil
}

// field returns the string after marker up to the next quote.
func field(msg []byte, marker string) string {
	i := bytes.Index(msg, []byte(marker))
	if i < 0 {
		return ""
	}
	rest := msg[i+len(marker):]
	if j := bytes.IndexByte(rest, '"'); j >= 0 {
		return string(rest[:j])
	}
	return ""
}

var (
	signalPrefix = []byte(`{"op":"signal"`)
	resultPrefix = []byte(`{"op":"result"`)
)

// RunLatency sends 1→1 signals at rate per second for d and measures the
// time from the sender's write to the receiver's read, on one relay.
func RunLatency(ctx context.Context, rate int, d time.Duration, dataBytes int) (*Latency, error) {
	return RunLatencyOn(ctx, Topology{}, rate, d, dataBytes)
}

// RunLatencyOn is RunLatency with the sender and the receiver where t
// puts them: in a cluster, on two nodes.
func RunLatencyOn(ctx context.Context, t Topology, rate int, d time.Duration, dataBytes int) (*Latency, error) {
	l, err := startLayout(ctx, t, relay.Options{})
	if err != nil {
		return nil, err
	}
	defer l.close()
	sp, rps, err := l.join(ctx, "latency", 1)
	if err != nil {
		return nil, err
	}
	sender, recv, recvID := sp.ws, rps[0].ws, rps[0].id
	defer sender.Close()
	defer recv.Close()

	base := time.Now()
	warmup := 200 * time.Millisecond
	samples := make([]time.Duration, 0, int(d.Seconds()*float64(rate))+16)
	var wg sync.WaitGroup
	wg.Add(2)
	recvErr := make(chan error, 1)
	go func() { // receiver
		defer wg.Done()
		for {
			_, msg, err := recv.ReadMessage()
			now := time.Since(base)
			if err != nil {
				recvErr <- nil
				return
			}
			if !bytes.HasPrefix(msg, signalPrefix) {
				continue
			}
			sent, err := strconv.ParseInt(digits(field(msg, `"data":"`)), 10, 64)
			if err != nil {
				recvErr <- fmt.Errorf("receiver: bad data in %.120s", msg)
				return
			}
			if time.Duration(sent) >= warmup {
				samples = append(samples, now-time.Duration(sent))
			}
		}
	}()
	go func() { // drain the sender's results
		defer wg.Done()
		for {
			if _, _, err := sender.NextReader(); err != nil {
				return
			}
		}
	}()

	pad := strings.Repeat("x", max(0, dataBytes-20))
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	end := time.Now().Add(d + warmup)
	var buf []byte
	var sendErr error
	for n := 0; time.Now().Before(end) && ctx.Err() == nil; n++ {
		<-tick.C
		buf = buf[:0]
		buf = append(buf, `{"op":"signal","id":"`...)
		buf = strconv.AppendInt(buf, int64(n), 10)
		buf = append(buf, `","to":"`...)
		buf = append(buf, recvID...)
		buf = append(buf, `","type":"lat","data":"`...)
		buf = strconv.AppendInt(buf, int64(time.Since(base)), 10)
		buf = append(buf, '-')
		buf = append(buf, pad...)
		buf = append(buf, `"}`...)
		if sendErr = sender.WriteMessage(websocket.TextMessage, buf); sendErr != nil {
			break
		}
	}
	// Let the last signals arrive, then end both readers.
	time.Sleep(50 * time.Millisecond)
	sender.Close()
	recv.Close()
	wg.Wait()
	if err := <-recvErr; err != nil {
		return nil, err
	}
	if sendErr != nil {
		return nil, fmt.Errorf("send: %w", sendErr)
	}
	if len(samples) == 0 {
		return nil, errors.New("no latency samples")
	}
	slices.Sort(samples)
	q := func(p float64) time.Duration { return samples[min(len(samples)-1, int(p*float64(len(samples))))] }
	return &Latency{Rate: rate, Samples: len(samples), P50: q(0.50), P99: q(0.99), P999: q(0.999), Max: samples[len(samples)-1]}, ctx.Err()
}

func digits(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return s[:i]
		}
	}
	return s
}

// window is how far the sender may run ahead of the slowest receiver, well
// under the relay's send queue, so that nobody becomes a slow consumer.
const window = 256

// RunThroughput has one sender send as fast as the receivers keep up for d:
// to the one receiver (receivers == 1) or broadcast to all of them, on one
// relay.
func RunThroughput(ctx context.Context, receivers int, d time.Duration, dataBytes int) (*Throughput, error) {
	return RunThroughputOn(ctx, Topology{}, receivers, d, dataBytes)
}

// RunThroughputOn is RunThroughput with the sender and the receivers where
// t puts them: in a cluster, the receivers on other nodes than the sender.
func RunThroughputOn(ctx context.Context, t Topology, receivers int, d time.Duration, dataBytes int) (*Throughput, error) {
	l, err := startLayout(ctx, t, relay.Options{MaxConnectionsPerSession: receivers + 1})
	if err != nil {
		return nil, err
	}
	defer l.close()
	sp, rps, err := l.join(ctx, fmt.Sprintf("tp-%d", receivers), receivers)
	if err != nil {
		return nil, err
	}
	sender := sp.ws
	defer sender.Close()
	socks := make([]*websocket.Conn, receivers)
	ids := make([]string, receivers)
	for i, p := range rps {
		socks[i], ids[i] = p.ws, p.id
		defer p.ws.Close()
	}
	to := ""
	if receivers == 1 {
		to = ids[0]
	}
	counts := make([]atomic.Int64, receivers)
	// Flow control: the sender sleeps on progress while it is a window
	// ahead of the slowest receiver (spinning would take CPU from them).
	var waiting atomic.Bool
	progress := make(chan struct{}, 1)
	var wg sync.WaitGroup
	for i, ws := range socks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			br := make([]byte, 0, 512)
			for {
				_, r, err := ws.NextReader()
				if err != nil {
					return
				}
				br = br[:0]
				for {
					if len(br) == cap(br) {
						br = slices.Grow(br, cap(br))
					}
					n, err := r.Read(br[len(br):cap(br)])
					br = br[:len(br)+n]
					if err != nil {
						break
					}
				}
				if bytes.HasPrefix(br, signalPrefix) {
					counts[i].Add(1)
					if waiting.Load() {
						select {
						case progress <- struct{}{}:
						default:
						}
					}
				}
			}
		}()
	}
	var results atomic.Int64 // the sender reads its results (and echoes) and is flow-controlled by them too
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			_, msg, err := sender.ReadMessage()
			if err != nil {
				return
			}
			if bytes.HasPrefix(msg, resultPrefix) {
				results.Add(1)
				if waiting.Load() {
					select {
					case progress <- struct{}{}:
					default:
					}
				}
			}
		}
	}()

	minCount := func() int64 {
		m := results.Load()
		for i := range counts {
			m = min(m, counts[i].Load())
		}
		return m
	}
	data := strings.Repeat("x", dataBytes)
	var buf []byte
	var sent int64
	start := time.Now()
	end := start.Add(d)
	var sendErr error
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
				sendErr = errors.New("no progress for 10s: a client was closed (slow consumer?)")
				break
			}
		}
		buf = buf[:0]
		buf = append(buf, `{"op":"signal","id":"`...)
		buf = strconv.AppendInt(buf, sent, 10)
		if to != "" {
			buf = append(buf, `","to":"`...)
			buf = append(buf, to...)
		}
		buf = append(buf, `","type":"tp","data":"`...)
		buf = append(buf, data...)
		buf = append(buf, `"}`...)
		if sendErr = sender.WriteMessage(websocket.TextMessage, buf); sendErr != nil {
			break
		}
		sent++
	}
	for wait := time.Now().Add(5 * time.Second); minCount() < sent && time.Now().Before(wait); {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	var delivered int64
	for i := range counts {
		delivered += counts[i].Load()
	}
	sender.Close()
	for _, ws := range socks {
		ws.Close()
	}
	wg.Wait()
	if sendErr != nil {
		return nil, fmt.Errorf("send: %w", sendErr)
	}
	if got, want := delivered, sent*int64(receivers); got != want {
		return nil, fmt.Errorf("delivered %d signals, want %d", got, want)
	}
	return &Throughput{Receivers: receivers, Sent: sent, Delivered: delivered, Seconds: elapsed.Seconds(),
		DeliveredPerS: float64(delivered) / elapsed.Seconds()}, ctx.Err()
}

// RunIdleMemory opens n idle connections, in sessions of two, and measures
// the growth of the Go heap and goroutine stacks per connection. The clients
// are bare TCP connections that did the WebSocket handshake and read their
// welcome, with no goroutine or buffer of their own, so nearly all of what
// is counted is the relay's (plus one client net.Conn, a few hundred bytes).
func RunIdleMemory(ctx context.Context, n int) (*Memory, error) {
	if err := RaiseFileLimit(uint64(2*n + 256)); err != nil {
		return nil, err
	}
	b, err := startRelay(relay.Options{PingTimeout: time.Hour, Grace: time.Hour})
	if err != nil {
		return nil, err
	}
	defer b.close()
	addr := b.ln.Addr().String()
	// Warm up pools and the runtime with a few connections first.
	warm, err := dialIdle(ctx, b, addr, 20)
	closeAll(warm)
	if err != nil {
		return nil, err
	}
	before := memNow()
	conns, err := dialIdle(ctx, b, addr, n)
	defer closeAll(conns)
	if err != nil {
		return nil, err
	}
	after := memNow()
	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) }
	m := &Memory{
		Conns:        n,
		SessionSize:  2,
		HeapPerConn:  per(after.heap, before.heap),
		StackPerConn: per(after.stack, before.stack),
		Goroutines:   int((after.goroutines - before.goroutines) / n),
	}
	m.BytesPerConn = m.HeapPerConn + m.StackPerConn
	return m, ctx.Err()
}

type memSample struct {
	heap, stack uint64
	goroutines  int
}

func memNow() memSample {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{heap: ms.HeapAlloc, stack: ms.StackInuse, goroutines: runtime.NumGoroutine()}
}

func closeAll(cs []net.Conn) {
	for _, c := range cs {
		c.Close()
	}
}

// dialIdle opens n bare WebSocket connections, two per session, and reads
// each one's welcome.
func dialIdle(ctx context.Context, b *bench, addr string, n int) ([]net.Conn, error) {
	conns := make([]net.Conn, 0, n)
	var d net.Dialer
	var tok string
	for i := 0; i < n; i++ {
		if i%2 == 0 {
			var err error
			if tok, err = b.token(fmt.Sprintf("idle-%d", i/2)); err != nil {
				return conns, err
			}
		}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return conns, fmt.Errorf("dial %d: %w", i, err)
		}
		conns = append(conns, c)
		req := "GET /v1/connect?token=" + url.QueryEscape(tok) + " HTTP/1.1\r\nHost: " + addr +
			"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte(req)); err != nil {
			return conns, err
		}
		br := bufio.NewReaderSize(c, 1024)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return conns, fmt.Errorf("handshake %d: %w", i, err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			return conns, fmt.Errorf("handshake %d: %s", i, resp.Status)
		}
		if err := ReadWelcome(br); err != nil {
			return conns, fmt.Errorf("welcome %d: %w", i, err)
		}
		_ = c.SetDeadline(time.Time{})
	}
	return conns, nil
}

// ReadWelcome reads one unmasked server text frame from a bare TCP
// connection that has just been upgraded and checks it is a welcome. The
// comparison bench (bench/compare) uses it for its idle connections too.
func ReadWelcome(br *bufio.Reader) error {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return err
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return err
		}
		n = int(l[0])<<8 | int(l[1])
	case 127:
		return errors.New("welcome frame too large")
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(br, p); err != nil {
		return err
	}
	if !bytes.HasPrefix(p, []byte(`{"op":"welcome"`)) {
		return fmt.Errorf("first frame is %.80s", p)
	}
	return nil
}
