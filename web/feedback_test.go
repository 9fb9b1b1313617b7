package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/token"
)

// agentDouble answers the console as the agent will (docs/configuration.md,
// outputs): an ack to the sender of every drive, stop, clear and control,
// and an ack to every e-stop. reject, when set, is the reason drives are
// rejected with.
type agentDouble struct {
	robot  *peer
	reject atomic.Pointer[string]
	acked  atomic.Int64
}

func startAgentDouble(t *testing.T, robot *peer) *agentDouble {
	a := &agentDouble{robot: robot}
	in := robot.subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case sig := <-in:
				a.answer(ctx, sig)
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return a
}

func (a *agentDouble) answer(ctx context.Context, sig signaling.Signal) {
	switch sig.Type {
	case "drive", "stop", "estop", "clear", "control":
	default:
		return
	}
	if sig.From == "" || sig.From == a.robot.id() {
		return
	}
	var d driveData
	if json.Unmarshal([]byte(sig.Data), &d) != nil {
		return
	}
	ack := map[string]any{"id": d.ID, "type": sig.Type, "status": "ok", "device_ms": 4}
	if r := a.reject.Load(); r != nil && sig.Type == "drive" {
		ack = map[string]any{"id": d.ID, "type": sig.Type, "status": "rejected", "code": "forbidden", "reason": *r}
	}
	b, _ := json.Marshal(ack)
	if err := a.robot.s.Signal(ctx, signaling.Signal{Type: "ack", Data: string(b), To: sig.From}); err == nil {
		a.acked.Add(1)
	}
}

// telemetryArc sends n telemetry signals along a left-hand arc of radius r,
// as the agent forwards TLM lines (firmware-protocol.md §5.2).
func telemetryArc(robot *peer, n int, r float64) {
	for i := range n {
		a := float64(i) / float64(n) * math.Pi * 0.9
		robot.send("telemetry", fmt.Sprintf(`{"st":"RDY","vl":0.200,"vr":0.300,"lseq":%d,"bat":12.31,"x":%.3f,"y":%.3f,"th":%.3f}`,
			40+i, r*math.Sin(a), r*(1-math.Cos(a)), a), "")
	}
}

func status(estop bool, by, holder string) string {
	return fmt.Sprintf(`{"estop":{"latched":%t,"by":%q},"lease":{"mode":"exclusive","holder":%q},`+
		`"devices":{"base":{"state":%q,"firmware":"teleop-fw 1.2.0"}},"watchdog":"ok"}`,
		estop, by, holder, map[bool]string{true: "estopped", false: "ready"}[estop])
}

// TestConsoleFeedback: the console renders acks (latency, rejections),
// telemetry (battery, wheels, pose trail) and status (e-stop, lease,
// devices, firmware), and the screenshots show it on a desktop and a phone.
func TestConsoleFeedback(t *testing.T) {
	h := newHarness(t)
	robot := h.peer("robot", robotData, token.Publisher)
	observer := h.peer("observer", "role=supervisor,name=watcher", token.Publisher)
	agent := startAgentDouble(t, robot)
	b := browser(t)
	p := open(t, b, "desktop", h.consoleURL(h.token(operatorData, token.Publisher)), desktop)
	p.connected()
	p.until("robot listed", `document.getElementById('target').value !== ''`)
	console := robot.connectionNamed("name=alice")

	// Status: devices, firmware, e-stop, lease.
	robot.send("status", status(false, "", ""), "")
	p.until("status", `document.getElementById('devices').textContent.includes('teleop-fw 1.2.0')`)
	for id, want := range map[string]string{"st-estop": "released", "st-lease": "nobody (exclusive)", "st-watchdog": "ok"} {
		if got := p.text(id); got != want {
			t.Errorf("#%s %q, want %q", id, got, want)
		}
	}

	// Telemetry: battery, wheels, pose and its trail.
	telemetryArc(robot, 40, 1.5)
	p.until("telemetry", `document.getElementById('tlm-bat').textContent === '12.31 V'`)
	p.until("trail", `Number(document.getElementById('trail').dataset.points) >= 30`)
	if got := p.text("tlm-wheels"); got != "0.20 / 0.30 m/s" {
		t.Errorf("wheels %q", got)
	}
	if got := p.text("tlm-pose"); !strings.HasSuffix(got, "m, 158°") {
		t.Errorf("pose %q, want the last heading, 158°", got)
	}
	if got := p.text("tlm-st"); got != "ready" {
		t.Errorf("firmware state %q", got)
	}
	// The trail is drawn: pixels in the accent colour exist on the canvas.
	if n := js[int](p, `(() => {
	  const c = document.getElementById('trail'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
	  let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i+2] > 150 && d[i] < 80) n++; return n; })()`); n < 100 {
		t.Errorf("the trail canvas has %d accent pixels, want a drawn trail", n)
	}

	// Acks: latency of each drive, by id.
	p.keyDown(keyW)
	robot.waitUntil("30 drives", func(s []signaling.Signal) bool { return len(ofType(s, "drive")) >= 30 })
	p.until("latency", `/^\d+$/.test(document.getElementById('latency').textContent)`)
	p.until("chart", `Number(document.getElementById('latency-chart').dataset.samples) >= 20`)
	lat, _ := strconv.Atoi(p.text("latency"))
	t.Logf("ack latency shown: %d ms; device %s; counts %s", lat, p.text("ack-device"), p.text("ack-counts"))
	if got := p.text("ack-device"); got != "4 ms" {
		t.Errorf("device time %q, want 4 ms", got)
	}

	// The lease: acquire, and the agent's status names this console.
	p.click("#acquire")
	robot.waitUntil("control", func(s []signaling.Signal) bool { return len(ofType(s, "control")) == 1 })
	if d := decode(t, ofType(robot.signals(), "control")[0]); d.Action != "acquire" {
		t.Errorf("control action %q, want acquire", d.Action)
	}
	robot.send("status", status(false, "", console), "")
	p.until("lease holder", `document.getElementById('lease-holder').textContent === 'you'`)
	p.until("lease badge", `document.querySelector('#people li .badge.lease') !== null`)
	p.screenshot("desktop-1280x800")
	p.keyUp(keyW)

	// A rejected drive shows its reason.
	reason := "the lease is held by bob"
	agent.reject.Store(&reason)
	p.keyDown(keyW)
	p.until("rejection", `!document.getElementById('rejected').hidden && document.getElementById('rejected').textContent.includes('the lease is held by bob')`)
	p.keyUp(keyW)
	if got := p.text("rejected"); !strings.Contains(got, "(forbidden)") || !strings.Contains(got, "rejected by rover-1") {
		t.Errorf("rejection %q, want the code and who rejected it", got)
	}
	agent.reject.Store(nil)

	// An e-stop latched by someone else: the banner, the status, no motion.
	robot.send("status", status(true, observer.id(), console), "")
	p.until("e-stop banner", `!document.getElementById('banner-estop').hidden`)
	if got := p.text("banner-estop"); !strings.Contains(got, "E-STOP LATCHED by watcher") {
		t.Errorf("banner %q", got)
	}
	if got := p.text("st-estop"); got != "LATCHED by watcher" {
		t.Errorf("status e-stop %q", got)
	}
	p.screenshot("desktop-estop-1280x800")
	p.do(colorScheme("dark"))
	p.screenshot("desktop-dark-1280x800")
	p.do(colorScheme(""))
	robot.send("status", status(false, "", console), "")
	p.until("e-stop released", `document.getElementById('banner-estop').hidden`)

	// The same session on a phone.
	ph := open(t, b, "phone", h.consoleURL(h.token("role=operator,name=alice-phone", token.Publisher)), phone)
	ph.connected()
	robot.send("status", status(false, "", console), "")
	telemetryArc(robot, 40, 1.5)
	ph.until("phone telemetry", `Number(document.getElementById('trail').dataset.points) >= 30`)
	ph.until("phone status", `document.getElementById('devices').textContent.includes('teleop-fw')`)
	if w := js[int](ph, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("the phone layout is %d px wide, wider than the 390 px screen", w)
	}
	// The e-stop is on screen without scrolling, and the joystick fits.
	if !js[bool](ph, `(() => { const r = document.getElementById('estop').getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight && r.width > 300; })()`) {
		t.Error("the e-stop is not fully on the phone's screen")
	}
	ph.screenshot("phone-390x844")
	js[any](ph, `document.querySelector('.link').scrollIntoView(), true`)
	ph.screenshot("phone-390x844-scrolled")
	if agent.acked.Load() == 0 {
		t.Error("the agent double acked nothing")
	}
}

func colorScheme(v string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		p := emulation.SetEmulatedMediaParams{}
		if v != "" {
			p.Features = []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: v}}
		}
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, p)
		return err
	})
}

// TestConsoleModules imports the console's modules into the page and checks
// their pure functions: no node, the browser is the test runner.
func TestConsoleModules(t *testing.T) {
	h := newHarness(t)
	b := browser(t)
	p := open(t, b, "modules", h.proxy.URL()+"/", desktop)
	p.until("join form", `!document.getElementById('join').hidden`)
	got := js[map[string]json.RawMessage](p, `(async () => {
	  const m = await import('/js/model.js');
	  const s = await import('/js/session.js');
	  return {
	    pairs: m.parseConnectionData('role=robot, name=rover-1&site=lab&flag'),
	    json: m.parseConnectionData('{"role":"operator","name":"bob","n":3,"nested":{"a":1}}'),
	    notJSON: m.parseConnectionData('{oops=1'),
	    robot: m.describe({connectionId: 'c1', data: 'role=robot'}).robot,
	    agent: m.describe({connectionId: 'c2', data: 'name=pi'}, {agents: new Set(['c2'])}).robot,
	    operator: m.describe({connectionId: 'c3', data: 'name=bob'}).robot,
	    statusBare: m.readStatus('{"estop":true,"lease":"c1","devices":[{"name":"base","state":"ready","version":"1.0"}]}'),
	    statusFlat: m.readStatus('{"estop":"latched","lease_holder":"c9","firmware":"fw 2","devices":{"arm":"connecting"}}'),
	    statusNone: m.readStatus('not json'),
	    ack: m.readAck('{"id":17,"type":"drive","status":"rejected","code":"stale","reason":"waited 400ms","device_ms":null}'),
	    ackNoID: m.readAck('{"status":"ok"}'),
	    tlm: m.readTelemetry('{"st":"FS","bat":"12.5","x":1,"y":"2","th":0.5,"vl":"bad"}'),
	    round: [m.round3(0.123456), m.round3(-0.0001), m.round3(-1 / 3)],
	    backoffLow: [0, 1, 2, 3, 4, 5, 10].map(n => s.backoffDelay(n, {}, () => 0)),
	    backoffHigh: [0, 1, 2, 3, 4, 5, 10].map(n => s.backoffDelay(n, {}, () => 1)),
	    url: s.connectURL('https://robots.example/ops/console/?x=1#token=abc'),
	    urlRoot: s.connectURL('http://127.0.0.1:7420/#token=abc'),
	  };
	})()`)
	want := map[string]string{
		"pairs":       `{"role":"robot","name":"rover-1","site":"lab","flag":""}`,
		"json":        `{"role":"operator","name":"bob","n":"3"}`,
		"notJSON":     `{"{oops":"1"}`,
		"robot":       `true`,
		"agent":       `true`,
		"operator":    `false`,
		"statusBare":  `{"estop":true,"estopBy":"","lease":{"mode":"","holder":"c1","name":""},"devices":[{"name":"base","state":"ready","firmware":"1.0","error":""}],"watchdog":"","firmware":""}`,
		"statusFlat":  `{"estop":true,"estopBy":"","lease":{"mode":"","holder":"c9","name":""},"devices":[{"name":"arm","state":"connecting","firmware":"fw 2","error":""}],"watchdog":"","firmware":"fw 2"}`,
		"statusNone":  `null`,
		"ack":         `{"id":"17","type":"drive","status":"rejected","code":"stale","reason":"waited 400ms","deviceMs":null}`,
		"ackNoID":     `null`,
		"tlm":         `{"st":"FS","device":null,"vl":null,"vr":null,"lseq":null,"bat":12.5,"x":1,"y":2,"th":0.5,"ovf":null,"pose":true}`,
		"round":       `[0.123,0,-0.333]`,
		"backoffLow":  `[200,400,800,1600,3200,4000,4000]`,
		"backoffHigh": `[300,600,1200,2400,4800,6000,6000]`,
		"url":         `"wss://robots.example/ops/console/v1/connect"`,
		"urlRoot":     `"ws://127.0.0.1:7420/v1/connect"`,
	}
	for k, w := range want {
		if g := canonical(got[k]); g != canonical(json.RawMessage(w)) {
			t.Errorf("%s:\n got %s\nwant %s", k, g, w)
		}
	}
}

// TestConsoleSessionClient drives session.js's Session with frames by hand
// (a stand-in socket that records what it is sent): dedup by seq, results
// by id, what survives a dropped socket, and resume versus a fresh
// connection.
func TestConsoleSessionClient(t *testing.T) {
	h := newHarness(t)
	b := browser(t)
	p := open(t, b, "modules", h.proxy.URL()+"/", desktop)
	p.until("join form", `!document.getElementById('join').hidden`)
	got := js[map[string]json.RawMessage](p, `(async () => {
	  const { Session, SignalError } = await import('/js/session.js');
	  const out = {};
	  const s = new Session({ url: 'ws://127.0.0.1:9/v1/connect', token: 't', backoff: { initial: 1e9, max: 1e9 } });
	  const sock = () => ({ readyState: 1, sent: [], send(f) { this.sent.push(JSON.parse(f)); }, close() {} });
	  const events = [];
	  s.addEventListener('signal', (e) => events.push(e.detail.seq));
	  const logs = [];
	  s.addEventListener('log', (e) => logs.push(e.detail.text));
	  s.state = 'connecting';
	  s.ws = sock();
	  s.welcome({ op: 'welcome', sessionId: 's', connection: { connectionId: 'A' }, connections: [{ connectionId: 'A' }], resumeKey: 'k1', seq: 0, limits: {} });
	  out.state = s.state;

	  // Events: in order, duplicates dropped, a gap reported.
	  for (const seq of [1, 2, 2, 1, 3, 6]) s.frame({ op: 'signal', seq, type: 'x' });
	  out.events = events.slice();
	  out.gap = logs.filter((l) => l.includes('lost'));

	  // Results by id, in any order.
	  const a = s.signal({ type: 'drive', data: 'a', to: 'B', retry: false });
	  const b = s.signal({ type: 'stop', data: 'b', to: 'B' });
	  const c = s.signal({ type: 'estop', data: 'c' });
	  out.sentIDs = s.ws.sent.map((f) => f.id + ':' + f.type + ':' + (f.to || '*'));
	  s.frame({ op: 'result', id: s.ws.sent[1].id, code: 200 });
	  s.frame({ op: 'result', id: s.ws.sent[0].id, code: 429, message: 'slow down' });
	  out.b = await b.then((r) => r.code);
	  out.a = await a.then(() => 'resolved', (e) => [e instanceof SignalError, e.code, e.message]);

	  // The socket drops with c unanswered: a drive sent meanwhile fails at
	  // once; a stop waits; both c and the stop go out on the new socket,
	  // c with its old id.
	  const cID = s.ws.sent[2].id;
	  s.closed(1006, '', { welcomed: true });
	  out.dropped = s.state;
	  out.driveWhileDown = await s.signal({ type: 'drive', data: 'd', retry: false }).then(() => 'sent', (e) => e.code);
	  const stop = s.signal({ type: 'stop', data: 'e', to: 'B' });
	  await new Promise((r) => setTimeout(r, 20)); // time in the reconnect queue
	  s.ws = sock();
	  s.welcome({ op: 'welcome', resumed: true, sessionId: 's', connection: { connectionId: 'A' }, connections: [{ connectionId: 'A' }], resumeKey: 'k2', seq: 9, limits: {} });
	  out.resent = s.ws.sent.map((f) => [f.id === cID ? 'same id' : 'new id', f.type, f.queuedMs >= 20]);
	  out.lastAfterResume = s.lastSeq;
	  s.frame({ op: 'signal', seq: 6, type: 'x' }); // already seen
	  s.frame({ op: 'signal', seq: 7, type: 'x' }); // replayed
	  out.afterResume = events.slice(4);
	  s.frame({ op: 'result', id: cID, code: 200 });
	  s.frame({ op: 'result', id: s.ws.sent[1].id, code: 200 });
	  out.c = await c.then((r) => r.code);
	  out.stop = await stop.then((r) => r.code);

	  // A welcome for another connection (the grace period ended): fresh.
	  let fresh = null;
	  s.addEventListener('welcome', (e) => (fresh = e.detail));
	  s.closed(1006, '', { welcomed: true });
	  s.ws = sock();
	  s.welcome({ op: 'welcome', sessionId: 's', connection: { connectionId: 'A2' }, connections: [], resumeKey: 'k3', seq: 0, limits: {} });
	  out.fresh = fresh;
	  out.lastAfterFresh = s.lastSeq;

	  // Refusals end it, with the relay's words.
	  s.closed(4401, 'token expired at 2026-01-01T00:00:00Z', { welcomed: false });
	  out.refused = [s.state, s.detail];
	  return out;
	})()`)
	want := map[string]string{
		"state":           `"connected"`,
		"events":          `[1,2,3,6]`,
		"gap":             `["events 4–5 were lost"]`,
		"sentIDs":         `["1:drive:B","2:stop:B","3:estop:*"]`,
		"b":               `200`,
		"a":               `[true,429,"slow down"]`,
		"dropped":         `"reconnecting"`,
		"driveWhileDown":  `500`,
		"resent":          `[["same id","estop",true],["new id","stop",true]]`,
		"lastAfterResume": `6`,
		"afterResume":     `[7]`,
		"c":               `200`,
		"stop":            `200`,
		"fresh":           `{"resumed":false,"fresh":true,"missed":0}`,
		"lastAfterFresh":  `0`,
		"refused":         `["disconnected","Your token was refused: token expired at 2026-01-01T00:00:00Z. Get a new token and join again."]`,
	}
	for k, w := range want {
		if g := canonical(got[k]); g != canonical(json.RawMessage(w)) {
			t.Errorf("%s:\n got %s\nwant %s", k, g, w)
		}
	}
}

// canonical re-encodes JSON so that escapes and spacing do not matter.
func canonical(raw json.RawMessage) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "invalid JSON: " + string(raw)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
