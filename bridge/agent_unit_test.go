package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/teleop/teleop/devices"
	"github.com/teleop/teleop/devices/proto"
)

func TestLeaseRules(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	present := func(id string) bool { return id == "a" || id == "b" }
	l := lease{exclusive: true, idle: time.Second}

	if ok, why := l.allows("a"); ok || !strings.Contains(why, "acquire") {
		t.Errorf("nobody holds it: allows(a) = %v %q", ok, why)
	}
	if err := l.acquire("", t0); err == nil {
		t.Error("the REST API acquired the lease")
	}
	if err := l.acquire("a", t0); err != nil {
		t.Fatal(err)
	}
	if err := l.acquire("a", t0); err != nil {
		t.Errorf("re-acquire by the holder: %v", err)
	}
	if err := l.acquire("b", t0); err == nil || !strings.Contains(err.Error(), "held by a") {
		t.Errorf("b acquires a's lease: %v", err)
	}
	if ok, _ := l.allows("b"); ok {
		t.Error("b may drive")
	}
	if ok, _ := l.allows(""); ok {
		t.Error("the REST API may drive while a holds the lease")
	}
	if err := l.release("b"); err == nil {
		t.Error("b released a's lease")
	}
	if err := l.transfer("a", "c", t0, present); err == nil {
		t.Error("transfer to a connection not in the session")
	}
	if err := l.transfer("b", "b", t0, present); err == nil {
		t.Error("b transferred a's lease")
	}

	// Idle: any signal from the holder keeps it.
	l.touch("a", t0.Add(900*time.Millisecond))
	l.touch("b", t0.Add(1500*time.Millisecond)) // not the holder: no effect
	if _, ended := l.expire(t0.Add(1800 * time.Millisecond)); ended {
		t.Error("expired 0.9 s after the holder's last signal")
	}
	if was, ended := l.expire(t0.Add(1900 * time.Millisecond)); !ended || was != "a" {
		t.Errorf("expire at the idle time: %q %v", was, ended)
	}

	if err := l.acquire("a", t0); err != nil {
		t.Fatal(err)
	}
	if err := l.transfer("a", "b", t0, present); err != nil || l.holder != "b" {
		t.Fatalf("transfer: %v, holder %q", err, l.holder)
	}
	if l.drop("a") || !l.drop("b") || l.holder != "" {
		t.Error("drop: only the holder leaving ends the lease")
	}
	off := lease{}
	if ok, _ := off.allows(""); !ok {
		t.Error("lease off: the REST API may drive when its mapping allows it")
	}
}

func TestBucket(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := Rate{N: 5, Per: time.Second}
	var b bucket
	n := 0
	for range 20 {
		if b.take(r, t0) {
			n++
		}
	}
	if n != 5 {
		t.Errorf("burst: %d taken, want 5", n)
	}
	if b.take(r, t0.Add(100*time.Millisecond)) {
		t.Error("took a token after 0.1 s at 5/s")
	}
	if !b.take(r, t0.Add(300*time.Millisecond)) {
		t.Error("no token after 0.3 s at 5/s")
	}
	if n := func() int {
		k := 0
		for range 20 {
			if b.take(r, t0.Add(time.Hour)) {
				k++
			}
		}
		return k
	}(); n != 5 {
		t.Errorf("after an hour: %d tokens, want the burst of 5", n)
	}
}

func TestThrottle(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	th := throttle{interval: 200 * time.Millisecond}
	if out, _ := th.offer([]byte("1"), t0); string(out) != "1" {
		t.Fatalf("first: %q", out)
	}
	out, wait := th.offer([]byte("2"), t0.Add(50*time.Millisecond))
	if out != nil || wait != 150*time.Millisecond {
		t.Fatalf("early: %q, wait %v", out, wait)
	}
	if out, wait := th.offer([]byte("3"), t0.Add(60*time.Millisecond)); out != nil || wait != 0 {
		t.Fatalf("early again: %q, wait %v (a timer is armed)", out, wait)
	}
	if out := th.flush(t0.Add(200 * time.Millisecond)); string(out) != "3" {
		t.Fatalf("flush: %q, want the newest", out)
	}
	if out := th.flush(t0.Add(400 * time.Millisecond)); out != nil {
		t.Fatalf("flush with nothing held: %q", out)
	}
	// Due at 400 ms. Up to a tenth of the interval early goes out at once,
	// and the next one is due a whole interval after 400 ms, not after
	// when it went.
	if out, _ := th.offer([]byte("4"), t0.Add(385*time.Millisecond)); string(out) != "4" {
		t.Fatalf("15 ms early: %q, want it sent", out)
	}
	if out, wait := th.offer([]byte("5"), t0.Add(575*time.Millisecond)); out != nil || wait != 25*time.Millisecond {
		t.Fatalf("25 ms early: %q, wait %v; want it held until 600 ms", out, wait)
	}
	if out := th.flush(t0.Add(600 * time.Millisecond)); string(out) != "5" {
		t.Fatalf("flush: %q", out)
	}
	// A device at exactly the configured rate, its clock a little fast:
	// every item goes at once, and over time no more than one per interval.
	sent := 0
	for i := 1; i <= 100; i++ {
		at := t0.Add(600*time.Millisecond + time.Duration(i)*199*time.Millisecond)
		if out, _ := th.offer([]byte("x"), at); out != nil {
			sent++
		} else if out := th.flush(th.next); out != nil {
			sent++
		}
	}
	if sent != 100 {
		t.Errorf("%d of 100 items at 199 ms went, want all (the timer's included)", sent)
	}
	if end := t0.Add(600*time.Millisecond + 100*199*time.Millisecond); th.next.Before(end) {
		t.Errorf("after 100 items in %v the next is due at %v: faster than one per interval", end.Sub(t0), th.next.Sub(t0))
	}
	every := throttle{}
	for i := range 3 {
		if out, _ := every.offer([]byte("x"), t0); out == nil {
			t.Errorf("interval 0: item %d held", i)
		}
	}
}

func TestTelemetryJSON(t *testing.T) {
	tl := devices.Telemetry{TimeMs: 123456, State: "RDY", Fields: map[string]string{
		"st": "RDY", "vl": "0.200", "vr": "-0.300", "lseq": "41", "bat": "12.31", "mode": "auto", "odd": `a"b`,
	}}
	got := string(telemetryJSON(nil, "base", tl))
	want := `{"device":"base","t_ms":123456,"st":"RDY","bat":12.31,"lseq":41,"mode":"auto","odd":"a\"b","vl":0.200,"vr":-0.300}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(got), &m); err != nil {
		t.Error(err)
	}
}

func TestAckJSON(t *testing.T) {
	for _, c := range []struct {
		id   string
		o    outcome
		want string
	}{
		{"17", outcome{status: AckOK, rtt: 71600 * time.Nanosecond}, `{"id":17,"type":"drive","status":"ok","device_ms":0.072,"bridge_ms":0.250}`},
		{`"a1"`, rejected("stale", "signal waited 400 ms"), `{"id":"a1","type":"drive","status":"rejected","code":"stale","reason":"signal waited 400 ms","bridge_ms":0.250}`},
		{"", outcome{status: AckError, code: "4", reason: "range"}, `{"type":"drive","status":"error","code":4,"reason":"range","bridge_ms":0.250}`},
		{"1", rejected("bad_value", "v: \x00\n\"\\ \u2028"), `{"id":1,"type":"drive","status":"rejected","code":"bad_value","reason":"v: \u0000\u000a\"\\ \u2028","bridge_ms":0.250}`},
	} {
		got := string(ackJSON(nil, c.id, "drive", c.o, 250*time.Microsecond))
		if got != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("not JSON: %s", got)
		}
	}
}

func TestDeviceOutcome(t *testing.T) {
	for _, c := range []struct {
		kind   Kind
		res    devices.Result
		err    error
		status string
		code   string
	}{
		{KindSetpoint, devices.Result{Status: devices.StatusOK, RTT: time.Millisecond}, nil, AckOK, ""},
		{KindSetpoint, devices.Result{Status: devices.StatusSent}, nil, AckSent, ""},
		{KindSetpoint, devices.Result{Status: devices.StatusSuperseded}, nil, AckSuperseded, "superseded"},
		{KindSetpoint, devices.Result{Status: devices.StatusTimeout, Tries: 1}, nil, AckTimeout, "timeout"},
		{KindOneshot, devices.Result{Status: devices.StatusError, Code: proto.CodeRange, Text: "lights"}, nil, AckError, "4"},
		{KindSetpoint, devices.Result{}, devices.ErrEStopped, AckRejected, CodeEstopLatched},
		{KindSetpoint, devices.Result{}, fmt.Errorf("%w: connecting", devices.ErrNotReady), AckRejected, CodeNotReady},
		{KindStop, devices.Result{}, fmt.Errorf("%w: connecting", devices.ErrNotReady), AckError, CodeNotReady},
		{KindOneshot, devices.Result{}, devices.ErrDeviceReset, AckError, CodeDeviceReset},
		{KindOneshot, devices.Result{}, fmt.Errorf("%w: eof", devices.ErrLinkDown), AckError, CodeLinkDown},
		{KindOneshot, devices.Result{}, errors.New("strange"), AckError, "device"},
	} {
		o := deviceOutcome("base", c.kind, c.res, c.err)
		if o.status != c.status || o.code != c.code {
			t.Errorf("%v %+v %v: %+v; want %s %s", c.kind, c.res, c.err, o, c.status, c.code)
		}
	}
}

func TestDeviceCommandAndConfig(t *testing.T) {
	c := deviceCommand(ProtoTeleop1, "VEL 0.400 -0.200")
	line, err := proto.AppendCommand(nil, 12, c.Verb, c.Args...)
	if err != nil || !strings.HasPrefix(string(line), "12 VEL 0.400 -0.200*") {
		t.Errorf("teleop/1: %q %v", line, err)
	}
	c = deviceCommand(ProtoTeleop1, "OUT lights=1")
	if line, err := proto.AppendCommand(nil, 3, c.Verb, c.Args...); err != nil || !strings.HasPrefix(string(line), "3 OUT lights=1*") {
		t.Errorf("teleop/1 OUT: %q %v", line, err)
	}
	if c := deviceCommand(ProtoRaw, "M 10 -10"); c.Line != "M 10 -10" || c.Verb != "" {
		t.Errorf("raw: %+v", c)
	}

	cfg, err := Parse("x.yaml", []byte(`session: {token: x}
devices:
  base: {port: /dev/ttyACM0, reply_timeout: 100ms, settings: {wdog_ms: 250, tlm_hz: 5, max_lin: 0.5}}
  tank: {port: /dev/ttyUSB0, baud: 57600, protocol: raw, stop_line: "M 0 0", ok_pattern: "^ok"}
mappings:
  lights: {kind: oneshot, device: base, fields: {on: {type: bool, required: true}}, command: "OUT lights={{ bit .on }}"}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	dc := cfg.Device("base").DevicesConfig()
	if dc.Name != "base" || dc.WatchdogMs != 250 || *dc.TelemetryHz != 5 || dc.Settings["max_lin"] != "0.5" ||
		len(dc.Settings) != 1 || dc.CommandTimeout != 100*time.Millisecond || dc.Protocol != devices.ProtocolTeleop {
		t.Errorf("teleop/1 device config %+v", dc)
	}
	if err := dc.Validate(); err != nil {
		t.Error(err)
	}
	rc := cfg.Device("tank").DevicesConfig()
	if rc.Protocol != devices.ProtocolRaw || rc.Raw.Stop != "M 0 0" || rc.Raw.EStop != "M 0 0" || rc.Raw.OK != "^ok" || rc.Baud != 57600 {
		t.Errorf("raw device config %+v", rc)
	}
	if err := rc.Validate(); err != nil {
		t.Error(err)
	}
}

func TestRobotConnData(t *testing.T) {
	for in, want := range map[string]string{
		"name=rover-1":            "role=robot,name=rover-1",
		"role=robot,name=rover-1": "role=robot,name=rover-1",
		"role=arm":                "role=arm",
		`{"name":"rover"}`:        `{"name":"rover"}`,
		"kind=x&name=y":           "role=robot,kind=x&name=y",
		"  name=spaced  ":         "role=robot,  name=spaced  ",
	} {
		if got := robotConnData(in, "role"); got != want {
			t.Errorf("robotConnData(%q) = %q, want %q", in, got, want)
		}
	}
	if got := robotConnData("", "role"); !strings.HasPrefix(got, "role=robot,name=") {
		t.Errorf("empty: %q", got)
	}
}

// The ack's reason carries text from the signal's data (a field name, a
// value): whatever it is, the ack is valid JSON and says the same.
func FuzzAckJSON(f *testing.F) {
	for _, s := range []string{"", "range", "a\x00b\n\"\\", "\u2028\u2029", "\xff\xfe", "field \"linaer\" unknown"} {
		f.Add(s, "drive")
	}
	f.Fuzz(func(t *testing.T, reason, typ string) {
		b := ackJSON(nil, `"x"`, typ, rejected("bad_value", reason), time.Millisecond)
		var a struct{ Reason, Type string }
		if err := json.Unmarshal(b, &a); err != nil {
			t.Fatalf("%q → %s: %v", reason, b, err)
		}
		if want := string([]rune(reason)); a.Reason != want || a.Type != string([]rune(typ)) {
			t.Fatalf("reason %q came back %q", want, a.Reason)
		}
	})
}
