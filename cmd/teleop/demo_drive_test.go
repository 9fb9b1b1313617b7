package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/teleop/teleop/configs"
	"github.com/teleop/teleop/demo"
	"github.com/teleop/teleop/devices/sim"
	"github.com/teleop/teleop/signaling/token"
)

// teleop drive in tmux (drive_test.go's helpers) against the demo stack:
// the real relay, the real agent and the simulated robot it drives.

// untilRobot polls the simulated robot until ok holds for its state, and
// calls each (nil: nothing) on every poll: a key to press again, as a
// keyboard's auto-repeat does while it is held.
func untilRobot(t *testing.T, r *sim.Robot, what string, each func(), ok func(sim.State) bool) sim.State {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		s := r.State()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("the simulated robot never showed %s: %+v", what, s)
		}
		if each != nil {
			each()
		}
		<-tick.C
	}
}

func TestDriveTheDemoInTmux(t *testing.T) {
	t.Parallel()
	st := startDemoStack(t, nil)
	rob := st.Robot()
	tok, err := st.Token("role=operator,name=alice", token.Publisher)
	if err != nil {
		t.Fatal(err)
	}
	r := startDrive(t, "--server", st.URL(), "--token", tok, "--hold", "1s", "--repeat-hold", "500ms")
	r.waitScreen(`connected to demo as alice · robot sim-1`)
	r.waitScreen(`RDY bat \d+\.\d V`) // the robot's telemetry, through the agent
	waitDeviceReady(t, st)

	// Hold w: the robot moves, and the status line shows the ok ack and
	// its latency.
	start := rob.State()
	press := func() { r.keys("w") }
	moved := untilRobot(t, rob, "it moving 10 cm forward", press, func(s sim.State) bool { return s.X-start.X > 0.1 && s.Linear > 0 })
	r.waitScreen(`drive \+0\.25 \+0\.00 · ack drive #\d+ ok \d+(\.\d)? ms`)
	t.Logf("the robot moved from x %.3f to %.3f m at %.2f m/s", start.X, moved.X, moved.Linear)

	// Release: the stop is acked and the robot's wheels stop.
	untilRobot(t, rob, "the wheels stopped", nil, func(s sim.State) bool { return s.Left == 0 && s.Right == 0 && s.Linear == 0 })
	r.waitScreen(`· stopped · ack stop #\d+ ok`)

	// e: the e-stop latches in the robot, and on screen with who did it.
	r.keys("e")
	latched := untilRobot(t, rob, "the e-stop latched", nil, func(s sim.State) bool { return s.Latched && s.Mode == sim.Estop })
	r.waitScreen(`E-STOP LATCHED by you \(c clears\)`)
	r.keys("w")
	r.waitScreen(`e-stop latched: press c to clear it before driving`)
	if s := rob.State(); s.X != latched.X || s.Linear != 0 {
		t.Fatalf("the robot moved while latched: x %.3f → %.3f, %.2f m/s", latched.X, s.X, s.Linear)
	}

	// c clears it in the robot and on screen; w drives again.
	r.keys("c")
	untilRobot(t, rob, "the e-stop cleared", nil, func(s sim.State) bool { return !s.Latched && s.Mode == sim.Ready })
	r.waitScreen(`ack clear #\d+ ok`)
	again := rob.State()
	untilRobot(t, rob, "it moving again", press, func(s sim.State) bool { return s.X-again.X > 0.05 })

	r.keys("q")
	if rc := r.wait(); rc != "0" {
		t.Fatalf("exit code %s; stderr:\n%s", rc, r.file("stderr"))
	}
	untilRobot(t, rob, "the stop at exit", nil, func(s sim.State) bool { return s.Linear == 0 && s.Left == 0 && s.Right == 0 })
	r.checkRestored()
	t.Logf("last screen:\n%s", r.screen())
}

// TestDriveTheDemoRejections: where the real agent refuses teleop drive,
// the status line says why, by name: another operator holds the lease.
// Then control passes with l, and w drives.
func TestDriveTheDemoRejections(t *testing.T) {
	t.Parallel()
	y := strings.Replace(string(configs.Demo), "\nsafety:\n", "\nsafety:\n  lease: exclusive\n  lease_idle: 10m\n", 1)
	st := startDemoStack(t, &demo.Options{Config: []byte(y), ConfigName: "exclusive.yaml"})
	rob := st.Robot()
	bobTok, err := st.Token("role=operator,name=bob", token.Publisher)
	if err != nil {
		t.Fatal(err)
	}
	waitDeviceReady(t, st)

	tok, err := st.Token("role=operator,name=alice", token.Publisher)
	if err != nil {
		t.Fatal(err)
	}
	r := startDrive(t, "--server", st.URL(), "--token", tok, "--hold", "1s", "--repeat-hold", "500ms")
	// Wide enough for a rejection, a note and the lease holder on one
	// status line: at 120 columns the holder is cut off while they show.
	r.must("resize-window", "-t", "drive", "-x", "200")
	r.waitScreen(`connected to demo as alice · robot sim-1`)

	// Bob takes control: the agent's status says so to everyone.
	bob := joinDemo(t, st.URL(), bobTok)
	robot := bob.robot().ConnectionID
	if a := bob.waitAck(bob.send("control", robot, `,"action":"acquire"`)); a.Status != "ok" {
		t.Fatalf("bob's acquire: %+v", a)
	}
	r.waitScreen(`control: bob`)
	start := rob.State()
	// w, then l (take control): both refused while bob holds it, each
	// with the agent's reason, bob by name.
	rejection := func(what string) {
		t.Helper()
		re := `rejected: [^·]*\(` + what + ` #\d+\)`
		line := regexp.MustCompile(re).FindString(r.waitScreen(re))
		if !strings.HasPrefix(line, "rejected: lease held by bob [lease]") {
			t.Errorf("%s: the screen says %q, want the lease held by bob", what, line)
		}
	}
	r.keys("w")
	rejection("drive")
	// The newest rejection shows: let the hold end (its stop is honoured)
	// before the control request.
	r.waitScreen(`· stopped · ack stop #\d+ ok`)
	r.keys("l")
	rejection("control")
	if s := rob.State(); s.X != start.X || s.Linear != 0 {
		t.Fatalf("the robot moved for a driver without the lease: x %.3f → %.3f", start.X, s.X)
	}

	// Bob lets go; l takes control, and w drives.
	bob.waitAck(bob.send("control", robot, `,"action":"release"`))
	r.waitScreen(`control: nobody`)
	r.keys("l")
	r.waitScreen(`control: you`)
	untilRobot(t, rob, "it moving for the lease holder", func() { r.keys("w") }, func(s sim.State) bool { return s.X-start.X > 0.05 })
	r.keys("q")
	if rc := r.wait(); rc != "0" {
		t.Fatalf("exit code %s; stderr:\n%s", rc, r.file("stderr"))
	}
	r.checkRestored()
	t.Logf("last screen:\n%s", r.screen())
}
