package conformance

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/teleop/teleop/devices/proto"
)

// Target is a device under test.
type Target struct {
	// Path is the serial port (a pty for the simulator and simavr).
	Path string
	// Slack multiplies every time bound of the suite (values below 1 mean
	// 1). A device whose clock is only paced to the wall clock, such as an
	// emulator on a busy machine, wants 2 or more.
	Slack float64
	// Executions, when set, returns how many one-shot commands the device
	// has run, not counting answers from its reply cache. Without it the
	// suite observes the cache through the device's behaviour only.
	Executions func() uint64
}

// Run runs the conformance suite. open starts a fresh device for one case
// (stopping it in t's cleanup) and returns it; the device must boot (send
// HELLO) no earlier than open is called, and keep what it sent until the
// port is opened.
func Run(t *testing.T, open func(t *testing.T) Target) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := start(t, open(t))
			c.run(d)
		})
	}
}

var cases = []struct {
	name string
	run  func(d *dut)
}{
	{"HelloAtBootAndOnVER", helloCase},
	{"Ping", func(d *dut) { d.ok("PING") }},
	{"Checksums", checksumCase},
	{"StrictMode", strictCase},
	{"Verbs", verbsCase},
	{"UnknownVerb", unknownCase},
	{"RangeErrors", rangeCase},
	{"LineTooLong", tooLongCase},
	{"GarbageAndControlBytes", garbageCase},
	{"EstopByteMidLine", estopByteCase},
	{"ClearBeforeEstopByte", clearBeforeEstopCase},
	{"TelemetryNow", telemetryNowCase},
	{"Resync", resyncCase},
	{"OneShotResend", resendCase},
	{"StaleSetpoints", staleCase},
	{"Watchdog", watchdogCase},
	{"WatchdogRefresh", watchdogRefreshCase},
	{"WatchdogIdle", watchdogIdleCase},
	{"TelemetryRate", telemetryRateCase},
	{"BurstWithinRx", burstCase},
	{"Reset", resetCase},
}

// dut is one device under test and the host end of its port.
type dut struct {
	t     *testing.T
	c     *Conn
	tg    Target
	hello Line
	h     proto.Hello
	seq   uint16
	slack float64
}

func start(t *testing.T, tg Target) *dut {
	t.Helper()
	d := &dut{t: t, tg: tg, slack: max(tg.Slack, 1)}
	d.c = Open(t, tg.Path)
	l, before := d.c.WaitFor(d.dur(3*time.Second), "HELLO at boot", func(l Line) bool { return l.Kind == proto.KindHello })
	if len(before) > 0 {
		t.Errorf("lines before the boot HELLO: %v", before)
	}
	d.hello = l
	var dl proto.DeviceLine
	if err := proto.ParseDeviceLine([]byte(l.Raw), &dl, false); err != nil {
		t.Fatalf("HELLO %v: %v", l, err)
	}
	h, err := proto.ParseHello(&dl)
	if err != nil {
		t.Fatalf("HELLO %v: %v", l, err)
	}
	d.h = h
	return d
}

// dur scales a time bound by the target's slack.
func (d *dut) dur(x time.Duration) time.Duration { return time.Duration(float64(x) * d.slack) }

func (d *dut) reply() time.Duration { return d.dur(time.Second) }

func (d *dut) next() uint16 { d.seq = proto.NextSeq(d.seq); return d.seq }

// cmd sends a command with the next seq and returns its reply and the lines before it.
func (d *dut) cmd(verb string, args ...proto.Arg) (Line, []Line) {
	d.t.Helper()
	s := d.next()
	d.c.Send(s, verb, args...)
	return d.c.Reply(d.reply(), s)
}

func (d *dut) ok(verb string, args ...proto.Arg) Line {
	d.t.Helper()
	l, _ := d.cmd(verb, args...)
	if l.Kind != proto.KindOK {
		d.t.Fatalf("%d %s %v: got %v, want OK", d.seq, verb, args, l)
	}
	return l
}

// refused sends a command and wants ERR <seq> <code>.
func (d *dut) refused(code proto.ErrorCode, verb string, args ...proto.Arg) Line {
	d.t.Helper()
	l, _ := d.cmd(verb, args...)
	if l.Kind != proto.KindErr || l.Code != int(code) || l.NoSeq || l.Seq != d.seq {
		d.t.Fatalf("%d %s %v: got %v, want ERR %d %d", d.seq, verb, args, l, d.seq, code)
	}
	return l
}

// raw writes a line as given and returns the reply to it (seq or "-").
func (d *dut) raw(s string) Line {
	d.t.Helper()
	d.c.WriteString(s)
	l, _ := d.c.WaitFor(d.reply(), fmt.Sprintf("the reply to %q", s), Line.Final)
	return l
}

// wantErr wants ERR - <code> (or ERR <seq> <code> when seq is given and the
// device could read it; the spec allows both for some codes).
func (d *dut) wantErr(l Line, code proto.ErrorCode, seq uint16, dashOnly bool) {
	d.t.Helper()
	ok := l.Kind == proto.KindErr && l.Code == int(code) && (l.NoSeq || (!dashOnly && l.Seq == seq))
	if !ok {
		want := "-"
		if !dashOnly {
			want = fmt.Sprintf("- or %d", seq)
		}
		d.t.Fatalf("got %v, want ERR %s %d", l, want, code)
	}
}

func (d *dut) tlm() Line {
	d.t.Helper()
	d.c.Write([]byte{proto.ByteTelemetry})
	l, _ := d.c.WaitFor(d.reply(), "TLM after '?'", func(l Line) bool { return l.Kind == proto.KindTLM })
	return l
}

func (d *dut) evt(name string, within time.Duration) (Line, []Line) {
	d.t.Helper()
	return d.c.WaitFor(within, "EVT "+name, func(l Line) bool { return l.Kind == proto.KindEvt && l.Name == name })
}

func (d *dut) output() (string, bool) {
	if o := d.h.Outputs(); len(o) > 0 {
		return o[0], true
	}
	return "", false
}

// command returns the bytes of a checksummed command line.
func command(seq uint16, verb string, args ...proto.Arg) string {
	b, err := proto.AppendCommand(nil, seq, verb, args...)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func noneOf(ls []Line, match func(Line) bool) (Line, bool) {
	for _, l := range ls {
		if match(l) {
			return l, false
		}
	}
	return Line{}, true
}

func isEvt(name string) func(Line) bool {
	return func(l Line) bool { return l.Kind == proto.KindEvt && l.Name == name }
}

func num(t *testing.T, l Line, key string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(l.Field(key), 64)
	if err != nil {
		t.Fatalf("%v: %s: %v", l, key, err)
	}
	return v
}

// ---- cases ----

func helloCase(d *dut) {
	t := d.t
	if err := d.h.Check(); err != nil {
		t.Fatal(err)
	}
	if d.h.RX < proto.MaxCommandLine {
		t.Fatalf("rx=%d, want ≥ %d", d.h.RX, proto.MaxCommandLine)
	}
	for _, c := range []string{"vel", "hb", "tlm", "estop"} {
		if !d.h.Has(c) {
			t.Errorf("caps %v lack %q", d.h.Caps, c)
		}
	}
	if d.h.FW == "" || !strings.Contains(d.h.FW, "/") {
		t.Errorf("fw=%q, want name/semver", d.h.FW)
	}
	l, before := d.cmd("VER")
	if l.Kind != proto.KindOK {
		t.Fatalf("VER: %v", l)
	}
	var hellos []Line
	for _, b := range before {
		if b.Kind == proto.KindHello {
			hellos = append(hellos, b)
		}
	}
	if len(hellos) != 1 || hellos[0].Text != d.hello.Text {
		t.Fatalf("VER: HELLO lines before OK %v, want one like the boot banner %q", hellos, d.hello.Text)
	}
}

func checksumCase(d *dut) {
	t := d.t
	d.ok("PING") // with *HH
	s := d.next()
	if l := d.raw(fmt.Sprintf("%d PING\n", s)); l.Kind != proto.KindOK || l.Seq != s {
		t.Fatalf("PING without *HH (not strict): %v", l)
	}
	s = d.next()
	line := fmt.Sprintf("%d PING", s)
	sum := proto.Checksum([]byte(line))
	d.wantErr(d.raw(fmt.Sprintf("%s*%02X\n", line, sum^0x5A)), proto.CodeChecksum, s, false)
	// lower-case hex is not a checksum
	for ; ; s = d.next() {
		line = fmt.Sprintf("%d PING", s)
		if h := fmt.Sprintf("%02x", proto.Checksum([]byte(line))); strings.ContainsAny(h, "abcdef") {
			d.wantErr(d.raw(line+"*"+h+"\n"), proto.CodeChecksum, s, false)
			break
		}
	}
	s = d.next()
	d.wantErr(d.raw(fmt.Sprintf("%d PING*1\n", s)), proto.CodeChecksum, s, false)
	d.ok("PING")
}

func strictCase(d *dut) {
	t := d.t
	if !d.h.Has("strict") {
		t.Skip("no strict capability")
	}
	d.ok("SET", proto.KV("strict", proto.Int(1)))
	s := d.next()
	l := d.raw(fmt.Sprintf("%d PING\n", s))
	if l.Kind != proto.KindErr || l.Code != int(proto.CodeChecksum) || l.NoSeq || l.Seq != s {
		t.Fatalf("strict, no *HH: %v, want ERR %d 2", l, s)
	}
	d.ok("PING")
	l, before := d.cmd("GET", proto.Word("strict"))
	if l.Kind != proto.KindOK || l.Field("strict") != "1" {
		t.Fatalf("GET strict: %v", l)
	}
	for _, x := range append(before, l, d.tlm()) {
		if !x.HadChecksum {
			t.Errorf("strict mode: device line without *HH: %v", x)
		}
	}
	d.ok("SET", proto.KV("strict", proto.Int(0)))
	s = d.next()
	if l := d.raw(fmt.Sprintf("%d PING\n", s)); l.Kind != proto.KindOK {
		t.Fatalf("strict=0, no *HH: %v", l)
	}
}

func verbsCase(d *dut) {
	t := d.t
	d.ok("PING")
	d.ok("VEL", proto.Float(0.1, 3), proto.Float(0, 3))
	if l := d.tlm(); l.Field("st") != "RDY" || num(t, l, "vl") <= 0 || num(t, l, "vr") <= 0 {
		t.Fatalf("after VEL 0.1 0: %v", l)
	}
	d.ok("HB")
	d.ok("STOP")
	if l := d.tlm(); num(t, l, "vl") != 0 || num(t, l, "vr") != 0 || l.Field("st") != "RDY" {
		t.Fatalf("after STOP: %v", l)
	}
	l, before := d.cmd("ESTOP")
	if e, none := noneOf(before, isEvt("ESTOP")); l.Kind != proto.KindOK || none || e.Field("src") != "cmd" {
		t.Fatalf("ESTOP: %v after %v, want EVT ESTOP src=cmd then OK", l, before)
	}
	l, before = d.cmd("ESTOP")
	if _, none := noneOf(before, isEvt("ESTOP")); l.Kind != proto.KindOK || !none {
		t.Fatalf("ESTOP while latched: %v after %v, want OK and no EVT", l, before)
	}
	l, before = d.cmd("CLEAR")
	if _, none := noneOf(before, isEvt("CLEARED")); l.Kind != proto.KindOK || none {
		t.Fatalf("CLEAR: %v after %v, want EVT CLEARED then OK", l, before)
	}
	l, before = d.cmd("CLEAR")
	if _, none := noneOf(before, isEvt("CLEARED")); l.Kind != proto.KindOK || !none {
		t.Fatalf("CLEAR in RDY: %v after %v, want OK and no EVT", l, before)
	}
	if o, ok := d.output(); ok {
		d.ok("OUT", proto.KV(o, proto.Int(1)))
		if l := d.ok("GET", proto.Word(o)); l.Field(o) != "1" {
			t.Errorf("GET %s after OUT %s=1: %v", o, o, l)
		}
		d.ok("OUT", proto.KV(o, proto.Int(0)))
	}
	d.ok("SET", proto.KV("wdog_ms", proto.Int(400)), proto.KV("tlm_hz", proto.Int(5)))
	for k, v := range map[string]string{"wdog_ms": "400", "tlm_hz": "5"} {
		if l := d.ok("GET", proto.Word(k)); l.Field(k) != v {
			t.Errorf("GET %s: %v, want %s", k, l, v)
		}
	}
}

func unknownCase(d *dut) {
	d.refused(proto.CodeUnknown, "FLY")
	d.refused(proto.CodeUnknown, "NOSUCHVERB", proto.Int(1))
	d.ok("PING")
}

func rangeCase(d *dut) {
	t := d.t
	lim := 1.0
	if l, _ := d.cmd("GET", proto.Word("max_lin")); l.Kind == proto.KindOK {
		lim = num(t, l, "max_lin")
	}
	d.refused(proto.CodeRange, "VEL", proto.Float(10*lim+1, 0), proto.Int(0))
	d.refused(proto.CodeRange, "VEL", proto.Float(-(10*lim+1), 0), proto.Int(0))
	d.refused(proto.CodeRange, "VEL", proto.Float(0.1, 1))
	d.refused(proto.CodeRange, "VEL", proto.Word("fast"), proto.Int(0))
	d.refused(proto.CodeRange, "SET", proto.KV("wdog_ms", proto.Int(10)))
	d.refused(proto.CodeRange, "SET", proto.KV("wdog_ms", proto.Int(5001)))
	d.refused(proto.CodeRange, "SET", proto.KV("tlm_hz", proto.Int(51)))
	d.refused(proto.CodeRange, "SET", proto.KV("strict", proto.Int(2)))
	if l := d.refused(proto.CodeRange, "SET", proto.KV("nosuch", proto.Int(1))); !strings.Contains(l.Field("text"), "nosuch") {
		t.Errorf("ERR for an unknown key should name it: %v", l)
	}
	// all or nothing
	d.refused(proto.CodeRange, "SET", proto.KV("wdog_ms", proto.Int(300)), proto.KV("tlm_hz", proto.Int(99)))
	if l := d.ok("GET", proto.Word("wdog_ms")); l.Field("wdog_ms") != "500" {
		t.Fatalf("a refused SET changed wdog_ms: %v", l)
	}
	d.refused(proto.CodeRange, "GET", proto.Word("nosuch"))
	d.refused(proto.CodeRange, "OUT", proto.KV("nosuch", proto.Int(1)))
	d.ok("VEL", proto.Float(10*lim, 0), proto.Int(0)) // within 10×: clamped, not refused
	if l := d.tlm(); num(t, l, "vl") > lim+1e-9 {
		t.Fatalf("VEL %g not clamped to %g: %v", 10*lim, lim, l)
	}
	d.ok("STOP")
}

func tooLongCase(d *dut) {
	t := d.t
	// 63 bytes + '\n' = 64: a line.
	s := d.next()
	head := fmt.Sprintf("%d ", s)
	l := d.raw(head + strings.Repeat("X", 63-len(head)) + "\n")
	if l.Kind != proto.KindErr || l.Code != int(proto.CodeUnknown) || l.Seq != s {
		t.Fatalf("a 64-byte line: %v, want ERR %d 3", l, s)
	}
	// 65 bytes: too long, once.
	s = d.next()
	head = fmt.Sprintf("%d ", s)
	d.wantErr(d.raw(head+strings.Repeat("X", 64-len(head))+"\n"), proto.CodeTooLong, s, true)
	s = d.next()
	d.c.WriteString(fmt.Sprintf("%d VEL %s\n", s, strings.Repeat("1", 300)))
	p := d.next()
	d.c.WriteString(command(p, "PING"))
	l, _ = d.c.WaitFor(d.reply(), "ERR - 7", Line.Final)
	d.wantErr(l, proto.CodeTooLong, s, true)
	if l, _ := d.c.Reply(d.reply(), p); l.Kind != proto.KindOK {
		t.Fatalf("the line after a long one: %v", l)
	}
}

func garbageCase(d *dut) {
	t := d.t
	d.wantErr(d.raw("hello\n"), proto.CodeParse, 0, true)
	d.wantErr(d.raw("0 PING\n"), proto.CodeParse, 0, true)
	s := d.next()
	d.wantErr(d.raw(fmt.Sprintf("%d PI\x01NG\n", s)), proto.CodeParse, s, true)
	s = d.next()
	d.wantErr(d.raw(fmt.Sprintf("%d PING \xc3\xa9\n", s)), proto.CodeParse, s, true)
	s = d.next()
	if l := d.raw(fmt.Sprintf("%d ping\n", s)); l.Kind != proto.KindErr || l.Code != int(proto.CodeParse) {
		t.Fatalf("lower-case verb: %v", l)
	}
	// Empty lines get no reply: the next reply is the PING's.
	d.c.WriteString("\n\r\n")
	d.ok("PING")
	// '\r' is ignored anywhere.
	s = d.next()
	if l := d.raw(strings.Replace(command(s, "PING"), "\n", "\r\n", 1)); l.Kind != proto.KindOK || l.Seq != s {
		t.Fatalf("CRLF: %v", l)
	}
}

func estopByteCase(d *dut) {
	t := d.t
	d.ok("VEL", proto.Float(0.2, 3), proto.Int(0))
	s := d.next()
	d.c.WriteString(fmt.Sprintf("%d VEL 0.5", s))
	sent := time.Now()
	d.c.Write([]byte{proto.ByteEstop})
	e, _ := d.evt("ESTOP", d.reply())
	if e.Field("src") != "byte" {
		t.Errorf("%v, want src=byte", e)
	}
	t.Logf("EVT ESTOP %v after '!'", e.At.Sub(sent))
	d.c.WriteString("\n") // the rest of the interrupted line: empty, no reply
	if l := d.tlm(); l.Field("st") != "ES" || num(t, l, "vl") != 0 || num(t, l, "vr") != 0 {
		t.Fatalf("after '!': %v", l)
	}
	d.refused(proto.CodeEstop, "VEL", proto.Float(0.2, 3), proto.Int(0))
	d.refused(proto.CodeEstop, "HB")
	if o, ok := d.output(); ok {
		d.refused(proto.CodeEstop, "OUT", proto.KV(o, proto.Int(1)))
	}
	d.ok("PING")
	d.ok("GET", proto.Word("wdog_ms"))
	d.ok("STOP")
	// Latched: a second '!' emits nothing.
	d.c.Write([]byte{proto.ByteEstop})
	_, before := d.cmd("PING")
	if e, none := noneOf(before, isEvt("ESTOP")); !none {
		t.Fatalf("second EVT ESTOP while latched: %v", e)
	}
	l, before := d.cmd("CLEAR")
	if _, none := noneOf(before, isEvt("CLEARED")); l.Kind != proto.KindOK || none {
		t.Fatalf("CLEAR: %v after %v", l, before)
	}
	d.ok("VEL", proto.Float(0.2, 3), proto.Int(0))
	if l := d.tlm(); l.Field("st") != "RDY" {
		t.Fatalf("after CLEAR and VEL: %v", l)
	}
	d.ok("STOP")
}

func clearBeforeEstopCase(d *dut) {
	t := d.t
	d.c.Write([]byte{proto.ByteEstop})
	d.evt("ESTOP", d.reply())
	// A CLEAR written before a '!' never leaves the robot running.
	s := d.next()
	d.c.WriteString(command(s, "CLEAR") + "!")
	if l, _ := d.c.Reply(d.reply(), s); l.Kind != proto.KindOK {
		t.Fatalf("CLEAR: %v", l)
	}
	d.ok("PING")
	if l := d.tlm(); l.Field("st") != "ES" {
		t.Fatalf("CLEAR then '!': %v, want st=ES", l)
	}
	d.refused(proto.CodeEstop, "VEL", proto.Float(0.1, 3), proto.Int(0))
	d.ok("CLEAR")
	d.ok("VEL", proto.Float(0.1, 3), proto.Int(0))
	d.ok("STOP")
}

func telemetryNowCase(d *dut) {
	t := d.t
	d.ok("SET", proto.KV("tlm_hz", proto.Int(0)))
	d.ok("PING")
	d.c.Quiet(d.dur(150 * time.Millisecond))
	d.c.Write([]byte{proto.ByteTelemetry})
	l, _ := d.c.WaitFor(d.reply(), "TLM", func(l Line) bool { return l.Kind == proto.KindTLM })
	if l.Field("st") != "RDY" {
		t.Fatalf("TLM %v", l)
	}
	for _, x := range d.c.Quiet(d.dur(300 * time.Millisecond)) {
		if x.Kind == proto.KindTLM {
			t.Fatalf("a second TLM with tlm_hz=0: %v", x)
		}
	}
	// '?' mid-line is not part of the line.
	s := d.next()
	cmd := command(s, "PING")
	d.c.WriteString(cmd[:2] + "?" + cmd[2:])
	l, before := d.c.Reply(d.reply(), s)
	if l.Kind != proto.KindOK {
		t.Fatalf("'?' inside a line: %v", l)
	}
	if _, none := noneOf(before, func(l Line) bool { return l.Kind == proto.KindTLM }); none {
		d.c.WaitFor(d.reply(), "TLM after '?' inside a line", func(l Line) bool { return l.Kind == proto.KindTLM })
	}
}

func resyncCase(d *dut) {
	t := d.t
	// The partial line is dropped.
	a, b := d.next(), d.next()
	d.c.WriteString(fmt.Sprintf("%d VEL 0.5", a))
	d.c.Write([]byte{proto.ByteResync})
	d.c.WriteString(command(b, "PING"))
	if l, _ := d.c.WaitFor(d.reply(), "a reply", Line.Final); l.Kind != proto.KindOK || l.Seq != b {
		t.Fatalf("after RESYNC: %v, want OK %d only", l, b)
	}
	// The setpoint memory is forgotten: an older seq is accepted.
	v := d.next()
	d.c.Send(v+100, "VEL", proto.Float(0.1, 3), proto.Int(0))
	if l, _ := d.c.Reply(d.reply(), v+100); l.Kind != proto.KindOK {
		t.Fatal(l)
	}
	d.c.Write([]byte{proto.ByteResync})
	d.c.Send(v, "VEL", proto.Float(0.1, 3), proto.Int(0))
	if l, _ := d.c.Reply(d.reply(), v); l.Kind != proto.KindOK {
		t.Fatalf("VEL %d after VEL %d and RESYNC: %v, want OK", v, v+100, l)
	}
	// The reply cache is forgotten: the same seq runs again.
	s := d.ok("STOP").Seq
	d.ok("VEL", proto.Float(0.1, 3), proto.Int(0))
	d.c.Write([]byte{proto.ByteResync})
	d.c.Send(s, "STOP")
	if l, _ := d.c.Reply(d.reply(), s); l.Kind != proto.KindOK {
		t.Fatal(l)
	}
	if l := d.tlm(); num(t, l, "vl") != 0 {
		t.Fatalf("STOP %d after RESYNC came from the cache: %v", s, l)
	}
}

func resendCase(d *dut) {
	t := d.t
	var before uint64
	if d.tg.Executions != nil {
		before = d.tg.Executions()
	}
	// STOP, a setpoint, then STOP again with the same seq: answered, not run.
	first := d.ok("STOP")
	s := first.Seq
	d.ok("VEL", proto.Float(0.1, 3), proto.Int(0))
	d.c.Send(s, "STOP")
	again, _ := d.c.Reply(d.reply(), s)
	if again.Raw != first.Raw {
		t.Fatalf("resent %d STOP: %v, first reply %v", s, again, first)
	}
	if l := d.tlm(); num(t, l, "vl") == 0 {
		t.Fatalf("resent STOP ran again: %v", l)
	}
	if d.tg.Executions != nil {
		if n := d.tg.Executions() - before; n != 1 {
			t.Fatalf("%d executions for one STOP sent twice", n)
		}
	}
	// A resent CLEAR after an e-stop does not clear it.
	d.ok("STOP")
	c := d.ok("CLEAR")
	d.c.Write([]byte{proto.ByteEstop})
	d.evt("ESTOP", d.reply())
	d.c.Send(c.Seq, "CLEAR")
	l, lines := d.c.Reply(d.reply(), c.Seq)
	if _, none := noneOf(lines, isEvt("CLEARED")); l.Raw != c.Raw || !none {
		t.Fatalf("resent CLEAR: %v after %v", l, lines)
	}
	if l := d.tlm(); l.Field("st") != "ES" {
		t.Fatalf("a resent CLEAR left ES: %v", l)
	}
	d.ok("CLEAR")
	// A resent VER repeats its HELLO.
	v, _ := d.cmd("VER")
	d.c.Send(v.Seq, "VER")
	l, lines = d.c.Reply(d.reply(), v.Seq)
	if _, none := noneOf(lines, func(l Line) bool { return l.Kind == proto.KindHello }); l.Raw != v.Raw || none {
		t.Fatalf("resent VER: %v after %v, want HELLO then the same OK", l, lines)
	}
	// Refusals are remembered too.
	u := d.refused(proto.CodeUnknown, "FLY")
	d.c.Send(u.Seq, "FLY")
	if l, _ := d.c.Reply(d.reply(), u.Seq); l.Raw != u.Raw {
		t.Fatalf("resent FLY: %v, want %v", l, u)
	}
}

func staleCase(d *dut) {
	t := d.t
	d.seq = 100
	d.ok("VEL", proto.Float(0.1, 3), proto.Int(0)) // 101
	d.c.Send(100, "VEL", proto.Float(0.2, 3), proto.Int(0))
	if l, _ := d.c.Reply(d.reply(), 100); l.Code != int(proto.CodeStale) {
		t.Fatalf("older VEL: %v, want ERR 100 8", l)
	}
	d.c.Send(101, "VEL", proto.Float(0.2, 3), proto.Int(0))
	if l, _ := d.c.Reply(d.reply(), 101); l.Code != int(proto.CodeStale) {
		t.Fatalf("duplicate VEL: %v, want ERR 101 8", l)
	}
	d.c.Send(99, "HB")
	if l, _ := d.c.Reply(d.reply(), 99); l.Code != int(proto.CodeStale) {
		t.Fatalf("older HB: %v, want ERR 99 8", l)
	}
	if l := d.tlm(); l.Field("lseq") != "101" || num(t, l, "vl") != num(t, l, "vr") || num(t, l, "vl") < 0.09 || num(t, l, "vl") > 0.11 {
		t.Fatalf("a stale setpoint was applied: %v", l)
	}
	// Wrapping: 1 is newer than 65535.
	d.c.Write([]byte{proto.ByteResync})
	d.seq = 65534
	d.ok("VEL", proto.Int(0), proto.Int(0)) // 65535
	d.ok("HB")                              // 1
	d.c.Send(65535, "HB")
	if l, _ := d.c.Reply(d.reply(), 65535); l.Code != int(proto.CodeStale) {
		t.Fatalf("65535 after 1: %v, want stale", l)
	}
}

func watchdogCase(d *dut) {
	t := d.t
	const wdog = 200 * time.Millisecond
	d.ok("SET", proto.KV("wdog_ms", proto.Int(int(wdog/time.Millisecond))))
	v := d.ok("VEL", proto.Float(0.2, 3), proto.Int(0))
	e, _ := d.evt("WDOG", wdog+d.dur(time.Second))
	if got := e.At.Sub(v.At); got < wdog/2 {
		t.Fatalf("EVT WDOG %v after the VEL's OK, watchdog %v", got, wdog)
	}
	if l := d.tlm(); l.Field("st") != "FS" || num(t, l, "vl") != 0 || num(t, l, "vr") != 0 {
		t.Fatalf("after EVT WDOG: %v", l)
	}
	d.ok("VEL", proto.Float(0.1, 3), proto.Int(0))
	if l := d.tlm(); l.Field("st") != "RDY" || num(t, l, "vl") == 0 {
		t.Fatalf("a fresh VEL after FS: %v", l)
	}
	// PING does not feed the watchdog.
	var seen []Line
	end := time.Now().Add(wdog + d.dur(time.Second))
	for time.Now().Before(end) {
		l, before := d.cmd("PING")
		seen = append(append(seen, before...), l)
		if _, none := noneOf(seen, isEvt("WDOG")); !none {
			break
		}
	}
	if _, none := noneOf(seen, isEvt("WDOG")); none {
		d.evt("WDOG", d.reply())
	}
	// HB leaves FS with a zero setpoint.
	d.ok("HB")
	if l := d.tlm(); l.Field("st") != "RDY" || num(t, l, "vl") != 0 {
		t.Fatalf("HB in FS: %v", l)
	}
}

// watchdogIdleCase: the watchdog trips only while motion is commanded. An
// idle robot (never driven, stopped, or sent a zero VEL) stays RDY however
// long the host is silent, and the next motion is watched again.
func watchdogIdleCase(d *dut) {
	t := d.t
	const wdog = 200 * time.Millisecond
	d.ok("SET", proto.KV("wdog_ms", proto.Int(int(wdog/time.Millisecond))))
	idle := func(how string) {
		t.Helper()
		quiet := d.c.Quiet(wdog + d.dur(300*time.Millisecond))
		if e, none := noneOf(quiet, isEvt("WDOG")); !none {
			t.Fatalf("%s: EVT WDOG with a zero setpoint: %v", how, e)
		}
		if l := d.tlm(); l.Field("st") != "RDY" || num(t, l, "vl") != 0 || num(t, l, "vr") != 0 {
			t.Fatalf("%s, then %v without a command: %v, want st=RDY at rest", how, wdog, l)
		}
	}
	idle("never driven")
	d.ok("VEL", proto.Float(0.2, 3), proto.Int(0))
	d.ok("STOP")
	idle("VEL then STOP")
	d.ok("VEL", proto.Float(0.2, 3), proto.Float(0.5, 3))
	d.ok("VEL", proto.Int(0), proto.Int(0))
	idle("VEL then VEL 0 0")
	d.ok("HB")
	idle("HB at rest")
	v := d.ok("VEL", proto.Float(0.1, 3), proto.Int(0))
	e, _ := d.evt("WDOG", wdog+d.dur(time.Second))
	if got := e.At.Sub(v.At); got < wdog/2 {
		t.Fatalf("EVT WDOG %v after the VEL's OK, watchdog %v", got, wdog)
	}
	if l := d.tlm(); l.Field("st") != "FS" || num(t, l, "vl") != 0 {
		t.Fatalf("motion after an idle spell, then silence: %v, want st=FS at rest", l)
	}
}

func watchdogRefreshCase(d *dut) {
	t := d.t
	wdog := d.dur(400 * time.Millisecond)
	d.ok("SET", proto.KV("wdog_ms", proto.Int(int(min(wdog, 5*time.Second)/time.Millisecond))))
	var seen []Line
	end := time.Now().Add(3 * wdog)
	tick := time.NewTicker(wdog / 4)
	defer tick.Stop()
	for time.Now().Before(end) {
		l, before := d.cmd("VEL", proto.Float(0.1, 3), proto.Int(0))
		if l.Kind != proto.KindOK {
			t.Fatal(l)
		}
		seen = append(seen, before...)
		<-tick.C
	}
	d.ok("STOP")
	if e, none := noneOf(seen, isEvt("WDOG")); !none {
		t.Fatalf("EVT WDOG while VEL came every %v (wdog_ms %v): %v", wdog/4, wdog, e)
	}
}

func telemetryRateCase(d *dut) {
	t := d.t
	if !d.h.Has("tlm") {
		t.Skip("no tlm capability")
	}
	const hz = 20
	d.ok("SET", proto.KV("tlm_hz", proto.Int(hz)))
	d.c.Drain()
	window := time.Second
	var tl []Line
	for _, l := range d.c.Quiet(window) {
		if l.Kind == proto.KindTLM {
			tl = append(tl, l)
		}
	}
	lo, hi := int(hz/2/d.slack), hz*3/2+1
	if len(tl) < lo || len(tl) > hi {
		t.Fatalf("%d TLM lines in %v at tlm_hz=%d, want %d–%d", len(tl), window, hz, lo, hi)
	}
	for i := 1; i < len(tl); i++ {
		dt := tl[i].TimeMs - tl[i-1].TimeMs
		if dt == 0 || dt > uint32(d.dur(500*time.Millisecond)/time.Millisecond) {
			t.Fatalf("t_ms steps %d between %v and %v", dt, tl[i-1], tl[i])
		}
	}
}

func burstCase(d *dut) {
	t := d.t
	d.ok("SET", proto.KV("tlm_hz", proto.Int(0)))
	var b strings.Builder
	var seqs []uint16
	for {
		s := d.next()
		line := command(s, "PING")
		if b.Len()+len(line) > d.h.RX {
			d.seq--
			break
		}
		b.WriteString(line)
		seqs = append(seqs, s)
	}
	v := d.next()
	if line := command(v, "VEL", proto.Float(0.1, 3), proto.Int(0)); b.Len()+len(line) <= d.h.RX {
		b.WriteString(line)
		seqs = append(seqs, v)
	} else {
		d.seq--
	}
	d.c.WriteString(b.String())
	var replies []Line
	for range seqs {
		l, before := d.c.WaitFor(d.reply(), "a reply", Line.Final)
		if e, none := noneOf(before, isEvt("OVERFLOW")); !none {
			t.Fatalf("%v for a burst of %d bytes with rx=%d", e, b.Len(), d.h.RX)
		}
		replies = append(replies, l)
	}
	for i, l := range replies {
		if l.Kind != proto.KindOK || l.Seq != seqs[i] {
			t.Fatalf("burst replies %v, want OK for %v in order", replies, seqs)
		}
	}
	d.ok("PING")
	for _, l := range d.c.Drain() {
		if l.Final() {
			t.Fatalf("extra reply %v", l)
		}
	}
}

func resetCase(d *dut) {
	t := d.t
	d.ok("SET", proto.KV("wdog_ms", proto.Int(300)))
	if d.h.Has("strict") {
		d.ok("SET", proto.KV("strict", proto.Int(1)))
	}
	d.ok("RESET")
	h, _ := d.c.WaitFor(d.dur(3*time.Second), "HELLO after RESET", func(l Line) bool { return l.Kind == proto.KindHello })
	if h.Text != d.hello.Text {
		t.Errorf("HELLO after RESET %q, boot banner %q", h.Text, d.hello.Text)
	}
	s := d.next()
	if l := d.raw(fmt.Sprintf("%d GET wdog_ms\n", s)); l.Kind != proto.KindOK || l.Field("wdog_ms") != "500" {
		t.Fatalf("after RESET (strict off, defaults back): %v", l)
	}
}
