package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/teleop/teleop/internal/natstest"
	"github.com/teleop/teleop/signaling/relay/relaybench"
)

// TestBenchRelayCluster runs a tiny `teleop bench relay --cluster --json`
// (it starts its own nats-server) and checks the shape of the result and
// of its text form.
func TestBenchRelayCluster(t *testing.T) {
	if _, err := natstest.Binary(); err != nil {
		if os.Getenv("TELEOP_REQUIRE_BROKERS") == "1" {
			t.Fatalf("TELEOP_REQUIRE_BROKERS=1: %v", err)
		}
		t.Skip(err)
	}
	var out bytes.Buffer
	root := newRootCmd(&out, io.Discard)
	root.SetArgs([]string{"bench", "relay", "--cluster", "--duration", "200ms", "--fanouts", "1,3", "--nodes", "3", "--json"})
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	var res relaybench.ClusterResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("--json printed %q: %v", out.String(), err)
	}
	if res.Nodes != 3 || res.Latency.Single == nil || res.Latency.Cross == nil || res.Latency.Cross.Samples == 0 ||
		len(res.Throughput) != 2 || res.Throughput[1].Receivers != 3 || res.Throughput[1].Cross.Delivered == 0 {
		t.Fatalf("result %+v", res)
	}

	var text bytes.Buffer
	if err := printClusterBench(&text, &res, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cross/single", "latency 1→1 p50", "latency 1→1 p99.9", "to one connection 1→1 /s", "broadcast 1→3 /s",
		"the receivers on n2, n3", "target cross-node p50"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text output lacks %q:\n%s", want, text.String())
		}
	}
}

// TestBenchRelayClusterFlags: --cluster does not mix with the flags of the
// other modes.
func TestBenchRelayClusterFlags(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"with compare": {[]string{"--cluster", "--compare"}, "separate runs"},
		"with conns":   {[]string{"--cluster", "--conns", "10"}, "--conns and --chart go without it"},
		"one node":     {[]string{"--cluster", "--nodes", "1"}, "at least 2 nodes"},
		"nodes alone":  {[]string{"--nodes", "3"}, "--nodes goes with --cluster"},
	} {
		t.Run(name, func(t *testing.T) {
			root := newRootCmd(io.Discard, io.Discard)
			root.SetArgs(append([]string{"bench", "relay"}, tc.args...))
			if err := root.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v: error %v, want one with %q", tc.args, err, tc.want)
			}
		})
	}
}
