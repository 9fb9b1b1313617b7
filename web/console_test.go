package web_test

// The console in a real browser (headless chromium) against a real relay,
// with Go clients of the session as the robot and as observers. The robot
// here is a test double that records what the console sends and answers
// with ack, telemetry and status signals the way the agent will; the test
// against the real agent and the simulated robot belongs to `teleop demo`.

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/token"
)

const (
	robotData    = "role=robot,name=rover-1"
	operatorData = "role=operator,name=alice"
)

// connected waits until the console says it is connected.
func (p *page) connected() {
	p.t.Helper()
	p.until("connected", `document.getElementById('conn-state').textContent === 'connected'`)
}

// afterMarker makes the console send a control signal (Take control) and
// waits for the robot to receive it. Signals from one sender arrive in
// order, so whatever the console sent before the click has arrived by then.
func afterMarker(p *page, robot *peer) []signaling.Signal {
	p.t.Helper()
	n := len(ofType(robot.signals(), "control"))
	p.click("#acquire")
	return robot.waitUntil("the control marker", func(s []signaling.Signal) bool { return len(ofType(s, "control")) > n })
}

// between returns the signals after the last one of type from (exclusive)
// and before the last one of type to.
func between(sigs []signaling.Signal, from, to string) []signaling.Signal {
	start, end := -1, len(sigs)
	for i, s := range sigs {
		if s.Type == from {
			start = i
		}
	}
	for i := len(sigs) - 1; i > start; i-- {
		if sigs[i].Type == to {
			end = i
			break
		}
	}
	return sigs[start+1 : end]
}

func TestConsoleConnectsAndListsConnections(t *testing.T) {
	h := newHarness(t)
	robot := h.peer("robot", robotData, token.Publisher)
	h.peer("observer", "role=observer,name=watcher", token.Subscriber)
	b := browser(t)

	p := open(t, b, "desktop", h.consoleURL(h.token(operatorData, token.Publisher)), desktop)
	p.connected()
	p.until("three connections listed", `document.querySelectorAll('#people li').length === 3`)

	kinds := js[map[string]string](p, `Object.fromEntries([...document.querySelectorAll('#people li')].map(li => [li.querySelector('strong').textContent, li.dataset.kind + (li.querySelector('.badge.you') ? ',you' : '')]))`)
	want := map[string]string{"rover-1": "robot", "alice": "operator,you", "watcher": "operator"}
	for name, kind := range want {
		if kinds[name] != kind {
			t.Errorf("connection %s listed as %q, want %q (all: %v)", name, kinds[name], kind, kinds)
		}
	}
	if data := p.text("people"); !strings.Contains(data, robotData) || !strings.Contains(data, "role=observer,name=watcher") {
		t.Errorf("connection data not shown: %q", data)
	}
	if got := js[string](p, `document.getElementById('target').value`); got != robot.id() {
		t.Errorf("drive target %q, want the only robot %q", got, robot.id())
	}
	if !js[bool](p, `document.getElementById('banner-robot').hidden`) {
		t.Error("the no-robot banner shows although a robot is in the session")
	}

	// A robot that leaves is gone from the list, and the console says so.
	robot.s.Close()
	p.until("robot gone", `document.querySelectorAll('#people li[data-kind=robot]').length === 0`)
	p.until("no-robot banner", `!document.getElementById('banner-robot').hidden`)
}

// TestConsoleTokenInQuery: a ?token= works too, and leaves the address bar
// for the fragment.
func TestConsoleTokenInQuery(t *testing.T) {
	h := newHarness(t)
	h.peer("robot", robotData, token.Publisher)
	b := browser(t)
	tok := h.token(operatorData, token.Publisher)
	p := open(t, b, "query", h.proxy.URL()+"/?token="+tok, desktop)
	p.connected()
	if s := js[string](p, `location.search`); s != "" {
		t.Errorf("token still in the query: %q", s)
	}
	if hash := js[string](p, `location.hash`); hash != "#token="+tok {
		t.Errorf("fragment %q, want the token", hash)
	}
}

func TestConsoleKeyboardDrives(t *testing.T) {
	h := newHarness(t)
	robot := h.peer("robot", robotData, token.Publisher)
	b := browser(t)
	p := open(t, b, "desktop", h.consoleURL(h.token(operatorData, token.Publisher)), desktop)
	p.connected()
	p.until("robot listed", `document.getElementById('target').value !== ''`)

	hold := func(k key, n int) []signaling.Signal {
		t.Helper()
		before := len(ofType(robot.signals(), "drive"))
		p.keyDown(k)
		got := robot.waitUntil(fmt.Sprintf("%d drives", n), func(s []signaling.Signal) bool { return len(ofType(s, "drive"))-before >= n })
		p.keyUp(k)
		return ofType(got, "drive")[before:]
	}

	// W: forward at 0.25 m/s (speed step 2 of 4, max 0.5 m/s), at 20 Hz.
	drives := hold(keyW, 20)
	var last int64
	for i, d := range drives {
		v := decode(t, d)
		if v.ID <= last {
			t.Errorf("drive %d: id %d after %d, want increasing", i, v.ID, last)
		}
		last = v.ID
		if v.Linear == nil || *v.Linear != 0.25 || v.Angular == nil || *v.Angular != 0 {
			t.Errorf("drive %d: %s, want linear 0.25 angular 0", i, d.Data)
		}
		if d.To != robot.id() {
			t.Errorf("drive %d sent to %q, want the robot %q", i, d.To, robot.id())
		}
	}
	// The rate is the deadman's timer period, not something to time on a
	// shared machine: load can only slow a timer down. So check the
	// configured period exactly, and that the console never sends faster
	// than it (a flood would show as more drives than periods elapsed).
	if period := js[string](p, `document.getElementById('drive-state').dataset.periodMs`); period != "50" {
		t.Errorf("drive period %s ms, want 50 (20 Hz)", period)
	}
	span := drives[len(drives)-1].Received.Sub(drives[0].Received)
	rate := float64(len(drives)-1) / span.Seconds()
	t.Logf("drive rate %.1f Hz over %d signals (informational)", rate, len(drives))
	// Arrival times can bunch up in transit, hence the margin; a console
	// that sent per key repeat or per animation frame would still fail.
	if maxDrives := int(1.5*float64(span)/float64(50*time.Millisecond)) + 2; len(drives) > maxDrives {
		t.Errorf("%d drives arrived within %v, far more than one per 50 ms period (at most %d)", len(drives), span, maxDrives)
	}

	// Release: exactly one stop, with a newer id, then silence.
	got := robot.waitUntil("the stop", func(s []signaling.Signal) bool { return len(ofType(s, "stop")) == 1 })
	stop := decode(t, ofType(got, "stop")[0])
	if stop.ID <= last {
		t.Errorf("stop id %d, want more than the last drive's %d", stop.ID, last)
	}
	if s := ofType(got, "stop")[0]; s.To != robot.id() {
		t.Errorf("stop to %q, want the robot", s.To)
	}
	p.until("idle", `document.getElementById('drive-state').dataset.held === 'false'`)
	p.waitIdle(300 * time.Millisecond) // six drive periods
	after := between(afterMarker(p, robot), "stop", "control")
	if len(after) != 0 {
		t.Errorf("after the stop the console sent %s, want nothing", summary(after))
	}

	// Left arrow turns left (counter-clockwise, positive), S backs up.
	for _, tc := range []struct {
		k        key
		lin, ang float64
	}{{keyLeft, 0, 0.75}, {keyS, -0.25, 0}, {keyA, 0, 0.75}, {keyUp, 0.25, 0}} {
		stops := len(ofType(robot.signals(), "stop"))
		for _, d := range hold(tc.k, 3) {
			v := decode(t, d)
			if *v.Linear != tc.lin || *v.Angular != tc.ang {
				t.Errorf("%s: drive %s, want linear %v angular %v", tc.k.code, d.Data, tc.lin, tc.ang)
			}
		}
		robot.waitUntil(tc.k.code+" stop", func(s []signaling.Signal) bool { return len(ofType(s, "stop")) == stops+1 })
	}
	p.waitIdle(150 * time.Millisecond)
	got = afterMarker(p, robot)
	if n := len(ofType(got, "stop")); n != 5 {
		t.Errorf("%d stops for 5 releases", n)
	}

	// Shift is one speed step up while held; the digits pick the step.
	for _, tc := range []struct {
		name  string
		digit *key
		shift bool
		lin   float64
	}{
		{"shift", nil, true, 0.375},
		{"digit 4", &key4, false, 0.5},
		{"digit 4 and shift", nil, true, 0.5}, // no step above the top
		{"digit 1", &key1, false, 0.125},
	} {
		if tc.digit != nil {
			p.keyDown(*tc.digit)
			p.keyUp(*tc.digit)
		}
		if tc.shift {
			p.keyDown(keyShift)
		}
		stops := len(ofType(robot.signals(), "stop"))
		for _, d := range hold(keyW, 3) {
			if v := decode(t, d); *v.Linear != tc.lin {
				t.Errorf("%s: drive %s, want linear %v", tc.name, d.Data, tc.lin)
			}
		}
		if tc.shift {
			p.keyUp(keyShift)
		}
		robot.waitUntil(tc.name+" stop", func(s []signaling.Signal) bool { return len(ofType(s, "stop")) == stops+1 })
	}
	p.keyDown(key2)
	p.keyUp(key2)
	drives = ofType(robot.signals(), "drive")

	// Space while driving: one stop at once, and W still held drives no more.
	stops := len(ofType(robot.signals(), "stop"))
	p.keyDown(keyW)
	robot.waitUntil("driving", func(s []signaling.Signal) bool { return len(ofType(s, "drive")) > len(drives)+1 })
	p.keyDown(keySpace)
	p.keyUp(keySpace)
	robot.waitUntil("the stop for Space", func(s []signaling.Signal) bool { return len(ofType(s, "stop")) == stops+1 })
	p.until("stopped", `document.getElementById('drive-state').textContent.startsWith('stopped')`)
	p.waitIdle(200 * time.Millisecond)
	got = afterMarker(p, robot)
	if after := between(got, "stop", "control"); len(after) != 0 {
		t.Errorf("after Space the console sent %s with W still held, want nothing", summary(after))
	}
	p.keyUp(keyW)
}

func TestConsoleEstop(t *testing.T) {
	h := newHarness(t)
	robot := h.peer("robot", robotData, token.Publisher)
	observer := h.peer("observer", "role=observer,name=watcher", token.Subscriber)
	b := browser(t)
	p := open(t, b, "desktop", h.consoleURL(h.token(operatorData, token.Publisher)), desktop)
	p.connected()
	p.until("robot listed", `document.getElementById('target').value !== ''`)

	// Driving, then Esc: the e-stop goes to everyone, and replaces the stop.
	p.keyDown(keyW)
	robot.waitUntil("driving", func(s []signaling.Signal) bool { return len(ofType(s, "drive")) >= 3 })
	p.keyDown(keyEscape)
	p.keyUp(keyEscape)
	got := robot.waitUntil("the e-stop", func(s []signaling.Signal) bool { return len(ofType(s, "estop")) == 1 })
	e := ofType(got, "estop")[0]
	if e.To != "" {
		t.Errorf("e-stop sent to %q only, want every connection", e.To)
	}
	if d := decode(t, e); d.ID == 0 {
		t.Errorf("e-stop data %q has no id", e.Data)
	}
	observer.waitUntil("the e-stop (sent to all)", func(s []signaling.Signal) bool { return len(ofType(s, "estop")) == 1 })
	p.until("e-stop banner", `!document.getElementById('banner-estop').hidden && document.body.dataset.estop === 'latched'`)

	// Latched: W held or pressed again drives nothing.
	p.keyUp(keyW)
	p.keyDown(keyW)
	p.until("suppressed", `document.getElementById('drive-state').textContent.includes('e-stop latched')`)
	p.waitIdle(200 * time.Millisecond)
	p.keyUp(keyW)
	got = afterMarker(p, robot)
	if after := between(got, "estop", "control"); len(after) != 0 {
		t.Errorf("after the e-stop the console sent %s, want nothing", summary(after))
	}

	// Clear goes to the robot; then W drives again.
	p.click("#clear")
	got = robot.waitUntil("clear", func(s []signaling.Signal) bool { return len(ofType(s, "clear")) == 1 })
	if c := ofType(got, "clear")[0]; c.To != robot.id() {
		t.Errorf("clear sent to %q, want the robot", c.To)
	}
	p.until("e-stop banner gone", `document.getElementById('banner-estop').hidden`)
	n := len(ofType(got, "drive"))
	p.keyDown(keyW)
	robot.waitUntil("driving after clear", func(s []signaling.Signal) bool { return len(ofType(s, "drive")) > n })
	p.keyUp(keyW)

	// The e-stop button does the same as Esc.
	p.click("#estop")
	observer.waitUntil("the button's e-stop", func(s []signaling.Signal) bool { return len(ofType(s, "estop")) == 2 })
}

func TestConsoleRefusedToken(t *testing.T) {
	h := newHarness(t)
	b := browser(t)
	expired, err := token.New(apiKey, apiSecret, h.session, &token.Options{
		ConnectionData: operatorData, Now: time.Now().Add(-2 * time.Hour), TTL: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	forged, err := token.New(apiKey, "another-secret-another-secret-another", h.session, &token.Options{ConnectionData: operatorData})
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ tok, want string }{
		"expired": {expired, "Your token was refused: token expired at "},
		"forged":  {forged, "Your token was refused: "},
		"garbage": {"not-a-token", "Your token was refused: "},
	} {
		t.Run(name, func(t *testing.T) {
			p := open(t, b, name, h.consoleURL(tc.tok), desktop)
			p.until("disconnected", `document.getElementById('conn-state').textContent === 'disconnected'`)
			msg := p.text("banner-error")
			t.Logf("%s: %q", name, msg)
			if !strings.HasPrefix(msg, tc.want) {
				t.Errorf("banner %q, want it to start with %q", msg, tc.want)
			}
			if js[bool](p, `document.getElementById('join').hidden`) {
				t.Error("no form to paste a new token into")
			}
			if name == "expired" {
				p.screenshot("desktop-refused-1280x800")
			}
		})
	}
}

func TestConsoleNoRobot(t *testing.T) {
	h := newHarness(t)
	b := browser(t)
	p := open(t, b, "desktop", h.consoleURL(h.token(operatorData, token.Publisher)), desktop)
	p.connected()
	p.until("no-robot banner", `!document.getElementById('banner-robot').hidden`)
	if msg := p.text("banner-robot"); !strings.Contains(msg, "No robot in this session yet — start the agent") {
		t.Errorf("banner %q", msg)
	}
	p.keyDown(keyW)
	p.until("not sending", `document.getElementById('drive-state').textContent.includes('no robot')`)
	p.keyUp(keyW)

	robot := h.peer("robot", robotData, token.Publisher)
	p.until("banner gone", `document.getElementById('banner-robot').hidden`)
	p.until("robot listed", `document.getElementById('target').value === '`+robot.id()+`'`)
	got := afterMarker(p, robot)
	if drives := ofType(got, "drive"); len(drives) != 0 {
		t.Errorf("the robot received %d drives held from before it joined", len(drives))
	}
}

// TestConsoleChoosesAmongRobots: with two robots the operator picks one,
// and nothing moves until they do.
func TestConsoleChoosesAmongRobots(t *testing.T) {
	h := newHarness(t)
	r1 := h.peer("rover-1", robotData, token.Publisher)
	r2 := h.peer("rover-2", "role=robot,name=rover-2", token.Publisher)
	b := browser(t)
	p := open(t, b, "desktop", h.consoleURL(h.token(operatorData, token.Publisher)), desktop)
	p.connected()
	p.until("two robots", `document.querySelectorAll('#target option').length === 3`)
	p.keyDown(keyW)
	p.until("asks to pick", `document.getElementById('drive-state').textContent.includes('pick a robot')`)
	p.keyUp(keyW)

	js[any](p, fmt.Sprintf(`(() => { const s = document.getElementById('target'); s.value = %q; s.dispatchEvent(new Event('change')); return true; })()`, r2.id()))
	p.keyDown(keyW)
	got := r2.waitUntil("drives", func(s []signaling.Signal) bool { return len(ofType(s, "drive")) >= 3 })
	p.keyUp(keyW)
	if d := ofType(got, "drive")[0]; d.To != r2.id() {
		t.Errorf("drive to %q, want rover-2", d.To)
	}
	r2.waitUntil("stop", func(s []signaling.Signal) bool { return len(ofType(s, "stop")) == 1 })
	if n := len(ofType(r1.signals(), "drive")); n != 0 {
		t.Errorf("rover-1 received %d drives", n)
	}
}

// TestConsoleResumes cuts the browser's sockets: the console shows
// reconnecting, sends no drive while down, resumes the same connection and
// gets what it missed from the relay's replay buffer.
func TestConsoleResumes(t *testing.T) {
	h := newHarness(t)
	robot := h.peer("robot", robotData, token.Publisher)
	b := browser(t)
	p := open(t, b, "desktop", h.consoleURL(h.token(operatorData, token.Publisher)), desktop)
	p.connected()
	console := robot.connectionNamed("name=alice")
	p.until("robot listed", `document.getElementById('target').value !== ''`)

	h.proxy.drop(true)
	p.until("reconnecting", `document.getElementById('conn-state').textContent === 'reconnecting'`)
	if d := p.text("conn-detail"); !strings.Contains(d, "retrying in") {
		t.Errorf("detail %q, want when it retries", d)
	}
	p.screenshot("desktop-reconnecting-1280x800")

	// While down: W held drives nothing, and the robot's telemetry waits
	// in the relay for the console.
	p.keyDown(keyW)
	p.until("held but not sending", `document.getElementById('drive-state').textContent.includes('not connected')`)
	robot.send("telemetry", `{"st":"RDY","bat":11.1,"x":0.5,"y":0.25,"th":0}`, "")
	p.waitIdle(300 * time.Millisecond)
	p.keyUp(keyW)

	h.proxy.allow()
	p.connected()
	p.until("replayed telemetry", `document.getElementById('tlm-bat').textContent === '11.10 V'`)
	p.until("resumed in the log", `document.getElementById('log').textContent.includes('resumed the connection')`)
	if id := js[string](p, `document.querySelector('#people li .badge.you').closest('li').dataset.id`); id != console {
		t.Errorf("after the drop the console is connection %q, want the same %q", id, console)
	}
	got := afterMarker(p, robot)
	for _, typ := range []string{"drive", "stop"} {
		if n := len(ofType(got, typ)); n != 0 {
			t.Errorf("the robot received %d %s signals from a key held while the console was down", n, typ)
		}
	}

	// Driving works again after the resume.
	p.keyDown(keyW)
	robot.waitUntil("driving again", func(s []signaling.Signal) bool { return len(ofType(s, "drive")) >= 2 })
	p.keyUp(keyW)
	robot.waitUntil("stop", func(s []signaling.Signal) bool { return len(ofType(s, "stop")) == 1 })
}

// TestConsoleReleaseWhileDown: the stop of a hold that ends while the
// socket is down is sent once the console is back; drives are not.
func TestConsoleReleaseWhileDown(t *testing.T) {
	h := newHarness(t)
	robot := h.peer("robot", robotData, token.Publisher)
	b := browser(t)
	p := open(t, b, "desktop", h.consoleURL(h.token(operatorData, token.Publisher)), desktop)
	p.connected()
	p.until("robot listed", `document.getElementById('target').value !== ''`)

	p.keyDown(keyW)
	robot.waitUntil("driving", func(s []signaling.Signal) bool { return len(ofType(s, "drive")) >= 3 })
	h.proxy.drop(true)
	p.until("reconnecting", `document.getElementById('conn-state').textContent === 'reconnecting'`)
	p.keyUp(keyW)
	drives := len(ofType(robot.signals(), "drive"))
	h.proxy.allow()
	p.connected()
	got := afterMarker(p, robot)
	if n := len(ofType(got, "stop")); n != 1 {
		t.Errorf("%d stops after the reconnect, want the one stop of the release: %s", n, summary(got))
	}
	if n := len(ofType(got, "drive")); n != drives {
		t.Errorf("%d drives arrived after the drop", n-drives)
	}
}

func TestConsoleForceDisconnected(t *testing.T) {
	h := newHarness(t)
	mod := h.peer("moderator", "role=supervisor,name=boss", token.Moderator)
	b := browser(t)
	p := open(t, b, "desktop", h.consoleURL(h.token(operatorData, token.Publisher)), desktop)
	p.connected()
	ctx := p.ctx
	if err := mod.s.ForceDisconnect(ctx, mod.connectionNamed("name=alice")); err != nil {
		t.Fatal(err)
	}
	p.until("disconnected", `document.getElementById('conn-state').textContent === 'disconnected'`)
	if msg := p.text("banner-error"); !strings.Contains(msg, "removed from the session by a moderator") {
		t.Errorf("banner %q", msg)
	}
	p.waitIdle(600 * time.Millisecond) // longer than the first retry would wait
	if s := p.text("conn-state"); s != "disconnected" {
		t.Errorf("after a force-disconnect the console is %q, want it to stay disconnected", s)
	}
}

// TestConsoleModeratorRemoves: a moderator's console can remove others.
func TestConsoleModeratorRemoves(t *testing.T) {
	h := newHarness(t)
	other := h.peer("other", "role=operator,name=bob", token.Publisher)
	b := browser(t)
	p := open(t, b, "desktop", h.consoleURL(h.token("role=supervisor,name=boss", token.Moderator)), desktop)
	p.connected()
	p.until("remove button", `document.querySelector('#people li[data-id="`+other.id()+`"] button') !== null`)
	p.click(`#people li[data-id="` + other.id() + `"] button`)
	select {
	case <-other.s.Done():
	case <-time.After(waitFor):
		t.Fatal("bob was not removed")
	}
	p.until("bob gone", `document.querySelector('#people li[data-id="`+other.id()+`"]') === null`)
}

func TestConsoleJoystick(t *testing.T) {
	h := newHarness(t)
	robot := h.peer("robot", robotData, token.Publisher)
	b := browser(t)

	t.Run("mouse", func(t *testing.T) {
		p := open(t, b, "mouse", h.consoleURL(h.token(operatorData, token.Publisher)), desktop)
		p.connected()
		p.until("robot listed", `document.getElementById('target').value !== ''`)
		x, y := p.center("#stick")
		before := len(ofType(robot.signals(), "drive"))
		stops := len(ofType(robot.signals(), "stop"))
		p.do(chromedp.MouseEvent(chromedp.MousePressed, x, y, chromedp.ButtonLeft))
		// Up and a little left: forward, turning left.
		p.do(chromedp.MouseEvent(chromedp.MouseMoved, x-20, y-80, chromedp.ButtonLeft))
		p.do(chromedp.MouseEvent(chromedp.MouseMoved, x-25, y-400, chromedp.ButtonLeft)) // outside the stick: captured, clamped
		got := robot.waitUntil("joystick drives", func(s []signaling.Signal) bool { return len(ofType(s, "drive")) >= before+8 })
		p.do(chromedp.MouseEvent(chromedp.MouseReleased, x-25, y-400, chromedp.ButtonLeft))
		v := decode(t, ofType(got, "drive")[len(ofType(got, "drive"))-1])
		if *v.Linear <= 0.2 || *v.Linear > 0.25 || *v.Angular <= 0 {
			t.Errorf("joystick up-left: linear %v angular %v, want forward (≤ 0.25) and left", *v.Linear, *v.Angular)
		}
		robot.waitUntil("stop on release", func(s []signaling.Signal) bool { return len(ofType(s, "stop")) == stops+1 })
		p.until("knob back", `getComputedStyle(document.querySelector('#stick .knob')).transform.endsWith('0, 0)')`)
	})

	t.Run("touch", func(t *testing.T) {
		p := open(t, b, "touch", h.consoleURL(h.token("role=operator,name=phone", token.Publisher)), phone)
		p.connected()
		p.until("robot listed", `document.getElementById('target').value !== ''`)
		js[any](p, `document.getElementById('stick').scrollIntoView({block: 'center'}), true`)
		x, y := p.center("#stick")
		before := len(ofType(robot.signals(), "drive"))
		stops := len(ofType(robot.signals(), "stop"))
		touch := func(typ input.DispatchTouchEventType, x, y float64) chromedp.Action[chromedp.Void] {
			return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
				pts := []*input.TouchPoint{}
				if typ != input.DispatchTouchEventTypeTouchEnd {
					pts = append(pts, &input.TouchPoint{X: x, Y: y, ID: ptr(1.0), RadiusX: ptr(5.0), RadiusY: ptr(5.0), Force: ptr(1.0)})
				}
				_, err := chromedp.Call(ctx, input.DispatchTouchEvent, input.DispatchTouchEventParams{Type: typ, TouchPoints: pts})
				return err
			})
		}
		p.do(touch(input.DispatchTouchEventTypeTouchStart, x, y), touch(input.DispatchTouchEventTypeTouchMove, x, y+40), touch(input.DispatchTouchEventTypeTouchMove, x, y+90))
		got := robot.waitUntil("touch drives", func(s []signaling.Signal) bool { return len(ofType(s, "drive")) >= before+5 })
		p.do(touch(input.DispatchTouchEventTypeTouchEnd, 0, 0))
		v := decode(t, ofType(got, "drive")[len(ofType(got, "drive"))-1])
		if *v.Linear >= 0 || math.Abs(*v.Angular) > 0.01 {
			t.Errorf("touch down: linear %v angular %v, want backwards, straight", *v.Linear, *v.Angular)
		}
		robot.waitUntil("stop on lift", func(s []signaling.Signal) bool { return len(ofType(s, "stop")) == stops+1 })
	})
}

func ptr[T any](v T) *T { return &v }

// TestConsoleGamepad stands a scripted pad in for navigator.getGamepads:
// sticks do nothing until a shoulder button (the deadman) is held.
func TestConsoleGamepad(t *testing.T) {
	h := newHarness(t)
	robot := h.peer("robot", robotData, token.Publisher)
	b := browser(t)
	p := open(t, b, "desktop", h.consoleURL(h.token(operatorData, token.Publisher)), desktop)
	p.connected()
	p.until("robot listed", `document.getElementById('target').value !== ''`)
	js[any](p, `(() => {
	  const btn = () => ({pressed: false, value: 0});
	  window.pad = {id: 'Scripted pad (STANDARD GAMEPAD)', index: 0, connected: true, mapping: 'standard',
	    axes: [0, 0, 0, 0], buttons: Array.from({length: 17}, btn)};
	  navigator.getGamepads = () => [window.pad, null, null, null];
	  window.dispatchEvent(new Event('gamepadconnected'));
	  return true;
	})()`)
	p.until("pad shown", `document.getElementById('gamepad').textContent.includes('Scripted pad')`)

	// Full forward, no deadman: nothing.
	js[any](p, `window.pad.axes[1] = -1, true`)
	p.waitIdle(300 * time.Millisecond)
	got := afterMarker(p, robot)
	if n := len(ofType(got, "drive")); n != 0 {
		t.Fatalf("%d drives without the deadman held", n)
	}

	// LB held: drives forward; the right stick turns right.
	js[any](p, `window.pad.buttons[4].pressed = true, window.pad.axes[2] = 1, true`)
	got = robot.waitUntil("gamepad drives", func(s []signaling.Signal) bool { return len(ofType(s, "drive")) >= 5 })
	v := decode(t, ofType(got, "drive")[4])
	if *v.Linear != 0.25 || *v.Angular != -0.75 {
		t.Errorf("gamepad drive %+v, want linear 0.25 angular -0.75", v)
	}
	js[any](p, `window.pad.buttons[4].pressed = false, true`)
	robot.waitUntil("stop on deadman release", func(s []signaling.Signal) bool { return len(ofType(s, "stop")) == 1 })

	// B is the e-stop.
	js[any](p, `window.pad.buttons[1].pressed = true, true`)
	got = robot.waitUntil("gamepad e-stop", func(s []signaling.Signal) bool { return len(ofType(s, "estop")) == 1 })
	if e := ofType(got, "estop")[0]; e.To != "" {
		t.Errorf("gamepad e-stop to %q, want all", e.To)
	}
}

// TestConsoleCSP: the policy is in force in the browser. Inline script,
// a foreign script and sockets to other hosts are refused, while the
// console's own modules and its WebSocket to the relay work (the other tests).
func TestConsoleCSP(t *testing.T) {
	h := newHarness(t)
	b := browser(t)
	p := open(t, b, "csp", h.consoleURL(h.token(operatorData, token.Publisher)), desktop)
	p.connected()
	p.mu.Lock()
	p.expectCSP = true
	p.mu.Unlock()
	got := js[[]string](p, `new Promise((resolve) => {
	  const seen = [];
	  document.addEventListener('securitypolicyviolation', (e) => {
	    seen.push(e.effectiveDirective);
	    if (seen.length === 4) resolve(seen.sort());
	  });
	  const s = document.createElement('script');
	  s.textContent = 'window.pwned = true';
	  document.body.append(s);
	  const f = document.createElement('script');
	  f.src = 'http://127.0.0.2:9/x.js';
	  document.body.append(f);
	  try { new WebSocket('ws://127.0.0.2:9/v1/connect'); } catch {}
	  fetch('http://127.0.0.2:9/').catch(() => {});
	})`)
	want := []string{"connect-src", "connect-src", "script-src-elem", "script-src-elem"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("violations %v, want %v", got, want)
	}
	if js[bool](p, `window.pwned === true`) {
		t.Error("an inline script ran")
	}
	p.mu.Lock()
	n := len(p.refused)
	p.mu.Unlock()
	t.Logf("%d CSP refusals logged by the browser", n)
}

// TestConsoleJoinFormAndLeave: without a token the page asks for one; Leave
// ends the connection for everyone at once, and Join comes back.
func TestConsoleJoinFormAndLeave(t *testing.T) {
	h := newHarness(t)
	robot := h.peer("robot", robotData, token.Publisher)
	b := browser(t)
	p := open(t, b, "form", h.proxy.URL()+"/", desktop)
	p.until("join form", `!document.getElementById('join').hidden`)
	if s := p.text("conn-state"); s != "not connected" {
		t.Errorf("state %q before joining", s)
	}
	tok := h.token(operatorData, token.Publisher)
	p.do(chromedp.SetValue(chromedp.ID("join-token"), tok), chromedp.Click(chromedp.CSS(`#join button[type=submit]`)))
	p.connected()
	if hash := js[string](p, `location.hash`); hash != "#token="+tok {
		t.Errorf("fragment %q, want the token", hash)
	}
	first := robot.connectionNamed("name=alice")

	p.click("#leave")
	p.until("left", `document.getElementById('conn-state').textContent === 'disconnected'`)
	if msg := p.text("banner-error"); msg != "You left the session." {
		t.Errorf("banner %q", msg)
	}
	deadline := time.Now().Add(waitFor)
	for slicesContainsID(robot.s.Connections(), first) {
		if time.Now().After(deadline) {
			t.Fatal("the robot still sees the console after Leave")
		}
		p.waitIdle(20 * time.Millisecond)
	}
	p.click(`#join button[type=submit]`) // the token is still in the form
	p.connected()
	if again := js[string](p, `document.querySelector('#people li .badge.you').closest('li').dataset.id`); again == first {
		t.Errorf("joined again as the same connection %q, want a new one", again)
	}
}

func slicesContainsID(cs []signaling.Connection, id string) bool {
	for _, c := range cs {
		if c.ConnectionID == id {
			return true
		}
	}
	return false
}
