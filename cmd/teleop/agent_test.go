package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/teleop/teleop/devices/sim"
	"github.com/teleop/teleop/signaling"
)

// agentYAML is an agent configuration for the simulated robot at port.
func agentYAML(server, token, port, extra string) string {
	return `version: 1
session:
  server: ` + server + `
  token: ` + token + `
devices:
  base:
    port: ` + port + `
    settings: {wdog_ms: 5000, tlm_hz: 10}
safety:
  i_understand_the_risk: [long_device_watchdog]   # the robot's own watchdog must not stop it before the agent does
mappings:
  drive:
    kind: setpoint
    fields:
      linear:  {type: float, min: -1, max: 1, out_of_range: clamp, default: 0}
      angular: {type: float, min: -4, max: 4, out_of_range: clamp, default: 0}
    command: "VEL {{ fixed 3 .linear }} {{ fixed 3 .angular }}"
` + extra
}

func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitReadyStatus waits for the agent's status saying the device is ready.
func waitReadyStatus(t *testing.T, url, session string) *signaling.Session {
	t.Helper()
	ready := make(chan struct{}, 1)
	s := signaling.NewSession(nil)
	s.OnSignalType("status", func(sig signaling.Signal) {
		var st struct {
			Devices map[string]struct{ State string } `json:"devices"`
		}
		if json.Unmarshal([]byte(sig.Data), &st) == nil && st.Devices["base"].State == "ready" {
			select {
			case ready <- struct{}{}:
			default:
			}
		}
	})
	// Whichever comes first: the agent's status on its join, to everyone;
	// its status to this newcomer; its status when the device gets ready.
	if err := s.Connect(t.Context(), url, sessToken(t, session, "role=operator,name=test")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	select {
	case <-ready:
	case <-time.After(waitLong):
		t.Fatal("no status with the device ready from the agent")
	}
	return s
}

func TestAgentRefusesAnInvalidConfig(t *testing.T) {
	bad := writeFile(t, "bad.yaml", `version: 1
session:
  server: http://127.0.0.1:1
  token: x
devices:
  base:
    port: /dev/null
mappings:
  drive:
    kind: setpoint
    fields:
      linear: {type: float, min: 2, max: 1, default: 0}
    comand: "VEL {{ .linear }} 0"
`)
	var out, errOut lockedBuffer
	root := newRootCmd(&out, &errOut)
	root.SetArgs([]string{"agent", "--config", bad, "--procs", "0"})
	err := root.ExecuteContext(t.Context())
	if err == nil || !strings.Contains(err.Error(), "the agent does not start") {
		t.Fatalf("err = %v", err)
	}
	stderr := errOut.String()
	for _, want := range []string{
		bad + ":12: mappings.drive.fields.linear: min 2 > max 1",
		bad + `:13: mappings.drive.comand: unknown field (did you mean "command"?)`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

// `teleop signal --wait-ack` against a running `teleop agent` (both run in
// process through the command tree) prints the agent's ack.
func TestSignalWaitAckFromTheAgent(t *testing.T) {
	url := sessRelay(t)
	robot := newTestSim(t, sim.Options{})
	cfg := writeFile(t, "agent.yaml", agentYAML(url, sessToken(t, "demo", "role=robot,name=sim-1"), robot.Link(), ""))

	var errOut lockedBuffer
	root := newRootCmd(io.Discard, &errOut)
	root.SetArgs([]string{"agent", "--config", cfg, "--log-level", "debug", "--procs", "0"}) // in process: leave GOMAXPROCS alone
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
	waitReadyStatus(t, url, "demo")

	out, err := runSessionCmd(t, "signal", "--server", url, "--token", sessToken(t, "demo", "role=operator,name=cli"),
		"--type", "drive", "--data", `{"id":42,"linear":0.25}`, "--wait-ack", "5s")
	if err != nil {
		t.Fatal(err)
	}
	var a map[string]any
	if err := json.Unmarshal([]byte(out), &a); err != nil || a["status"] != "ok" || a["id"] != 42.0 || a["type"] != "drive" {
		t.Errorf("printed %q, want the agent's ok ack of id 42", out)
	}
	if st := robot.State(); st.Linear != 0.25 {
		t.Errorf("robot at %v m/s", st.Linear)
	}
}

// The agent as a real process: SIGTERM while an operator drives stops the
// robot before the process exits, with exit code 0. The time from SIGTERM
// to exit is logged (a measurement; the machine is shared).
func TestAgentSIGTERM(t *testing.T) {
	bin := teleopBinary(t)
	url := sessRelay(t)
	robot := newTestSim(t, sim.Options{WdogMs: 5000})
	cfg := writeFile(t, "agent.yaml", agentYAML(url, sessToken(t, "demo", "role=robot,name=sim-1"), robot.Link(), ""))

	var errOut lockedBuffer
	cmd := exec.Command(bin, "agent", "--config", cfg, "--metrics", "127.0.0.1:0")
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("agent's stderr:\n%s", errOut.String())
		}
	}()

	op := waitReadyStatus(t, url, "demo")
	for robot.State().Linear != 0.4 {
		if err := op.Signal(t.Context(), signaling.Signal{Type: "drive", Data: `{"id":1,"linear":0.4}`}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // an operator's 50 Hz
	}
	before := robot.State()

	// It re-executed itself, same PID, with the steady sysmon setting.
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(environ), "GODEBUG="+steadySysmon) {
		t.Errorf("the agent runs without GODEBUG=%s", steadySysmon)
	}

	// Metrics are served while it runs.
	m := regexp.MustCompile(`url=(http://\S+/metrics)`).FindStringSubmatch(errOut.String())
	if m == nil {
		t.Fatalf("no metrics url in the log")
	}
	resp, err := http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `teleop_agent_signals_total{outcome="ok",type="drive"}`) {
		t.Errorf("metrics lack the drive signals:\n%s", body)
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		elapsed := time.Since(start)
		t.Logf("SIGTERM to exit: %v", elapsed.Round(time.Millisecond))
		var ee *exec.ExitError
		if errors.As(err, &ee) || err != nil {
			t.Fatalf("agent exited with %v", err)
		}
		if elapsed > 10*time.Second {
			t.Errorf("took %v to exit", elapsed)
		}
	case <-time.After(waitLong):
		t.Fatal("the agent did not exit after SIGTERM")
	}
	after := robot.State()
	if after.Linear != 0 || after.Mode != sim.Ready || after.Executed <= before.Executed {
		t.Errorf("after exit the robot runs %v m/s in %s, %d commands run since the drive; want a STOP (not its watchdog)",
			after.Linear, after.Mode, after.Executed-before.Executed)
	}
	for _, want := range []string{"stop", "stopped"} {
		if !strings.Contains(errOut.String(), fmt.Sprintf("msg=%s ", want)) {
			t.Errorf("log lacks %q", want)
		}
	}
}
