package relaybench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/teleop/teleop/internal/natstest"
	"github.com/teleop/teleop/signaling/relay"
)

// Topology says where the clients of a run connect. The zero value is one
// relay.
type Topology struct {
	// NATS is the URL of a nats-server with JetStream (nats://host:port).
	// Set, the run starts a cluster of Nodes relays on it; empty, one relay.
	NATS string
	// Nodes is the number of relays in the cluster, at least 2 (the
	// default). The sender connects to the first; the receivers to the
	// others, in turn, so every signal crosses NATS.
	Nodes int
}

// String is "single node" or "N nodes".
func (t Topology) String() string {
	if t.NATS == "" {
		return "single node"
	}
	return fmt.Sprintf("%d nodes", max(2, t.Nodes))
}

// layout is the relays of one run.
type layout struct {
	nodes []*bench // the sender's first
}

// clusterSeq numbers the clusters a process starts: each one has its own
// subjects and bucket, so that a run never hears an earlier one's nodes.
var clusterSeq atomic.Int64

// startLayout starts the relays of t with o and, for a cluster, waits until
// every node has loaded the cluster's state.
func startLayout(ctx context.Context, t Topology, o relay.Options) (*layout, error) {
	if t.NATS == "" {
		b, err := startRelay(o)
		if err != nil {
			return nil, err
		}
		return &layout{nodes: []*bench{b}}, nil
	}
	n := max(2, t.Nodes)
	prefix := fmt.Sprintf("relaybench-%d-%d", os.Getpid(), clusterSeq.Add(1))
	l := &layout{}
	for i := range n {
		o := o
		o.Cluster = &relay.ClusterOptions{URLs: t.NATS, NodeName: fmt.Sprintf("n%d", i+1), Prefix: prefix}
		b, err := startRelay(o)
		if err != nil {
			l.close()
			return nil, fmt.Errorf("start node %d: %w", i+1, err)
		}
		l.nodes = append(l.nodes, b)
	}
	for i, b := range l.nodes {
		if err := b.awaitCluster(ctx); err != nil {
			l.close()
			return nil, fmt.Errorf("node %d: %w", i+1, err)
		}
	}
	return l, nil
}

func (l *layout) close() {
	for _, b := range l.nodes {
		b.close()
	}
}

// receiverNode is the relay of receiver i: the sender's alone, or one of
// the others in turn.
func (l *layout) receiverNode(i int) *bench {
	if len(l.nodes) == 1 {
		return l.nodes[0]
	}
	return l.nodes[1+i%(len(l.nodes)-1)]
}

// awaitCluster polls the relay's /healthz until it says it is in sync with
// NATS (connected, bucket loaded), for up to 15 s.
func (b *bench) awaitCluster(ctx context.Context) error {
	url := "http://" + b.ln.Addr().String() + "/healthz"
	end := time.Now().Add(15 * time.Second)
	for {
		var h relay.Health
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&h)
			resp.Body.Close()
		}
		if h.Cluster != nil && h.Cluster.Connected {
			return nil
		}
		if time.Now().After(end) {
			return errors.New("not in sync with NATS after 15 s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond): // polling a server we started, before the run
		}
	}
}

// join connects a sender (to the first node) and receivers (spread over
// the others) to session. It returns once every receiver has heard of the
// sender and the sender of every receiver: in a cluster a node learns of
// the other nodes' connections asynchronously, and it delivers nothing to
// or from a connection it does not know yet.
func (l *layout) join(ctx context.Context, session string, receivers int) (sender *peer, recvs []*peer, err error) {
	defer func() {
		if err != nil {
			for _, p := range append(recvs, sender) {
				if p != nil {
					p.ws.Close()
				}
			}
			sender, recvs = nil, nil
		}
	}()
	if sender, err = l.nodes[0].dial(ctx, session); err != nil {
		return
	}
	ids := make([]string, receivers)
	for i := range receivers {
		var p *peer
		if p, err = l.receiverNode(i).dial(ctx, session); err != nil {
			return
		}
		recvs = append(recvs, p)
		ids[i] = p.id
	}
	for _, p := range recvs {
		if err = p.await(sender.id); err != nil {
			return
		}
	}
	err = sender.await(ids...)
	return
}

var createdPrefix = []byte(`{"op":"connectionCreated"`)

// await reads p's frames until each of ids has been named as a connection
// of the session, in p's welcome or in a connectionCreated, for up to 10 s.
// No signal of the run flows yet, so nothing read here is lost to it.
func (p *peer) await(ids ...string) error {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !bytes.Contains(p.welcome, []byte(`"connectionId":"`+id+`"`)) {
			want[id] = true
		}
	}
	if len(want) == 0 {
		return nil
	}
	_ = p.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for len(want) > 0 {
		_, msg, err := p.ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("%s: %d connections not heard of: %w", p.id, len(want), err)
		}
		if bytes.HasPrefix(msg, createdPrefix) {
			delete(want, field(msg, `"connectionId":"`))
		}
	}
	return p.ws.SetReadDeadline(time.Time{})
}

// ClusterOptions shape RunCluster. Zero values are the defaults.
type ClusterOptions struct {
	Duration  time.Duration // of each run; default 5s
	Rate      int           // latency signals per second; default 1000
	DataBytes int           // signal data size; default 100
	Fanouts   []int         // receivers of the throughput runs; default 10
	Nodes     int           // relays of the cluster; default 2
	// NATS is a running nats-server with JetStream to use. Empty: RunCluster
	// starts one (natstest: /usr/sbin/nats-server or $PATH) and stops it.
	NATS string
	Logf func(format string, args ...any)
}

// ClusterResult is the latency and throughput runs on one relay and across
// the nodes of a cluster, in one invocation.
type ClusterResult struct {
	Machine    Machine          `json:"machine"`
	NATSServer string           `json:"natsServer"` // its version, when RunCluster started it
	Nodes      int              `json:"nodes"`
	LoadBefore string           `json:"loadBefore"` // /proc/loadavg: 1, 5 and 15 minutes
	LoadAfter  string           `json:"loadAfter"`
	Latency    LatencyPair      `json:"latency"`
	Throughput []ThroughputPair `json:"throughput"`
}

// LatencyPair is the latency run on one relay and across nodes; the ratios
// are cross-node ÷ single node.
type LatencyPair struct {
	Single    *Latency `json:"single"`
	Cross     *Latency `json:"cross"`
	P50Ratio  float64  `json:"p50Ratio"`
	P99Ratio  float64  `json:"p99Ratio"`
	P999Ratio float64  `json:"p999Ratio"`
}

// ThroughputPair is one throughput run on one relay and across nodes; the
// ratio is cross-node ÷ single node, of delivered signals per second.
type ThroughputPair struct {
	Receivers int         `json:"receivers"`
	Single    *Throughput `json:"single"`
	Cross     *Throughput `json:"cross"`
	Ratio     float64     `json:"ratio"`
}

// RunCluster runs the latency and throughput workloads on one relay and
// then with the sender on one node of a cluster and the receivers on the
// others, workload by workload, so that both sides of a pair see the same
// machine. Each run has fresh relays; the cluster's nodes share one
// nats-server.
func RunCluster(ctx context.Context, o *ClusterOptions) (*ClusterResult, error) {
	var opts ClusterOptions
	if o != nil {
		opts = *o
	}
	base := Options{Duration: opts.Duration, Rate: opts.Rate, DataBytes: opts.DataBytes, Fanouts: []int{}, IdleConns: -1, Logf: opts.Logf}
	base.defaults()
	if opts.Fanouts == nil {
		opts.Fanouts = []int{10}
	}
	opts.Nodes = max(2, opts.Nodes)
	res := &ClusterResult{Nodes: opts.Nodes, Machine: Machine{
		GoVersion: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH,
		NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
	}}
	if opts.NATS == "" {
		bin, err := natstest.Binary()
		if err != nil {
			return nil, fmt.Errorf("the cluster runs need nats-server: %w", err)
		}
		if out, err := exec.CommandContext(ctx, bin, "--version").Output(); err == nil {
			res.NATSServer = strings.TrimPrefix(strings.TrimSpace(string(out)), "nats-server: ")
		}
		ns, err := natstest.Start(os.TempDir())
		if err != nil {
			return nil, err
		}
		defer ns.Stop()
		opts.NATS = ns.URL()
	}
	single, cross := Topology{}, Topology{NATS: opts.NATS, Nodes: opts.Nodes}
	res.LoadBefore = LoadAvg()

	lat := &res.Latency
	var err error
	base.Logf("latency: 1→1 at %d/s for %v, %v", base.Rate, base.Duration, single)
	if lat.Single, err = RunLatencyOn(ctx, single, base.Rate, base.Duration, base.DataBytes); err != nil {
		return nil, err
	}
	base.Logf("latency: 1→1 at %d/s for %v, %v", base.Rate, base.Duration, cross)
	if lat.Cross, err = RunLatencyOn(ctx, cross, base.Rate, base.Duration, base.DataBytes); err != nil {
		return nil, fmt.Errorf("cross-node: %w", err)
	}
	lat.P50Ratio = ratio(float64(lat.Cross.P50), float64(lat.Single.P50))
	lat.P99Ratio = ratio(float64(lat.Cross.P99), float64(lat.Single.P99))
	lat.P999Ratio = ratio(float64(lat.Cross.P999), float64(lat.Single.P999))

	for _, n := range opts.Fanouts {
		tp := ThroughputPair{Receivers: n}
		base.Logf("throughput: 1→%d for %v, %v", n, base.Duration, single)
		if tp.Single, err = RunThroughputOn(ctx, single, n, base.Duration, base.DataBytes); err != nil {
			return nil, err
		}
		base.Logf("throughput: 1→%d for %v, %v", n, base.Duration, cross)
		if tp.Cross, err = RunThroughputOn(ctx, cross, n, base.Duration, base.DataBytes); err != nil {
			return nil, fmt.Errorf("cross-node: %w", err)
		}
		tp.Ratio = ratio(tp.Cross.DeliveredPerS, tp.Single.DeliveredPerS)
		res.Throughput = append(res.Throughput, tp)
	}
	res.LoadAfter = LoadAvg()
	return res, nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// LoadAvg is the 1, 5 and 15 minute load averages (the first three fields
// of /proc/loadavg), or "".
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
