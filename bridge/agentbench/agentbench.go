// Package agentbench measures the agent end to end over loopback: an
// operator's drive signal → relay → agent → simulated robot on a pty → OK →
// ack → relay → operator, paced at a rate (50 Hz) and back to back (the
// next drive when the previous ack came), next to the floor measured in the
// same run with the same code paths minus the agent: an echo client in the
// agent's place (four WebSocket hops through the relay) and a bare round
// trip to the robot on its pty. With the teleop binary given, it also runs
// the agent as its own process while driving at the rate with telemetry on,
// and reads its CPU time and resident memory from /proc.
//
// `teleop bench e2e` and the Go benchmarks of this package run it;
// docs/benchmarks.md has results. Relay, robot and operator share the
// benchmark's process (and its CPUs) with an in-process agent.
package agentbench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/teleop/teleop/bridge"
	"github.com/teleop/teleop/devices"
	"github.com/teleop/teleop/devices/proto"
	"github.com/teleop/teleop/devices/sim"
	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/relay"
	"github.com/teleop/teleop/signaling/token"
)

const (
	benchKey     = "10000002"
	benchSecret  = "agent-bench-secret"
	benchSession = "bench"
	warmup       = 500 * time.Millisecond
)

// Options shape a run. Zero values are the defaults.
type Options struct {
	Rate        int           // paced drives per second; default 50
	Duration    time.Duration // of each paced measurement; default 20s (1,000 samples at 50 Hz)
	MaxDuration time.Duration // of each back-to-back measurement; default 5s
	// Binary is the teleop binary for the process measurement (the agent
	// as its own process: CPU and RSS); "" skips it.
	Binary string
	// TelemetryHz is the robot's TLM rate during the process measurement,
	// all of it forwarded (telemetry_interval 1/TelemetryHz); default 10.
	TelemetryHz int
	Logf        func(format string, args ...any)
}

func (o *Options) defaults() {
	if o.Rate <= 0 {
		o.Rate = 50
	}
	if o.Duration <= 0 {
		o.Duration = 20 * time.Second
	}
	if o.MaxDuration <= 0 {
		o.MaxDuration = 5 * time.Second
	}
	if o.TelemetryHz <= 0 {
		o.TelemetryHz = 10
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// Result is one run of everything.
type Result struct {
	Machine Machine  `json:"machine"`
	Paced   Mode     `json:"paced"`      // at Rate
	Max     Mode     `json:"backToBack"` // the next drive when the previous ack came
	Process *Process `json:"process,omitempty"`
}

// Machine says where the numbers come from.
type Machine struct {
	GoVersion  string `json:"goVersion"`
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	NumCPU     int    `json:"numCPU"`
	GOMAXPROCS int    `json:"gomaxprocs"`
}

// Mode is the agent's ack latency and the floor's parts in one pacing.
type Mode struct {
	Rate  int     `json:"rate"` // drives per second; 0: back to back
	Agent Latency `json:"agent"`
	Hops  Latency `json:"relayHops"` // operator → relay → echo client → relay → operator
	Pty   Latency `json:"ptyRoundTrip"`
	// AcksPerSecond is the agent's ack rate (back to back: its throughput).
	AcksPerSecond float64 `json:"acksPerSecond"`
}

// Floor is the sum of the floor's parts at a percentile.
func (m Mode) Floor(p func(Latency) time.Duration) time.Duration { return p(m.Hops) + p(m.Pty) }

// Latency is a distribution of round trips.
type Latency struct {
	Samples int           `json:"samples"`
	P50     time.Duration `json:"p50Ns"`
	P99     time.Duration `json:"p99Ns"`
	P999    time.Duration `json:"p999Ns"`
	Max     time.Duration `json:"maxNs"`
	// NotOK counts acks that were not ok (on a loaded machine: a drive
	// superseded by the next while the robot was slow); not in the latencies.
	NotOK int `json:"notOk"`
}

// Process is the agent running as its own process, driven at Rate with
// telemetry on.
type Process struct {
	Rate        int     `json:"rate"`
	TelemetryHz int     `json:"telemetryHz"`
	Seconds     float64 `json:"seconds"`
	CPUPercent  float64 `json:"cpuPercentOfOneCore"` // user+system time / wall time
	RSSMaxKB    int     `json:"rssMaxKB"`
	RSSLastKB   int     `json:"rssLastKB"`
	// The last RSS in parts: anonymous (heap, stacks) and file-backed (the
	// binary's pages that were touched, shared with every process that maps it).
	RSSAnonKB int     `json:"rssAnonKB"`
	RSSFileKB int     `json:"rssFileKB"`
	Telemetry int     `json:"telemetrySignals"` // telemetry signals the operator received
	Agent     Latency `json:"agent"`            // ack latency of the drives
}

// Run runs the paced and the back-to-back measurements, then the process
// one when o.Binary is set.
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
	for _, m := range []struct {
		mode *Mode
		rate int
		d    time.Duration
	}{{&res.Paced, opts.Rate, opts.Duration}, {&res.Max, 0, opts.MaxDuration}} {
		m.mode.Rate = m.rate
		what := fmt.Sprintf("at %d/s", m.rate)
		if m.rate == 0 {
			what = "back to back"
		}
		var err error
		opts.Logf("agent %s for %v", what, m.d)
		var acks float64
		if m.mode.Agent, acks, err = RunAgent(ctx, m.rate, m.d, 0); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		m.mode.AcksPerSecond = acks
		opts.Logf("floor: relay hops %s for %v", what, m.d)
		if m.mode.Hops, err = RunHops(ctx, m.rate, m.d, 0); err != nil {
			return nil, fmt.Errorf("relay hops: %w", err)
		}
		opts.Logf("floor: pty round trip %s for %v", what, m.d)
		if m.mode.Pty, err = RunPty(ctx, m.rate, m.d, 0); err != nil {
			return nil, fmt.Errorf("pty: %w", err)
		}
	}
	if opts.Binary != "" {
		opts.Logf("agent process %s at %d/s, telemetry %d Hz, for %v", opts.Binary, opts.Rate, opts.TelemetryHz, opts.Duration)
		p, err := RunProcess(ctx, opts.Binary, opts.Rate, opts.TelemetryHz, opts.Duration)
		if err != nil {
			return nil, fmt.Errorf("agent process: %w", err)
		}
		res.Process = p
	}
	return res, nil
}

// ---- the parts ----

// relayServer is a relay on a loopback port.
type relayServer struct {
	relay *relay.Server
	srv   *http.Server
	url   string
	done  chan struct{}
}

func startRelay() (*relayServer, error) {
	r, err := relay.New(&relay.Options{APIKey: benchKey, APISecret: benchSecret, RatePerSec: 1e9, RateBurst: 1e9})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.Close()
		return nil, err
	}
	rs := &relayServer{relay: r, srv: &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second},
		url: "http://" + ln.Addr().String(), done: make(chan struct{})}
	go func() { defer close(rs.done); rs.srv.Serve(ln) }()
	return rs, nil
}

func (rs *relayServer) close() {
	rs.relay.Close()
	rs.srv.Close()
	<-rs.done
}

func mint(data string) (string, error) {
	return token.New(benchKey, benchSecret, benchSession, &token.Options{ConnectionData: data, TTL: time.Hour})
}

// operator is a session client that times its drives' acks.
type operator struct {
	sess *signaling.Session

	mu      sync.Mutex
	sent    map[int]time.Time
	lat     []time.Duration
	notOK   int
	tlm     int
	ready   bool     // a status said the device is ready
	arrived chan int // ids of acks, for the back-to-back loop
}

func dialOperator(ctx context.Context, url string) (*operator, error) {
	op := &operator{sent: map[int]time.Time{}, arrived: make(chan int, 1024)}
	op.sess = signaling.NewSession(nil)
	op.sess.OnSignalType("ack", func(sig signaling.Signal) {
		now := time.Now()
		var a struct {
			ID     int    `json:"id"`
			Status string `json:"status"`
		}
		if json.Unmarshal([]byte(sig.Data), &a) != nil {
			return
		}
		op.mu.Lock()
		if t0, ok := op.sent[a.ID]; ok {
			delete(op.sent, a.ID)
			if a.Status == "ok" {
				op.lat = append(op.lat, now.Sub(t0))
			} else {
				op.notOK++
			}
		}
		op.mu.Unlock()
		select {
		case op.arrived <- a.ID:
		default:
		}
	})
	op.sess.OnSignalType("telemetry", func(signaling.Signal) {
		op.mu.Lock()
		op.tlm++
		op.mu.Unlock()
	})
	op.sess.OnSignalType("status", func(sig signaling.Signal) {
		var st bridge.Status
		if json.Unmarshal([]byte(sig.Data), &st) == nil {
			op.mu.Lock()
			op.ready = st.Devices["base"].State == "ready"
			op.mu.Unlock()
		}
	})
	tok, err := mint("role=operator,name=bench")
	if err != nil {
		return nil, err
	}
	if err := op.sess.Connect(ctx, url, tok); err != nil {
		return nil, err
	}
	return op, nil
}

// drive sends drive id and records when.
func (op *operator) drive(ctx context.Context, to string, id int) error {
	lin := 0.2 + 0.1*float64(id%5)
	data := `{"id":` + strconv.Itoa(id) + `,"linear":` + strconv.FormatFloat(lin, 'f', 3, 64) + `,"angular":0}`
	op.mu.Lock()
	op.sent[id] = time.Now()
	op.mu.Unlock()
	return op.sess.Signal(ctx, signaling.Signal{Type: "drive", Data: data, To: to, NoRetry: true})
}

// reset forgets what was measured (after the warm-up).
func (op *operator) reset() {
	op.mu.Lock()
	op.lat, op.notOK, op.tlm = nil, 0, 0
	op.mu.Unlock()
}

func (op *operator) result() Latency {
	op.mu.Lock()
	defer op.mu.Unlock()
	l := stats(op.lat)
	l.NotOK = op.notOK
	return l
}

// loop drives for d (or n drives, when n > 0) after a warm-up: paced at
// rate, or back to back (rate 0: the next drive when the previous ack came,
// or after 1 s without). It returns acks per second.
func (op *operator) loop(ctx context.Context, to string, rate int, d time.Duration, n int) (float64, error) {
	id := 0
	limit := 0 // the last id to send; 0: none
	run := func(d time.Duration) error {
		end := time.Now().Add(d)
		more := func() bool { return time.Now().Before(end) && (limit == 0 || id < limit) }
		if rate > 0 {
			tick := time.NewTicker(time.Second / time.Duration(rate))
			defer tick.Stop()
			for more() {
				select {
				case <-tick.C:
				case <-ctx.Done():
					return ctx.Err()
				}
				id++
				if err := op.drive(ctx, to, id); err != nil {
					return err
				}
			}
			return nil
		}
		for more() {
			id++
			if err := op.drive(ctx, to, id); err != nil {
				return err
			}
			t := time.NewTimer(time.Second)
		wait:
			for {
				select {
				case got := <-op.arrived:
					if got == id {
						break wait
					}
				case <-t.C:
					break wait
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				}
			}
			t.Stop()
		}
		return nil
	}
	if err := run(warmup); err != nil {
		return 0, err
	}
	time.Sleep(50 * time.Millisecond) // the warm-up's last acks arrive before the reset
	op.reset()
	if n > 0 {
		limit = id + n
	}
	start := time.Now()
	if err := run(d); err != nil {
		return 0, err
	}
	elapsed := time.Since(start)
	time.Sleep(100 * time.Millisecond) // the last acks
	r := op.result()
	return float64(r.Samples+r.NotOK) / elapsed.Seconds(), nil
}

// agentConfig is the benchmark's agent: the demo's drive mapping.
func agentConfig(server, tok, port string, tlmHz int) string {
	interval := time.Second / time.Duration(tlmHz)
	return fmt.Sprintf(`version: 1
session:
  server: %s
  token: %s
devices:
  base:
    port: %s
    settings: {wdog_ms: 1000, tlm_hz: %d}
outputs:
  telemetry_interval: %dms
mappings:
  drive:
    kind: setpoint
    fields:
      linear:  {type: float, min: -1, max: 1, out_of_range: clamp, default: 0}
      angular: {type: float, min: -4, max: 4, out_of_range: clamp, default: 0}
    command: "VEL {{ fixed 3 .linear }} {{ fixed 3 .angular }}"
`, server, tok, port, tlmHz, interval.Milliseconds())
}

// robotAt starts a simulated robot with its link in dir.
func robotAt(dir string, tlmHz int) (*sim.Robot, error) {
	o := &sim.Options{Link: filepath.Join(dir, "robot"), WdogMs: 1000, TLMHz: tlmHz}
	if tlmHz == 0 {
		o.TLMHz = -1
	}
	return sim.New(o)
}

// RunAgent measures the agent in process: drives at rate (0: back to
// back) for d, or n drives when n > 0; it returns the ack latency of the ok
// acks and acks per second.
func RunAgent(ctx context.Context, rate int, d time.Duration, n int) (Latency, float64, error) {
	rs, err := startRelay()
	if err != nil {
		return Latency{}, 0, err
	}
	defer rs.close()
	dir, err := os.MkdirTemp("", "agentbench-")
	if err != nil {
		return Latency{}, 0, err
	}
	defer os.RemoveAll(dir)
	robot, err := robotAt(dir, 0) // telemetry off: the latency of acks alone
	if err != nil {
		return Latency{}, 0, err
	}
	defer robot.Close()
	tok, err := mint("role=robot,name=bench")
	if err != nil {
		return Latency{}, 0, err
	}
	cfg, err := bridge.Parse("bench.yaml", []byte(agentConfig(rs.url, tok, robot.Link(), 10)), nil)
	if err != nil {
		return Latency{}, 0, err
	}
	agent, err := bridge.NewAgent(cfg, &bridge.AgentOptions{
		Logger: slog.New(slog.DiscardHandler),
		Device: func(_ string, c *devices.Config, _ *devices.Options) { c.BootWait = 10 * time.Millisecond },
	})
	if err != nil {
		return Latency{}, 0, err
	}
	actx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- agent.Run(actx) }()
	defer func() { cancel(); <-done }()
	if err := waitFor(ctx, func() bool {
		return agent.Connection() != "" && agent.Status().Devices["base"].State == "ready"
	}); err != nil {
		return Latency{}, 0, fmt.Errorf("agent not ready: %w", err)
	}
	op, err := dialOperator(ctx, rs.url)
	if err != nil {
		return Latency{}, 0, err
	}
	defer op.sess.Close()
	acks, err := op.loop(ctx, agent.Connection(), rate, d, n)
	if err != nil {
		return Latency{}, 0, err
	}
	return op.result(), acks, nil
}

// RunHops measures the relay part of the floor: an echo client stands in
// for the agent and acks each drive at once, with the same session client.
// d and n as for RunAgent.
func RunHops(ctx context.Context, rate int, d time.Duration, n int) (Latency, error) {
	rs, err := startRelay()
	if err != nil {
		return Latency{}, err
	}
	defer rs.close()
	echo := signaling.NewSession(nil)
	echo.OnSignalType("drive", func(sig signaling.Signal) {
		var in struct {
			ID int `json:"id"`
		}
		json.Unmarshal([]byte(sig.Data), &in)
		data := `{"id":` + strconv.Itoa(in.ID) + `,"type":"drive","status":"ok"}`
		go echo.Signal(context.Background(), signaling.Signal{Type: "ack", Data: data, To: sig.From})
	})
	tok, err := mint("role=robot,name=echo")
	if err != nil {
		return Latency{}, err
	}
	if err := echo.Connect(ctx, rs.url, tok); err != nil {
		return Latency{}, err
	}
	defer echo.Close()
	op, err := dialOperator(ctx, rs.url)
	if err != nil {
		return Latency{}, err
	}
	defer op.sess.Close()
	if _, err := op.loop(ctx, echo.ID(), rate, d, n); err != nil {
		return Latency{}, err
	}
	return op.result(), nil
}

// RunPty measures the serial part of the floor: VEL → OK with the simulated
// robot through the devices package's Port (the agent's serial code path)
// and the protocol codec. d and n as for RunAgent.
func RunPty(ctx context.Context, rate int, d time.Duration, n int) (Latency, error) {
	dir, err := os.MkdirTemp("", "agentbench-")
	if err != nil {
		return Latency{}, err
	}
	defer os.RemoveAll(dir)
	robot, err := robotAt(dir, 0)
	if err != nil {
		return Latency{}, err
	}
	defer robot.Close()
	p, err := devices.OpenPort(robot.Path(), nil)
	if err != nil {
		return Latency{}, err
	}
	defer p.Close()
	var dl proto.DeviceLine
	var seq uint16
	out := make([]byte, 0, proto.MaxCommandLine)
	// Strict mode, as the agent runs it.
	seq = proto.NextSeq(seq)
	out, _ = proto.AppendCommand(out[:0], seq, "SET", proto.KV("strict", proto.Int(1)))
	roundTrip := func() (time.Duration, error) {
		t0 := time.Now()
		if _, err := p.Write(out); err != nil {
			return 0, err
		}
		for {
			line, err := p.ReadLine()
			if err != nil {
				return 0, err
			}
			if proto.ParseDeviceLine(line, &dl, false) != nil {
				continue
			}
			if (dl.Kind == proto.KindOK || dl.Kind == proto.KindErr) && dl.Seq == seq {
				return time.Since(t0), nil
			}
		}
	}
	if _, err := roundTrip(); err != nil {
		return Latency{}, err
	}
	var lat []time.Duration
	measure := func(d time.Duration, keep bool) error {
		end := time.Now().Add(d)
		var tick *time.Ticker
		if rate > 0 {
			tick = time.NewTicker(time.Second / time.Duration(rate))
			defer tick.Stop()
		}
		for i := 0; time.Now().Before(end) && (!keep || n <= 0 || i < n); i++ {
			if tick != nil {
				select {
				case <-tick.C:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			seq = proto.NextSeq(seq)
			out, _ = proto.AppendCommand(out[:0], seq, "VEL", proto.Float(0.2+0.1*float64(i%5), 3), proto.Float(0, 3))
			rt, err := roundTrip()
			if err != nil {
				return err
			}
			if keep {
				lat = append(lat, rt)
			}
		}
		return nil
	}
	if err := measure(warmup, false); err != nil {
		return Latency{}, err
	}
	if err := measure(d, true); err != nil {
		return Latency{}, err
	}
	return stats(lat), nil
}

// RunProcess runs `bin agent` as its own process against an in-process
// relay and robot, drives it at rate for d with the robot's telemetry at
// tlmHz forwarded in full, and reads the process's CPU time and resident
// memory from /proc.
func RunProcess(ctx context.Context, bin string, rate, tlmHz int, d time.Duration) (*Process, error) {
	rs, err := startRelay()
	if err != nil {
		return nil, err
	}
	defer rs.close()
	dir, err := os.MkdirTemp("", "agentbench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	robot, err := robotAt(dir, tlmHz)
	if err != nil {
		return nil, err
	}
	defer robot.Close()
	tok, err := mint("role=robot,name=bench")
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfgPath, []byte(agentConfig(rs.url, tok, robot.Link(), tlmHz)), 0o600); err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "agent", "--config", cfgPath, "--log-level", "warn")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Kill()
			<-exited
		}
	}()

	op, err := dialOperator(ctx, rs.url)
	if err != nil {
		return nil, err
	}
	defer op.sess.Close()
	var agentID string
	if err := waitFor(ctx, func() bool {
		for _, c := range op.sess.Connections() {
			if strings.Contains(c.Data, "role=robot") {
				agentID = c.ConnectionID
			}
		}
		op.mu.Lock()
		ready := op.ready
		op.mu.Unlock()
		return agentID != "" && ready
	}); err != nil {
		return nil, fmt.Errorf("agent process not ready: %w\n%s", err, stderr.String())
	}

	pid := cmd.Process.Pid
	var cpu0 int64
	var t0 time.Time
	rssMax, rssLast := 0, 0
	sample := make(chan struct{})
	samplerDone := make(chan struct{})
	go func() { // RSS once a second while driving
		defer close(samplerDone)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				if kb, err := rssKB(pid); err == nil {
					rssLast, rssMax = kb, max(rssMax, kb)
				}
			case <-sample:
				return
			}
		}
	}()
	loopErr := func() error {
		id := 0
		run := func(dur time.Duration) error {
			tick := time.NewTicker(time.Second / time.Duration(rate))
			defer tick.Stop()
			for end := time.Now().Add(dur); time.Now().Before(end); {
				select {
				case <-tick.C:
				case <-ctx.Done():
					return ctx.Err()
				}
				id++
				if err := op.drive(ctx, agentID, id); err != nil {
					return err
				}
			}
			return nil
		}
		if err := run(warmup); err != nil {
			return err
		}
		op.reset()
		var err error
		if cpu0, err = cpuTicks(pid); err != nil {
			return err
		}
		t0 = time.Now()
		return run(d)
	}()
	cpu1, cpuErr := cpuTicks(pid)
	wall := time.Since(t0)
	close(sample)
	<-samplerDone
	if loopErr != nil {
		return nil, fmt.Errorf("%w\nagent's log:\n%s", loopErr, stderr.String())
	}
	if cpuErr != nil {
		return nil, cpuErr
	}
	time.Sleep(100 * time.Millisecond) // the last acks
	if kb, err := rssKB(pid); err == nil {
		rssLast, rssMax = kb, max(rssMax, kb)
	}
	anon, _ := statusKB(pid, "RssAnon:")
	file, _ := statusKB(pid, "RssFile:")
	op.mu.Lock()
	tlm := op.tlm
	op.mu.Unlock()

	cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			return nil, fmt.Errorf("agent exited: %w\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		return nil, errors.New("agent did not exit after SIGINT")
	}
	return &Process{
		Rate: rate, TelemetryHz: tlmHz, Seconds: wall.Seconds(),
		CPUPercent: 100 * float64(cpu1-cpu0) / clkTck / wall.Seconds(),
		RSSMaxKB:   rssMax, RSSLastKB: rssLast, RSSAnonKB: anon, RSSFileKB: file, Telemetry: tlm, Agent: op.result(),
	}, nil
}

// clkTck is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100 on
// every Linux architecture Go supports.
const clkTck = 100

// cpuTicks is utime+stime of pid.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; the fields after its ')' are fixed.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("unreadable /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("unreadable /proc/%d/stat", pid)
	}
	// After ')': state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15).
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unreadable /proc/%d/stat", pid)
	}
	return ut + st, nil
}

// rssKB is VmRSS of pid.
func rssKB(pid int) (int, error) { return statusKB(pid, "VmRSS:") }

// statusKB is a kB field of /proc/PID/status.
func statusKB(pid int, field string) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
		}
	}
	return 0, io.ErrUnexpectedEOF
}

func stats(lat []time.Duration) Latency {
	if len(lat) == 0 {
		return Latency{}
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	at := func(p float64) time.Duration { return s[int(p*float64(len(s)-1))] }
	return Latency{Samples: len(s), P50: at(.50), P99: at(.99), P999: at(.999), Max: s[len(s)-1]}
}

func waitFor(ctx context.Context, cond func() bool) error {
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}
