package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/teleop/teleop/devices/sim"
	"github.com/teleop/teleop/internal/natstest"
	"github.com/teleop/teleop/signaling/relay"
)

// `teleop server --cluster … --node-name …` twice on one NATS: the agent
// joins through one node, `teleop signal --wait-ack` drives it through the
// other, and the ack comes back; both nodes report the cluster in /healthz.
func TestClusterAgentAcrossNodes(t *testing.T) {
	nats := natstest.ForTest(t)
	t.Setenv("TELEOP_API_KEY", sessKey)
	t.Setenv("TELEOP_API_SECRET", sessSecret)
	u1, _, _ := startServer(t, "--listen", "127.0.0.1:0", "--cluster", nats.URL(), "--node-name", "relay-1")
	u2, _, _ := startServer(t, "--listen", "127.0.0.1:0", "--cluster", nats.URL(), "--node-name", "relay-2")

	robot := newTestSim(t, sim.Options{})
	cfg := writeFile(t, "agent.yaml", agentYAML(u2, sessToken(t, "demo", "role=robot,name=sim-1"), robot.Link(), ""))
	var errOut lockedBuffer
	root := newRootCmd(io.Discard, &errOut)
	root.SetArgs([]string{"agent", "--config", cfg, "--procs", "0"})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", errOut.String())
		}
	}()
	waitReadyStatus(t, u1, "demo") // the agent's status crosses from relay-2 to relay-1

	out, err := runSessionCmd(t, "signal", "--server", u1, "--token", sessToken(t, "demo", "role=operator,name=cli"),
		"--type", "drive", "--data", `{"id":7,"linear":0.5}`, "--wait-ack", "5s")
	if err != nil {
		t.Fatal(err)
	}
	var a map[string]any
	if err := json.Unmarshal([]byte(out), &a); err != nil || a["status"] != "ok" || a["id"] != 7.0 {
		t.Errorf("printed %q, want the agent's ok ack of id 7", out)
	}
	if st := robot.State(); st.Linear != 0.5 {
		t.Errorf("robot at %v m/s, want 0.5", st.Linear)
	}
	for _, u := range []string{u1, u2} {
		resp, err := http.Get(u + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		var h relay.Health
		json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
		if h.Status != "ok" || h.Cluster == nil || !h.Cluster.Connected || h.Cluster.Nodes != 2 {
			t.Errorf("%s/healthz: %+v %+v", u, h, h.Cluster)
		}
	}
}

// A cluster node needs credentials every node shares: dev mode's
// throwaway ones would differ per node.
func TestClusterRefusesDevMode(t *testing.T) {
	t.Setenv("TELEOP_API_KEY", "")
	t.Setenv("TELEOP_API_SECRET", "")
	root := newRootCmd(io.Discard, io.Discard)
	root.SetArgs([]string{"server", "--listen", "127.0.0.1:0", "--cluster", "nats://127.0.0.1:4222"})
	err := root.ExecuteContext(t.Context())
	if err == nil || !strings.Contains(err.Error(), "every node shares") {
		t.Fatalf("err = %v", err)
	}
}
