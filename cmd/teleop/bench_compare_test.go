package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/teleop/teleop/bench/compare"
)

// needBrokers skips the test when mosquitto or nats-server is missing,
// unless TELEOP_REQUIRE_BROKERS is set (CI), where it fails.
func needBrokers(t *testing.T) {
	t.Helper()
	if _, err := compare.LookBinaries(compare.Binaries{}); errors.Is(err, compare.ErrBrokerMissing) {
		msg := err.Error() + ": teleop bench relay --compare needs both (apt-get install mosquitto nats-server)"
		if os.Getenv("TELEOP_REQUIRE_BROKERS") != "" {
			t.Fatal(msg + " (TELEOP_REQUIRE_BROKERS is set)")
		}
		t.Skip(msg)
	}
}

// TestBenchRelayCompare runs a tiny `teleop bench relay --compare` with the
// built binary (it runs itself as `teleop server`) and checks the shape of
// the table, the JSON and the chart; no number is judged.
func TestBenchRelayCompare(t *testing.T) {
	needBrokers(t)
	bin := teleopBinary(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := func(stdout io.Writer, args ...string) {
		t.Helper()
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, bin, append([]string{"bench", "relay", "--compare", "--duration", "50ms", "--conns", "20"}, args...)...)
		cmd.Stdout, cmd.Stderr = stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("teleop bench relay --compare %v: %v\n%s", args, err, stderr.String())
		}
		if !strings.Contains(stderr.String(), "timed runs: about") {
			t.Errorf("no plan up front on stderr:\n%s", stderr.String())
		}
	}

	t.Run("text", func(t *testing.T) {
		chart := filepath.Join(dir, "latency.png")
		var out bytes.Buffer
		run(&out, "--fanouts", "3", "--chart", chart)
		text := out.String()
		t.Logf("\n%s", text)
		rows := map[string]int{}
		for _, line := range strings.Split(text, "\n") {
			for _, name := range []string{"teleop server ", "mosquitto ", "nats-server "} {
				if !strings.HasPrefix(line, name) {
					continue
				}
				rows[name]++
				// A peer's row gives its ratio to teleop server in every
				// column: p50, p99, p99.9, 1→3, idle memory.
				if peer := name != "teleop server "; peer != strings.Contains(line, "×") {
					t.Errorf("row %q: ratios wanted for peers only", line)
				}
				if n := strings.Count(line, "×"); name != "teleop server " && n != 5 {
					t.Errorf("row %q: %d ratios, want 5", line, n)
				}
			}
		}
		for _, name := range []string{"teleop server ", "mosquitto ", "nats-server "} {
			if rows[name] != 2 { // one row per payload: 100 B and 8 KB
				t.Errorf("%d rows for %q, want 2", rows[name], name)
			}
		}
		if !strings.Contains(text, "chart: "+chart) {
			t.Errorf("the output does not name the chart %s", chart)
		}
		checkPNG(t, chart)
	})

	t.Run("json", func(t *testing.T) {
		// Without --chart the chart goes next to the file stdout writes to.
		outPath := filepath.Join(dir, "result.json")
		f, err := os.Create(outPath)
		if err != nil {
			t.Fatal(err)
		}
		run(f, "--json", "--data-bytes", "100", "--fanouts", "2")
		f.Close()
		b, err := os.ReadFile(outPath)
		if err != nil {
			t.Fatal(err)
		}
		var res compare.Result
		if err := json.Unmarshal(b, &res); err != nil {
			t.Fatalf("--json printed %q: %v", b, err)
		}
		if len(res.Servers) != 3 {
			t.Fatalf("%d servers, want 3: %s", len(res.Servers), b)
		}
		for i, s := range res.Servers {
			if len(s.Payloads) != 1 || s.Payloads[0].Bytes != 100 || s.Payloads[0].Latency == nil || len(s.Payloads[0].Throughput) != 1 || s.Memory == nil {
				t.Errorf("server %s: %+v", s.Name, s)
			}
			if peer := i > 0; peer != (s.Payloads[0].VsTeleop != nil) || peer != (s.VsTeleop != nil) {
				t.Errorf("server %s: ratios wanted for peers only", s.Name)
			}
		}
		if want := filepath.Join(dir, "result.png"); res.Chart != want {
			t.Errorf("chart %q, want %q", res.Chart, want)
		}
		checkPNG(t, res.Chart)
	})
}

func checkPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Fatalf("chart %s: %v", path, err)
	}
}

// TestBenchRelayCompareRefuses: flags that would not be bounded or make no
// sense are refused before anything starts.
func TestBenchRelayCompareRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"chart without compare": {[]string{"--chart", "x.png"}, "--chart goes with --compare"},
		"over the cap":          {[]string{"--compare", "--duration", "2m"}, "over the cap"},
		"fan-out too large":     {[]string{"--compare", "--fanouts", "5000"}, "fan-out to 5000"},
		"payload too large":     {[]string{"--compare", "--data-bytes", "9000"}, "payload of 9000 bytes"},
	} {
		t.Run(name, func(t *testing.T) {
			root := newRootCmd(io.Discard, io.Discard)
			root.SetArgs(append([]string{"bench", "relay"}, tc.args...))
			err := root.ExecuteContext(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}
