package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/teleop/teleop/bridge/agentbench"
)

// TestBenchE2E runs a tiny `teleop bench e2e` in both output forms and
// checks their shape only (a benchmark, not a timed test). The process
// measurement needs the teleop binary; agentbench's own test runs it.
func TestBenchE2E(t *testing.T) {
	args := []string{"bench", "e2e", "--duration", "200ms", "--max-duration", "200ms", "--no-process"}

	var out bytes.Buffer
	root := newRootCmd(&out, io.Discard)
	root.SetArgs(append(args, "--json"))
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	var res agentbench.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("--json printed %q: %v", out.String(), err)
	}
	if res.Paced.Agent.Samples == 0 || res.Max.Agent.Samples == 0 || res.Paced.Hops.Samples == 0 || res.Max.Pty.Samples == 0 || res.Process != nil {
		t.Fatalf("result %+v", res)
	}

	out.Reset()
	root = newRootCmd(&out, io.Discard)
	root.SetArgs(args)
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"at 50/s:", "back to back", "floor: relay hops", "floor: pty round trip", "floor (sum)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text output lacks %q:\n%s", want, out.String())
		}
	}
}
