package compare

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needBrokers skips the test when mosquitto or nats-server is missing,
// unless TELEOP_REQUIRE_BROKERS is set (CI), where it fails.
func needBrokers(t *testing.T) {
	t.Helper()
	if _, err := LookBinaries(Binaries{}); errors.Is(err, ErrBrokerMissing) {
		msg := err.Error() + ": the comparison needs both (apt-get install mosquitto nats-server)"
		if os.Getenv("TELEOP_REQUIRE_BROKERS") != "" {
			t.Fatal(msg + " (TELEOP_REQUIRE_BROKERS is set)")
		}
		t.Skip(msg)
	}
}

// buildTeleop builds the teleop binary, which runs as `teleop server`.
func buildTeleop(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "teleop")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/teleop/teleop/cmd/teleop").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestRunSmoke runs every workload briefly against all three servers and
// checks the shape of the result only (a benchmark, not a timed test).
func TestRunSmoke(t *testing.T) {
	needBrokers(t)
	res, err := Run(context.Background(), &Options{
		Binaries: Binaries{Teleop: buildTeleop(t)},
		Duration: 50 * time.Millisecond,
		Payloads: []int{64, 8192},
		Fanouts:  []int{2},
		// IdleConns 10: the memory run's mechanics, not its number.
		IdleConns: 10,
		Logf:      t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Servers) != 3 {
		t.Fatalf("%d servers, want 3", len(res.Servers))
	}
	for i, s := range res.Servers {
		if s.Kind != Kinds[i] || s.Version == "" || s.Client == "" || s.Memory == nil || s.Memory.Conns != 10 {
			t.Errorf("server %d: %+v", i, s)
		}
		for _, p := range s.Payloads {
			if p.Latency == nil || p.Latency.Samples == 0 || len(p.Throughput) != 1 || p.Throughput[0].Delivered == 0 {
				t.Errorf("%s, %d B: %+v", s.Name, p.Bytes, p)
			}
			if peer := i > 0; peer != (p.VsTeleop != nil) {
				t.Errorf("%s, %d B: ratios %+v", s.Name, p.Bytes, p.VsTeleop)
			}
		}
	}
	chart := filepath.Join(t.TempDir(), "latency.png")
	if err := res.WriteChart(chart); err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := res.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", text.String())
	if _, err := json.Marshal(res); err != nil {
		t.Fatal(err)
	}
}

// TestServerStop: every server starts on a loopback port and is gone
// (reaped) after stop, which signals it by PID.
func TestServerStop(t *testing.T) {
	needBrokers(t)
	bins, err := LookBinaries(Binaries{Teleop: buildTeleop(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range Kinds {
		t.Run(k.String(), func(t *testing.T) {
			s, err := startServer(context.Background(), k, bins)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.stop)
			if err := checkLoopback(s.addr); err != nil {
				t.Fatal(err)
			}
			if rss, err := s.rss(); err != nil || rss <= 0 {
				t.Fatalf("rss %d, %v", rss, err)
			}
			s.stop()
			if s.cmd.ProcessState == nil {
				t.Fatal("process not reaped after stop")
			}
			if _, err := os.Stat(s.dir); !os.IsNotExist(err) {
				t.Fatalf("directory %s left behind: %v", s.dir, err)
			}
		})
	}
}

func TestCheckLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:1883":  true,
		"127.0.0.2:1883":  true,
		"[::1]:4222":      true,
		"localhost:4222":  false, // a name could resolve anywhere
		"10.0.0.1:1883":   false,
		"0.0.0.0:1883":    false,
		"example.com:443": false,
		"127.0.0.1":       false,
	} {
		t.Run(addr, func(t *testing.T) {
			if err := checkLoopback(addr); (err == nil) != ok {
				t.Fatalf("checkLoopback(%q) = %v, want ok %v", addr, err, ok)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		o    Options
		want string
	}{
		"defaults":       {Options{}, ""},
		"over the cap":   {Options{Duration: 2 * time.Minute}, "over the cap"},
		"tiny payload":   {Options{Payloads: []int{8}}, "payload of 8 bytes"},
		"too large":      {Options{Payloads: []int{8193}}, "payload of 8193 bytes"},
		"fan-out":        {Options{Fanouts: []int{0}}, "fan-out to 0"},
		"too many conns": {Options{IdleConns: MaxIdleConns + 1}, "idle connections"},
	} {
		t.Run(name, func(t *testing.T) {
			o := tc.o
			plan := PlanFor(&o)
			err := o.Validate()
			if tc.want == "" {
				if err != nil || plan.TimedRuns != 18 || plan.Deadline <= plan.Estimate {
					t.Fatalf("plan %+v, err %v", plan, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestReadRSS(t *testing.T) {
	if !supported {
		t.Skip("no /proc")
	}
	rss, err := readRSS(os.Getpid())
	if err != nil || rss <= 0 {
		t.Fatalf("readRSS = %d, %v", rss, err)
	}
}

// fakeResult is a result with round numbers: mosquitto at half of teleop
// server's latency and throughput, NATS at double.
func fakeResult() *Result {
	samples := func(p50 time.Duration) []time.Duration {
		s := make([]time.Duration, 1000)
		for i := range s {
			s[i] = p50 * time.Duration(i+500) / 1000
		}
		return s
	}
	r := &Result{Duration: time.Second, Rate: 1000, IdleConns: 100}
	for i, k := range Kinds {
		f := []float64{1, 0.5, 2}[i]
		s := Server{Kind: k, Name: k.String(), Version: "1", Client: clientName(k),
			Memory: &Memory{Conns: 100, BytesPerConn: 10240 * f}}
		for _, b := range []int{100, 8192} {
			p50 := time.Duration(float64(100*time.Microsecond) * f)
			s.Payloads = append(s.Payloads, PayloadRuns{Bytes: b,
				Latency:    &Latency{Rate: 1000, Samples: 1000, P50: p50, P99: 2 * p50, P999: 3 * p50, Max: 4 * p50, sorted: samples(p50)},
				Throughput: []Throughput{{Receivers: 10, DeliveredPerS: 1e6 * f}, {Receivers: 100, DeliveredPerS: 2e6 * f}},
			})
		}
		r.Servers = append(r.Servers, s)
	}
	r.ratios()
	return r
}

func TestWriteText(t *testing.T) {
	var b bytes.Buffer
	if err := fakeResult().WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Logf("\n%s", out)
	for _, want := range []string{
		"payload 100 B", "payload 8 KB", "1→10 /s", "1→100 /s",
		"teleop server  1        100µs ", // the reference: no ratios
		"mosquitto      1        50µs ×0.50   100µs ×0.50  150µs ×0.50  500,000 ×0.50    1,000,000 ×0.50  5.0 KB ×0.50",
		"nats-server    1        200µs ×2.00  400µs ×2.00  600µs ×2.00  2,000,000 ×2.00  4,000,000 ×2.00  20.0 KB ×2.00",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	if strings.Count(out, "teleop server  1") != 2 {
		t.Errorf("want a teleop server row per payload:\n%s", out)
	}
}

func TestWriteChart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chart.png")
	if err := fakeResult().WriteChart(path); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() < 1000 || b.Dy() < 400 {
		t.Fatalf("chart is %v", b)
	}
}

func TestFormats(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{Thousands(0), "0"},
		{Thousands(999.6), "1,000"},
		{Thousands(1234567), "1,234,567"},
		{dur(61 * time.Microsecond), "61µs"},
		{dur(2800 * time.Microsecond), "2.80ms"},
		{dur(42900 * time.Microsecond), "42.9ms"},
		{sizeName(100), "100 B"},
		{sizeName(8192), "8 KB"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
