package compare

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/teleop/teleop/signaling/relay/relaybench"
)

// Bounds of a run: the bench floods its servers and must end.
const (
	MaxDuration  = time.Minute // of one timed run
	MaxFanout    = 1000
	MaxIdleConns = 9000
	MinPayload   = 32 // room for the send time in a latency message
)

// Options shape a comparison. Zero values are the defaults.
type Options struct {
	Binaries  Binaries      // Teleop is required
	Duration  time.Duration // of each latency and throughput run; default 5s, at most MaxDuration
	Rate      int           // latency messages per second; default 1000
	Payloads  []int         // message sizes in bytes; default 100 and 8192
	Fanouts   []int         // receivers of the throughput runs; default 10 and 100
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
	if len(o.Payloads) == 0 {
		o.Payloads = []int{100, 8192}
	}
	if len(o.Fanouts) == 0 {
		o.Fanouts = []int{10, 100}
	}
	if o.IdleConns == 0 {
		o.IdleConns = 5000
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// Validate checks the bounds, after the defaults are applied.
func (o *Options) Validate() error {
	switch {
	case o.Duration > MaxDuration:
		return fmt.Errorf("duration %v is over the cap of %v per run", o.Duration, MaxDuration)
	case o.Rate > 100_000:
		return fmt.Errorf("rate %d/s is over 100000/s", o.Rate)
	case o.IdleConns > MaxIdleConns:
		return fmt.Errorf("%d idle connections is over the cap of %d", o.IdleConns, MaxIdleConns)
	}
	for _, p := range o.Payloads {
		if p < MinPayload || p > 8192 {
			return fmt.Errorf("payload of %d bytes: want %d to 8192 (the relay's data limit)", p, MinPayload)
		}
	}
	for _, n := range o.Fanouts {
		if n < 1 || n > MaxFanout {
			return fmt.Errorf("fan-out to %d receivers: want 1 to %d", n, MaxFanout)
		}
	}
	return nil
}

// Plan says what a run with o will do and how long it should take; Run
// gives up after Deadline.
type Plan struct {
	TimedRuns int           // latency and throughput runs over all servers
	Estimate  time.Duration // expected wall time
	Deadline  time.Duration // hard limit of the whole run
}

// PlanFor applies the defaults to o and returns its plan.
func PlanFor(o *Options) Plan {
	o.defaults()
	perServer := len(o.Payloads) * (1 + len(o.Fanouts))
	p := Plan{TimedRuns: perServer * len(Kinds)}
	const setup = 500 * time.Millisecond // start and stop a server, connect clients
	est := time.Duration(len(o.Payloads))*(warmup+o.Duration+setup) +
		time.Duration(len(o.Payloads)*len(o.Fanouts))*(o.Duration+setup)
	if o.IdleConns > 0 {
		est += 2*time.Second + time.Duration(o.IdleConns)*300*time.Microsecond
	}
	p.Estimate = est * time.Duration(len(Kinds))
	p.Deadline = 2*p.Estimate + 2*time.Minute
	return p
}

func (p Plan) String() string {
	return fmt.Sprintf("%d timed runs: about %v in all, stopped after %v at most",
		p.TimedRuns, p.Estimate.Round(time.Second), p.Deadline.Round(time.Second))
}

// Result is one comparison.
type Result struct {
	Machine   Machine       `json:"machine"`
	Started   time.Time     `json:"started"`
	Duration  time.Duration `json:"durationNs"` // of each timed run
	Rate      int           `json:"rate"`
	IdleConns int           `json:"idleConns"`
	Servers   []Server      `json:"servers"` // teleop server first
	Chart     string        `json:"chart,omitempty"`
}

// Machine says where the numbers come from.
type Machine struct {
	CPU         string `json:"cpu"`
	NumCPU      int    `json:"numCPU"`
	GOMAXPROCS  int    `json:"gomaxprocs"`
	GoVersion   string `json:"goVersion"`
	GOOS        string `json:"goos"`
	GOARCH      string `json:"goarch"`
	LoadBefore  string `json:"loadBefore"` // /proc/loadavg: 1, 5, 15 minutes
	LoadAfter   string `json:"loadAfter"`
	ClientsNote string `json:"clients"`
}

// Server is one server's numbers.
type Server struct {
	Kind     Kind           `json:"-"`
	Name     string         `json:"name"`
	Version  string         `json:"version"`
	Client   string         `json:"client"`
	Payloads []PayloadRuns  `json:"payloads"`
	Memory   *Memory        `json:"memory,omitempty"`
	VsTeleop *MemoryVsRatio `json:"memoryVsTeleop,omitempty"`
}

// PayloadRuns are the timed runs of one payload size.
type PayloadRuns struct {
	Bytes      int          `json:"bytes"`
	Latency    *Latency     `json:"latency"`
	Throughput []Throughput `json:"throughput"`
	VsTeleop   *Ratios      `json:"vsTeleop,omitempty"` // peers only
}

// Ratios are a peer's numbers divided by teleop server's: for latency
// below 1 means the peer is faster, for throughput above 1 does.
type Ratios struct {
	P50           float64   `json:"p50"`
	P99           float64   `json:"p99"`
	P999          float64   `json:"p999"`
	DeliveredPerS []float64 `json:"deliveredPerSecond"` // one per fan-out
}

// MemoryVsRatio is a peer's bytes per idle connection divided by teleop
// server's.
type MemoryVsRatio struct {
	BytesPerConn float64 `json:"bytesPerConn"`
}

// Run starts each server in turn, runs the workloads through it and stops
// it. Runs are interleaved (every server does one workload before the next
// workload starts) so that a change in the machine's load hits all three
// alike. Every run gets a fresh server process.
func Run(ctx context.Context, o *Options) (*Result, error) {
	var opts Options
	if o != nil {
		opts = *o
	}
	plan := PlanFor(&opts)
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if !supported {
		return nil, errors.New("the comparison reads server memory from /proc: it runs on Linux only")
	}
	bins, err := LookBinaries(opts.Binaries)
	if err != nil {
		return nil, err
	}
	if opts.IdleConns > 0 {
		// The client and server ends of every idle connection, plus room.
		if err := relaybench.RaiseFileLimit(uint64(opts.IdleConns + 1024)); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, plan.Deadline)
	defer cancel()

	res := &Result{
		Machine:   machine(),
		Started:   time.Now().UTC(),
		Duration:  opts.Duration,
		Rate:      opts.Rate,
		IdleConns: max(opts.IdleConns, 0),
	}
	for _, k := range Kinds {
		s := Server{Kind: k, Name: k.String(), Version: versionOf(ctx, k, bins), Client: clientName(k)}
		for _, p := range opts.Payloads {
			s.Payloads = append(s.Payloads, PayloadRuns{Bytes: p})
		}
		res.Servers = append(res.Servers, s)
	}
	for pi, p := range opts.Payloads {
		for si := range res.Servers {
			s := &res.Servers[si]
			opts.Logf("latency, %d B, 1→1 at %d/s for %v: %s", p, opts.Rate, opts.Duration, s.Name)
			err := withServer(ctx, s.Kind, bins, func(_ *server, dr driver) (err error) {
				s.Payloads[pi].Latency, err = runLatency(ctx, dr, opts.Rate, opts.Duration, p)
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("%s: latency, %d B: %w", s.Name, p, err)
			}
		}
		for _, n := range opts.Fanouts {
			for si := range res.Servers {
				s := &res.Servers[si]
				opts.Logf("throughput, %d B, 1→%d for %v: %s", p, n, opts.Duration, s.Name)
				err := withServer(ctx, s.Kind, bins, func(_ *server, dr driver) error {
					tp, err := runThroughput(ctx, dr, n, opts.Duration, p)
					if err != nil {
						return err
					}
					s.Payloads[pi].Throughput = append(s.Payloads[pi].Throughput, *tp)
					return nil
				})
				if err != nil {
					return nil, fmt.Errorf("%s: throughput, %d B, 1→%d: %w", s.Name, p, n, err)
				}
			}
		}
	}
	if opts.IdleConns > 0 {
		for si := range res.Servers {
			s := &res.Servers[si]
			opts.Logf("memory, %d idle connections: %s", opts.IdleConns, s.Name)
			err := withServer(ctx, s.Kind, bins, func(srv *server, dr driver) (err error) {
				s.Memory, err = runIdle(ctx, srv, dr, opts.IdleConns)
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("%s: memory: %w", s.Name, err)
			}
		}
	}
	res.Machine.LoadAfter = relaybench.LoadAvg()
	res.ratios()
	return res, nil
}

// withServer runs fn against a fresh server of kind k and stops it after.
func withServer(ctx context.Context, k Kind, bins Binaries, fn func(*server, driver) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("run stopped: %w", err)
	}
	s, err := startServer(ctx, k, bins)
	if err != nil {
		return err
	}
	defer s.stop()
	dr, err := newDriver(s)
	if err != nil {
		return err
	}
	err = fn(s, dr)
	if aerr := s.alive(); aerr != nil {
		return aerr
	}
	return err
}

// ratios fills in every peer's ratios to teleop server.
func (r *Result) ratios() {
	if len(r.Servers) == 0 || r.Servers[0].Kind != Teleop {
		return
	}
	ref := r.Servers[0]
	div := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	for si := 1; si < len(r.Servers); si++ {
		s := &r.Servers[si]
		for pi := range s.Payloads {
			p, rp := &s.Payloads[pi], ref.Payloads[pi]
			if p.Latency == nil || rp.Latency == nil {
				continue
			}
			v := &Ratios{
				P50:  div(float64(p.Latency.P50), float64(rp.Latency.P50)),
				P99:  div(float64(p.Latency.P99), float64(rp.Latency.P99)),
				P999: div(float64(p.Latency.P999), float64(rp.Latency.P999)),
			}
			for ti := range p.Throughput {
				if ti < len(rp.Throughput) {
					v.DeliveredPerS = append(v.DeliveredPerS, div(p.Throughput[ti].DeliveredPerS, rp.Throughput[ti].DeliveredPerS))
				}
			}
			p.VsTeleop = v
		}
		if s.Memory != nil && ref.Memory != nil {
			s.VsTeleop = &MemoryVsRatio{BytesPerConn: div(s.Memory.BytesPerConn, ref.Memory.BytesPerConn)}
		}
	}
}

func machine() Machine {
	m := Machine{
		NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		GoVersion: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH,
		LoadBefore:  relaybench.LoadAvg(),
		ClientsNote: "all clients run in the bench process and share the CPUs with the server under test",
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}
