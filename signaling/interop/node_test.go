package interop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// nodeDir is the npm project holding the pinned SDK and the driver script.
const nodeDir = "testdata/node"

// sdk runs interop.js, the driver of the official OpenTok Node SDK.
type sdk struct {
	node string // path of the node binary
}

// result is one command's outcome; see interop.js for the commands.
type result struct {
	OK        bool   `json:"ok"`
	Error     string `json:"error"`
	Name      string `json:"name"`
	Token     string `json:"token"`
	SessionID string `json:"sessionId"`
	Version   string `json:"version"`
}

// cmd is one command for interop.js; credentials are filled in by the tests.
type cmd map[string]any

// newSDK finds node and the installed SDK, or skips the test saying what is missing.
func newSDK(t *testing.T) *sdk {
	t.Helper()
	skip := t.Skip
	if os.Getenv("TELEOP_REQUIRE_NODE") != "" { // CI: a missing SDK is a failure, not a skip
		skip = t.Fatal
	}
	node, err := exec.LookPath("node")
	if err != nil {
		skip("node is not on PATH: install Node.js (v20) to run the OpenTok SDK interop tests")
	}
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "opentok", "package.json")); err != nil {
		skip(fmt.Sprintf("%s/node_modules/opentok is absent: run `make deps` (npm ci in %s) to run the OpenTok SDK interop tests", nodeDir, nodeDir))
	}
	return &sdk{node: node}
}

// run sends cmds to interop.js in one process and returns their results in order.
// A command that the SDK refuses is a result with OK false, not a test failure.
func (s *sdk) run(t *testing.T, cmds ...cmd) []result {
	t.Helper()
	in, err := json.Marshal(cmds)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, s.node, "interop.js")
	c.Dir = nodeDir
	c.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("node interop.js: %v\nstdin: %s\nstderr: %s", err, in, stderr.Bytes())
	}
	var out []result
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || len(out) != len(cmds) {
		t.Fatalf("node interop.js: output %q (stderr %q): %v; want %d results", stdout.Bytes(), stderr.Bytes(), err, len(cmds))
	}
	return out
}

// one runs a single command.
func (s *sdk) one(t *testing.T, c cmd) result {
	t.Helper()
	return s.run(t, c)[0]
}
