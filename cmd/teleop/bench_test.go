package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/teleop/teleop/signaling/relay/relaybench"
)

// TestBenchRelay runs a tiny `teleop bench relay` in both output forms and
// checks their shape only (a benchmark, not a timed test).
func TestBenchRelay(t *testing.T) {
	args := []string{"bench", "relay", "--duration", "200ms", "--fanouts", "1,3", "--conns", "20"}

	var out bytes.Buffer
	root := newRootCmd(&out, io.Discard)
	root.SetArgs(append(args, "--json"))
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	var res relaybench.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("--json printed %q: %v", out.String(), err)
	}
	if res.Latency == nil || res.Latency.Samples == 0 || len(res.Throughput) != 2 || res.Memory == nil || res.Memory.Conns != 20 {
		t.Fatalf("result %+v", res)
	}

	out.Reset()
	root = newRootCmd(&out, io.Discard)
	root.SetArgs(args)
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"latency 1→1", "throughput 1→1 ", "throughput 1→3 ", "idle connections"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text output lacks %q:\n%s", want, out.String())
		}
	}
}
