package web_test

// The console against the whole stack of `teleop demo`: the real relay
// serving it, the real agent (bridge) joined with role=robot,name=sim-1,
// and the simulated robot on a pty that the agent drives. What the
// operator does in the browser is checked where it lands, in the robot's
// state, and where the operator reads it, on the page.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/teleop/teleop/configs"
	"github.com/teleop/teleop/demo"
	"github.com/teleop/teleop/devices/sim"
	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/token"
)

// startDemo runs the demo stack on a free loopback port, with the robot on
// a private link, until the test ends. config nil is configs/demo.yaml.
func startDemo(t *testing.T, config []byte) *demo.Stack {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st, err := demo.Start(ln, &demo.Options{
		APIKey: apiKey, APISecret: apiSecret,
		Link:   filepath.Join(t.TempDir(), "sim"),
		Config: config, ConfigName: "test.yaml",
		Logger: slog.New(slog.NewTextHandler(tLog{t}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close the demo: %v", err)
		}
	})
	return st
}

type tLog struct{ t *testing.T }

func (w tLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// demoToken mints a token for the demo's session.
func demoToken(t *testing.T, st *demo.Stack, data string) string {
	t.Helper()
	tok, err := st.Token(data, token.Publisher)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// demoPeer is a Go operator in the demo's session.
func demoPeer(t *testing.T, st *demo.Stack, name, data string) *peer {
	t.Helper()
	p := &peer{t: t, name: name, wake: make(chan struct{}, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	p.s = signaling.NewSession(nil)
	p.s.OnSignal(p.record)
	if err := p.s.Connect(ctx, st.URL(), demoToken(t, st, data)); err != nil {
		t.Fatalf("%s: connect: %v", name, err)
	}
	t.Cleanup(func() { p.s.Close() })
	return p
}

// ackOf waits for the agent's ack of the signal with this id.
func (p *peer) ackOf(id int64) map[string]any {
	p.t.Helper()
	var a map[string]any
	p.waitUntil(fmt.Sprintf("the ack of #%d", id), func(sigs []signaling.Signal) bool {
		for _, s := range ofType(sigs, "ack") {
			var m map[string]any
			if json.Unmarshal([]byte(s.Data), &m) == nil && m["id"] == float64(id) {
				a = m
				return true
			}
		}
		return false
	})
	return a
}

// untilState polls the simulated robot until ok holds for its state.
func untilState(t *testing.T, r *sim.Robot, what string, ok func(sim.State) bool) sim.State {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		s := r.State()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("the simulated robot never showed %s: %+v", what, s)
		}
		<-tick.C
	}
}

// ready waits until the console shows the robot, its device ready (the
// agent's status: drives before the handshake are rejected not_ready) and
// its telemetry.
func (p *page) ready() {
	p.t.Helper()
	p.connected()
	p.until("the robot listed", `document.getElementById('target').value !== ''`)
	p.until("the device ready", `/ready|failsafe/.test(document.getElementById('devices').textContent)`)
	p.until("the robot's telemetry", `document.getElementById('tlm-bat').textContent.endsWith(' V')`)
}

// poseX is the x of the pose the console shows, from telemetry.
const poseX = `parseFloat(document.getElementById('tlm-pose').textContent)`

// TestDemoConsole drives the simulated robot from the console through the
// real agent: hold W and it moves (acks with their latency, the pose in
// the robot and on the page), let go and it stops, E-STOP latches it and
// drive is refused until Clear, and then it drives again.
func TestDemoConsole(t *testing.T) {
	st := startDemo(t, nil)
	rob := st.Robot()
	b := browser(t)
	p := open(t, b, "desktop", st.ConsoleURL(demoToken(t, st, demo.OperatorData)), desktop)
	p.ready()
	if got := js[string](p, `document.querySelector('#people li[data-kind=robot] strong').textContent`); got != "sim-1" {
		t.Errorf("the robot is listed as %q, want sim-1", got)
	}

	// Hold W: drives are acked ok with a latency, the robot moves, and the
	// console's pose follows it.
	start := rob.State()
	x0 := js[float64](p, poseX)
	p.keyDown(keyW)
	p.until("an ack latency", `/^\d+$/.test(document.getElementById('latency').textContent)`)
	p.until("an ok drive ack", `/^drive #\d+ ok$/.test(document.getElementById('ack-last').textContent)`)
	moved := untilState(t, rob, "it moving 10 cm forward", func(s sim.State) bool { return s.X-start.X > 0.1 && s.Linear > 0 })
	p.until("the console's pose moving", fmt.Sprintf(`%s > %g`, poseX, x0+0.05))
	p.until("wheel speeds in telemetry", `document.getElementById('tlm-wheels').textContent !== '0.00 / 0.00 m/s'`)
	t.Logf("moving: robot at x %.3f m (from %.3f), setpoint %.2f m/s; console: pose %q, wheels %q, ack %q, latency %s ms, device %q",
		moved.X, start.X, moved.Linear, p.text("tlm-pose"), p.text("tlm-wheels"), p.text("ack-last"), p.text("latency"), p.text("ack-device"))
	p.screenshot("demo-desktop-driving-1280x800")

	// Let go: the robot stops, and the console shows it stopped.
	p.keyUp(keyW)
	untilState(t, rob, "the wheels stopped", func(s sim.State) bool { return s.Left == 0 && s.Right == 0 && s.Linear == 0 })
	p.until("the console's wheels stopped", `document.getElementById('tlm-wheels').textContent === '0.00 / 0.00 m/s'`)

	// E-STOP: latched in the robot; the console says so and sends no drive.
	p.click("#estop")
	latched := untilState(t, rob, "the e-stop latched", func(s sim.State) bool { return s.Latched && s.Mode == sim.Estop })
	p.until("the e-stop banner", `!document.getElementById('banner-estop').hidden && document.body.dataset.estop === 'latched'`)
	p.until("the agent's status: latched by you", `document.getElementById('st-estop').textContent === 'LATCHED by you'`)
	p.until("the device e-stopped", `document.getElementById('devices').textContent.includes('estopped')`)
	p.until("the firmware's state in telemetry", `document.getElementById('tlm-st').textContent === 'e-stop'`)
	p.keyDown(keyW)
	p.until("drive refused in the console", `document.getElementById('drive-state').textContent.includes('e-stop latched')`)
	// The agent refuses drive too, from anyone, until it is cleared.
	bob := demoPeer(t, st, "bob", "role=operator,name=bob")
	robot := bob.connectionNamed(demo.RobotData)
	bob.send("drive", `{"id":7,"linear":0.3,"angular":0}`, robot)
	if a := bob.ackOf(7); a["status"] != "rejected" || a["code"] != "estop_latched" || a["reason"] == "" {
		t.Errorf("a drive while the e-stop is latched was acked %v, want rejected, estop_latched, with a reason", a)
	} else {
		t.Logf("a drive while latched: %v", a)
	}
	p.screenshot("demo-desktop-estop-1280x800")
	p.keyUp(keyW)
	if s := rob.State(); s.Mode != sim.Estop || s.Linear != 0 || s.X != latched.X {
		t.Errorf("while latched the robot is %v at %.2f m/s, x %.3f (latched at %.3f)", s.Mode, s.Linear, s.X, latched.X)
	}

	// Clear: released in the robot and on the page; W drives again.
	p.click("#clear")
	untilState(t, rob, "the e-stop cleared", func(s sim.State) bool { return !s.Latched && s.Mode == sim.Ready })
	p.until("the banner gone", `document.getElementById('banner-estop').hidden`)
	p.until("the agent's status: released", `document.getElementById('st-estop').textContent === 'released'`)
	again := rob.State()
	p.keyDown(keyW)
	untilState(t, rob, "it moving again", func(s sim.State) bool { return s.X-again.X > 0.05 && s.Linear > 0 })
	p.keyUp(keyW)
	untilState(t, rob, "the wheels stopped again", func(s sim.State) bool { return s.Left == 0 && s.Right == 0 })

	// The same robot from a phone.
	ph := open(t, b, "phone", st.ConsoleURL(demoToken(t, st, "role=operator,name=you-phone")), phone)
	ph.ready()
	before := rob.State()
	ph.keyDown(keyW)
	untilState(t, rob, "it moving for the phone", func(s sim.State) bool { return s.X-before.X > 0.05 && s.Linear > 0 })
	ph.until("an ok drive ack on the phone", `/^drive #\d+ ok$/.test(document.getElementById('ack-last').textContent)`)
	ph.screenshot("demo-phone-390x844")
	js[any](ph, `document.getElementById('tlm-pose').scrollIntoView({block: 'center'}), true`)
	ph.screenshot("demo-phone-390x844-telemetry")
	ph.keyUp(keyW)
	untilState(t, rob, "the wheels stopped for the phone", func(s sim.State) bool { return s.Left == 0 && s.Right == 0 })
}

// exclusiveLease is configs/demo.yaml with the single-driver lease on, and
// an idle limit no test outlasts.
func exclusiveLease(t *testing.T) []byte {
	t.Helper()
	y := strings.Replace(string(configs.Demo), "\nsafety:\n", "\nsafety:\n  lease: exclusive\n  lease_idle: 10m\n", 1)
	if y == string(configs.Demo) {
		t.Fatal("configs/demo.yaml has no safety section to turn the lease on in")
	}
	return []byte(y)
}

// TestDemoConsoleRejections: where the real agent refuses the operator, the
// console says so with the agent's reason, while the key is held: another
// operator holds the lease, and the robot is unplugged.
func TestDemoConsoleRejections(t *testing.T) {
	st := startDemo(t, exclusiveLease(t))
	rob := st.Robot()
	b := browser(t)
	p := open(t, b, "desktop", st.ConsoleURL(demoToken(t, st, demo.OperatorData)), desktop)
	p.ready()

	// Bob holds the lease: the console's drive is rejected, and it shows
	// why, from whom, with the code.
	bob := demoPeer(t, st, "bob", "role=operator,name=bob")
	robot := bob.connectionNamed(demo.RobotData)
	bob.send("control", `{"id":1,"action":"acquire"}`, robot)
	if a := bob.ackOf(1); a["status"] != "ok" {
		t.Fatalf("bob's acquire: %v", a)
	}
	p.until("the lease holder", `document.getElementById('lease-holder').textContent === 'bob'`)
	start := rob.State()
	p.keyDown(keyW)
	p.until("the rejection", `!document.getElementById('rejected').hidden && document.getElementById('rejected').textContent.includes('lease held by')`)
	shown := p.text("rejected")
	t.Logf("lease: the console shows %q", shown)
	if !strings.Contains(shown, "rejected by sim-1") || !strings.Contains(shown, "(lease)") {
		t.Errorf("rejection %q, want who rejected it and the code", shown)
	}
	if !strings.Contains(shown, "lease held by bob") || strings.Contains(shown, bob.id()) {
		t.Errorf("rejection %q, want the holder by name, not by connection ID %s", shown, bob.id())
	}
	p.until("rejections counted", `/^0 \/ [1-9]\d*$/.test(document.getElementById('ack-counts').textContent)`)
	p.screenshot("demo-desktop-lease-rejected-1280x800")
	p.keyUp(keyW)
	if s := rob.State(); s.X != start.X || s.Linear != 0 {
		t.Errorf("the robot moved for a driver without the lease: x %.3f → %.3f", start.X, s.X)
	}

	// Take control while bob has it: refused, with the reason.
	p.click("#acquire")
	p.until("the control rejection", `document.getElementById('rejected').textContent.startsWith('control #')`)
	t.Logf("take control: the console shows %q", p.text("rejected"))

	// Bob lets go; the console takes control and drives.
	bob.send("control", `{"id":2,"action":"release"}`, robot)
	bob.ackOf(2)
	p.until("nobody holds the lease", `document.getElementById('lease-holder').textContent === 'nobody'`)
	p.click("#acquire")
	p.until("the console holds the lease", `document.getElementById('lease-holder').textContent === 'you'`)
	p.keyDown(keyW)
	untilState(t, rob, "it moving for the lease holder", func(s sim.State) bool { return s.X-start.X > 0.05 })
	p.keyUp(keyW)
	untilState(t, rob, "the wheels stopped", func(s sim.State) bool { return s.Left == 0 && s.Right == 0 })

	// The robot is unplugged: the console shows the device's state, and a
	// held key is rejected with the agent's reason until it is back.
	rob.Faults().Unplug(0)
	p.until("the device gone", `!/ready|failsafe/.test(document.getElementById('devices').textContent)`)
	t.Logf("unplugged: devices %q", p.text("devices"))
	p.keyDown(keyW)
	p.until("the not-ready rejection", `document.getElementById('rejected').textContent.includes('(not_ready)')`)
	t.Logf("unplugged: the console shows %q", p.text("rejected"))
	p.screenshot("demo-desktop-unplugged-1280x800")
	p.keyUp(keyW)
	if err := rob.Faults().Replug(); err != nil {
		t.Fatal(err)
	}
	p.until("the device back", `/ready|failsafe/.test(document.getElementById('devices').textContent)`)
	back := rob.State()
	p.keyDown(keyW)
	untilState(t, rob, "it moving after the replug", func(s sim.State) bool { return s.X-back.X > 0.05 })
	p.keyUp(keyW)
}
