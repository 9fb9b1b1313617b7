package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/teleop/teleop/bridge"
	"github.com/teleop/teleop/devices/sim"
)

// checkConfig is an agent configuration whose devices section is devs.
func checkConfig(devs string) string {
	return `
session:
  token: ${TELEOP_CHECK_TEST_TOKEN}
devices:
` + devs + `
mappings:
  drive:
    kind: setpoint
    device: base
    fields:
      linear:  {type: float, min: -1, max: 1, out_of_range: clamp, default: 0}
      angular: {type: float, min: -4, max: 4, out_of_range: clamp, default: 0}
    command: "VEL {{ fixed 3 .linear }} {{ fixed 3 .angular }}"
`
}

func parseCheckConfig(t *testing.T, yaml string) *bridge.Config {
	t.Helper()
	cfg, err := bridge.Parse("check.yaml", []byte(yaml), bridge.AllowUnset(func(string) (string, bool) { return "", false }))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

func TestAgentCheck(t *testing.T) {
	t.Parallel()
	r := newTestSim(t, sim.Options{})
	cfg := parseCheckConfig(t, checkConfig(`
  base:
    port: `+r.Link()+`
    settings: {wdog_ms: 250, tlm_hz: 5, max_lin: 0.5}`))
	var out bytes.Buffer
	if err := runAgentCheck(context.Background(), cfg, &out); err != nil {
		t.Fatalf("runAgentCheck: %v\n%s", err, out.String())
	}
	t.Logf("output:\n%s", out.String())
	for _, want := range []string{
		"device base: " + r.Link() + " → " + r.Path() + ", 115200 baud, teleop/1\n",
		"device base: ready in ",
		": fw=teleop-sim/",
		" board=sim proto=1.0 rx=64 caps=vel,hb,",
		"device base: applied SET strict=1 wdog_ms=250 tlm_hz=5 max_lin=0.5\n",
		"device base: reports wdog_ms=250 tlm_hz=5 max_lin=0.500\n",
		"device base: telemetry st=RDY ",
		"agent check: 1 device ok\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if st := r.State(); st.Executed == 0 {
		t.Errorf("the simulator ran none of the handshake's commands: %+v", st)
	}
}

func TestAgentCheckFailures(t *testing.T) {
	t.Parallel()
	r := newTestSim(t, sim.Options{})
	// A pty nobody answers on: the handshake fails.
	m, s, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	silent := s.Name()
	s.Close()
	missing := filepath.Join(t.TempDir(), "gone")

	cfg := parseCheckConfig(t, checkConfig(`
  base:
    port: `+r.Link()+`
  arm:
    port: `+missing+`
  mute:
    port: `+silent+`
  usb:
    usb: {vid: "2341", pid: "0043", serial: "no-such-board"}`))
	var out bytes.Buffer
	err = runAgentCheck(context.Background(), cfg, &out)
	t.Logf("output:\n%s", out.String())
	if err == nil || err.Error() != "agent check: 3 of 4 devices failed" {
		t.Fatalf("runAgentCheck = %v, want 3 of 4 failed", err)
	}
	for _, want := range []string{
		"device base: ready in ",
		"device arm: FAILED: port " + missing + ": not present\n",
		"device mute: FAILED: link down: handshake: VER ",
		"(is it a teleop/1 device at 115200 baud?)",
		"device usb: FAILED: port usb:2341:0043:no-such-board: no such USB serial device present\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestAgentCheckCanceled(t *testing.T) {
	t.Parallel()
	m, s, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	silent := s.Name()
	s.Close()
	cfg := parseCheckConfig(t, checkConfig(`
  base:
    port: `+silent))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	if err := runAgentCheck(ctx, cfg, &out); err != context.DeadlineExceeded {
		t.Fatalf("runAgentCheck = %v, want %v", err, context.DeadlineExceeded)
	}
}

// TestAgentCheckFile: the file is loaded as the agent loads it, but a
// secret the check does not need may be unset.
func TestAgentCheckFile(t *testing.T) {
	t.Parallel()
	r := newTestSim(t, sim.Options{})
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	write := func(path, s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(good, checkConfig("  base:\n    port: "+r.Link()))
	write(bad, checkConfig("  base:\n    port: "+r.Link()+"\n    baud: 12345"))

	var out, errOut bytes.Buffer
	if err := agentCheck(context.Background(), good, &out, &errOut); err != nil {
		t.Fatalf("agentCheck(good): %v\n%s%s", err, out.String(), errOut.String())
	}
	if !strings.HasPrefix(out.String(), good+": ok\n") || !strings.Contains(out.String(), "agent check: 1 device ok") {
		t.Errorf("good file output:\n%s", out.String())
	}

	out.Reset()
	err := agentCheck(context.Background(), bad, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "1 problem") {
		t.Fatalf("agentCheck(bad) = %v", err)
	}
	if !strings.Contains(errOut.String(), "devices.base.baud: 12345 is not a standard rate") || out.Len() != 0 {
		t.Errorf("bad file: stdout %q, stderr %q", out.String(), errOut.String())
	}
}
