package emutest

import (
	"debug/elf"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// waitLong bounds each step under emulation; a loaded CI machine is slow,
// and these are not timing tests.
const waitLong = 90 * time.Second

func TestVersion(t *testing.T) {
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			p := start(t, "teleop version", tg.command(t, "version"))
			<-p.done
			if p.err != nil {
				t.Fatalf("teleop version under %s -cpu %s: %v\n%s%s", tg.qemu, tg.cpu, p.err, p.stdout, p.stderr)
			}
			goarch := tg.goarch
			want := fmt.Sprintf("teleop %s (commit ", stampVersion)
			wantEnd := fmt.Sprintf(", built %s, %s linux/%s)\n", stampDate, runtime.Version(), goarch)
			if got := p.stdout.String(); !strings.HasPrefix(got, want) || !strings.HasSuffix(got, wantEnd) {
				t.Errorf("teleop version printed %q, want %q…%q", got, want, wantEnd)
			}
			static, machine, err := isStatic(tg.binary(t))
			if err != nil {
				t.Fatal(err)
			}
			wantMachine := elf.EM_ARM
			if tg.goarch == "arm64" {
				wantMachine = elf.EM_AARCH64
			}
			if !static || machine != wantMachine {
				t.Errorf("binary: static %v, machine %v; want static %v", static, machine, wantMachine)
			}
		})
	}
}

// The arm v7 binary does not run on the ARM11 of a Pi 1 or Zero: that is
// what the arm v6 binary is for (docs/operations.md).
func TestArmV7NeedsV7(t *testing.T) {
	tg := armv7
	tg.cpu = armv6.cpu
	p := start(t, "teleop version", tg.command(t, "version"))
	<-p.done
	if p.err == nil {
		t.Fatalf("the arm v7 binary ran on %s: %s", tg.cpu, p.stdout)
	}
	t.Logf("arm v7 binary on %s: %v %s", tg.cpu, p.err, strings.TrimSpace(p.stderr.String()))
}

// finish waits for a process started with start to end on its own.
func finish(t testing.TB, p *proc) (string, error) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(waitLong):
		t.Fatalf("%s did not finish within %v:\n%s%s", p.name, waitLong, p.stdout, p.stderr)
	}
	return p.stdout.String(), p.err
}

const (
	apiKey    = "12345678"
	apiSecret = "emutest-secret-emutest-secret"
)

var apiEnv = []string{"TELEOP_API_KEY=" + apiKey, "TELEOP_API_SECRET=" + apiSecret}

// stack is the relay, the simulated robot and the agent, each run by the
// emulator of one target.
type stack struct {
	url, link     string
	server, robot *proc
	agent         *proc
}

func startStack(t *testing.T, tg target, session string) *stack {
	t.Helper()
	s := &stack{link: filepath.Join(t.TempDir(), "robot")}
	s.server = start(t, "teleop server", tg.command(t, "server", "--listen", "127.0.0.1:0"), apiEnv...)
	line := s.server.stdout.waitLine(t, s.server, "listening on ", waitLong)
	s.url = strings.TrimSpace(line[strings.Index(line, "listening on ")+len("listening on "):])

	s.robot = start(t, "teleop sim", tg.command(t, "sim", "--link", s.link))
	s.robot.stdout.waitLine(t, s.robot, "link: ", waitLong)

	tok := mint(t, tg, session, "role=robot,name=pi-"+tg.name)
	cfg := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(cfg, []byte(agentConfig(s.url, tok, s.link)), 0o600); err != nil {
		t.Fatal(err)
	}
	s.agent = start(t, "teleop agent", tg.command(t, "agent", "--config", cfg, "--log-format", "json"))
	s.agent.stderr.waitLine(t, s.agent, `"msg":"joined the session"`, waitLong)
	s.agent.stderr.waitLine(t, s.agent, `"msg":"device ready"`, waitLong)
	return s
}

func agentConfig(url, token, port string) string {
	return `version: 1
session:
  server: ` + url + `
  token: ` + token + `
devices:
  base:
    port: ` + port + `
    settings: {wdog_ms: 500, tlm_hz: 10}
safety:
  deadman: 2s        # emulated processes on a shared machine: no deadman between two signals
  max_age: 2s
mappings:
  drive:
    kind: setpoint
    fields:
      linear:  {type: float, min: -1, max: 1, out_of_range: clamp, default: 0}
      angular: {type: float, min: -4, max: 4, out_of_range: clamp, default: 0}
    command: "VEL {{ fixed 3 .linear }} {{ fixed 3 .angular }}"
`
}

func mint(t testing.TB, tg target, session, data string) string {
	t.Helper()
	out, err := finish(t, start(t, "teleop token", tg.command(t, "token", "--session", session, "--data", data), apiEnv...))
	if err != nil {
		t.Fatalf("teleop token: %v", err)
	}
	return strings.TrimSpace(out)
}

// signalAck sends one signal with teleop signal --wait-ack, emulated, and
// returns the agent's ack.
func signalAck(t testing.TB, tg target, url, token, typ, data string) map[string]any {
	t.Helper()
	p := start(t, "teleop signal", tg.command(t, "signal", "--server", url, "--token", token,
		"--type", typ, "--data", data, "--wait-ack", "60s"))
	out, err := finish(t, p)
	if err != nil {
		t.Fatalf("teleop signal --type %s: %v\n%s", typ, err, p.stderr)
	}
	var ack map[string]any
	if err := json.Unmarshal([]byte(out), &ack); err != nil {
		t.Fatalf("teleop signal printed %q: %v", out, err)
	}
	return ack
}

// signalOK sends a signal (data made from a fresh id each time) until the
// agent acks it ok. A device that is not ready is retried: on a loaded
// machine an emulated robot can fall silent past the link's 1s silence
// limit, and the agent then reconnects to it, as it should.
func signalOK(t testing.TB, tg target, url, token, typ string, id *int, data func(id int) string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		*id++
		ack := signalAck(t, tg, url, token, typ, data(*id))
		if ack["status"] == "ok" && ack["id"] == float64(*id) && ack["type"] == typ {
			return ack
		}
		if ack["code"] != "not_ready" || time.Now().After(deadline) {
			t.Fatalf("%s ack %v, want ok for id %d", typ, ack, *id)
		}
		t.Logf("%s: %v; again", typ, ack["reason"])
	}
}

// TestStack runs everything emulated: the relay, the simulated robot on a
// pty, the agent driving it over that pty, and an operator's signals
// through the relay; then SIGTERM ends the agent cleanly.
func TestStack(t *testing.T) {
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			// Not parallel: three emulated stacks at once starve one another.
			session := "emu-" + tg.name
			s := startStack(t, tg, session)
			op := mint(t, tg, session, "role=operator,name=emutest")

			id := 0
			signalOK(t, tg, s.url, op, "drive", &id, func(id int) string {
				return fmt.Sprintf(`{"id":%d,"linear":0.3,"angular":-0.5}`, id)
			})
			signalOK(t, tg, s.url, op, "stop", &id, func(id int) string { return fmt.Sprintf(`{"id":%d}`, id) })
			if err := s.agent.stop(waitLong); err != nil {
				t.Errorf("agent after SIGTERM: %v (want exit 0)", err)
			}
			if !strings.Contains(s.agent.stderr.String(), `"msg":"stopped"`) {
				t.Errorf("the agent did not log its shutdown")
			}
			for _, p := range []*proc{s.robot, s.server} {
				if err := p.stop(waitLong); err != nil {
					t.Errorf("%s after SIGTERM: %v", p.name, err)
				}
			}
		})
	}
}

// TestNonStandardBaud: qemu-user 7.2 does not translate TCGETS2, so a rate
// outside the termios table cannot be set there. teleop serial (and the
// agent, through the same devices.OpenPort) fails with a message that says
// why; at 115200 the same console works.
func TestNonStandardBaud(t *testing.T) {
	for _, tg := range []target{arm64, armv7} {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			link := filepath.Join(t.TempDir(), "robot")
			robot := start(t, "teleop sim", tg.command(t, "sim", "--link", link))
			robot.stdout.waitLine(t, robot, "link: ", waitLong)

			cmd := tg.command(t, "serial", "--port", link, "--baud", "250000")
			cmd.Stdin = strings.NewReader("PING\n")
			p := start(t, "teleop serial --baud 250000", cmd)
			if _, err := finish(t, p); err == nil {
				t.Fatalf("teleop serial at 250000 baud under qemu succeeded; qemu now translates TCSETS2? stdout:\n%s", p.stdout)
			}
			msg := p.stderr.String()
			t.Logf("%s", strings.TrimSpace(msg))
			for _, want := range []string{"250000 baud is not a standard termios rate", "TCGETS2", "use a standard rate such as 115200"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error lacks %q: %s", want, msg)
				}
			}
			if strings.Contains(msg, "panic") || strings.Contains(msg, "SIG") {
				t.Errorf("crashed: %s", msg)
			}

			cmd = tg.command(t, "serial", "--port", link, "--baud", "115200")
			cmd.Stdin = strings.NewReader("PING\n")
			p = start(t, "teleop serial", cmd)
			out, err := finish(t, p)
			if err != nil || !strings.Contains(out, "← OK 1") {
				t.Errorf("teleop serial at 115200: %v\n%s%s", err, out, p.stderr)
			}
		})
	}
}

// TestNoBreak: qemu-user does not translate TIOCSBRK either, and no Pi
// needs a break: nothing outside tests sends one.
func TestNoBreak(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "testdata") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return nil // not ours to judge here
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				if n.Sel.Name == "Break" || n.Sel.Name == "TIOCSBRK" || n.Sel.Name == "TCSBRKP" {
					t.Errorf("%s: %s: a serial break, which qemu-user cannot emulate and the link does not use", fset.Position(n.Pos()), n.Sel.Name)
				}
			}
			return true
		})
		return nil
	})
}
