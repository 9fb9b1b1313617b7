package sim

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"go.bug.st/serial"

	"github.com/teleop/teleop/clock"
	"github.com/teleop/teleop/devices/conformance"
	"github.com/teleop/teleop/devices/proto"
)

// Bounds on waits for lines; they never order events.
const wait = 5 * time.Second

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines left running:\n%s", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

func leakedGoroutines() string {
	deadline := time.Now().Add(3 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "devices/sim.(*") && !strings.Contains(g, "leakedGoroutines") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(10 * time.Millisecond) // polling for goroutines to finish, not ordering events
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

type rig struct {
	t   *testing.T
	r   *Robot
	c   *conformance.Conn
	clk *clock.Fake
}

// start runs a robot on a fake clock and opens its pty like the host does.
// The HELLO at boot is consumed.
func start(t *testing.T, o *Options) *rig {
	t.Helper()
	if o == nil {
		o = &Options{}
	}
	clk := clock.NewFake()
	o.Clock = clk
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	c := conformance.Open(t, r.Path())
	g := &rig{t: t, r: r, c: c, clk: clk}
	l, _ := c.WaitFor(wait, "HELLO", func(l conformance.Line) bool { return l.Kind == proto.KindHello })
	if l.Raw != strings.TrimSuffix(string(proto.AppendHello(nil, r.Hello())), "\n") {
		t.Fatalf("boot banner %q", l.Raw)
	}
	return g
}

// do sends a command and returns its final reply and the lines before it.
func (g *rig) do(seq uint16, verb string, args ...proto.Arg) (conformance.Line, []conformance.Line) {
	g.t.Helper()
	g.c.Send(seq, verb, args...)
	return g.c.Reply(wait, seq)
}

func (g *rig) ok(seq uint16, verb string, args ...proto.Arg) conformance.Line {
	g.t.Helper()
	l, _ := g.do(seq, verb, args...)
	if l.Kind != proto.KindOK {
		g.t.Fatalf("%d %s: got %v, want OK", seq, verb, l)
	}
	return l
}

func (g *rig) tlm() conformance.Line {
	g.t.Helper()
	g.c.Write([]byte{proto.ByteTelemetry})
	l, _ := g.c.WaitFor(wait, "TLM", func(l conformance.Line) bool { return l.Kind == proto.KindTLM })
	return l
}

func (g *rig) evt(name string) conformance.Line {
	g.t.Helper()
	l, _ := g.c.WaitFor(wait, "EVT "+name, func(l conformance.Line) bool { return l.Kind == proto.KindEvt && l.Name == name })
	return l
}

func TestPtyIsRaw(t *testing.T) {
	master, slave, err := openPTY()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	defer slave.Close()
	p, err := serial.Open(slave.Name(), &conformance.Mode)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	// host → device: every byte arrives unchanged (no ICRNL, no ISIG, no IXON)
	if _, err := p.Write(all); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 0, 256)
	buf := make([]byte, 256)
	master.SetReadDeadline(time.Now().Add(wait))
	for len(got) < 256 {
		n, err := master.Read(buf)
		if err != nil {
			t.Fatalf("master read after %d bytes: %v", len(got), err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, all) {
		t.Fatalf("host → device bytes changed:\n%q\n%q", got, all)
	}
	// device → host: no echo, no ONLCR
	if _, err := master.Write(all); err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	p.SetReadTimeout(wait)
	for len(got) < 256 {
		n, err := p.Read(buf)
		if err != nil || n == 0 {
			t.Fatalf("host read after %d bytes: %d %v", len(got), n, err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, all) {
		t.Fatalf("device → host bytes changed:\n%q", got)
	}
	master.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, _ := master.Read(buf); n != 0 {
		t.Fatalf("echo: the master read back %q", buf[:n])
	}
}

func TestCRAndResyncPassThrough(t *testing.T) {
	g := start(t, nil)
	g.c.WriteString("1 PI\rNG*01\r\n")
	if l, _ := g.c.Reply(wait, 1); l.Kind != proto.KindOK {
		t.Fatalf("got %v", l)
	}
	g.c.WriteString("99 VEL 1\x182 PING\n")
	if l, _ := g.c.Reply(wait, 2); l.Kind != proto.KindOK {
		t.Fatalf("got %v", l)
	}
}

func TestDriveAndPose(t *testing.T) {
	g := start(t, &Options{TLMHz: -1})
	g.ok(2, "VEL", proto.Float(0.4, 3), proto.Float(0.2, 3))
	st := g.r.State()
	if !near(st.Left, 0.37) || !near(st.Right, 0.43) || st.Mode != Ready || st.LastSeq != 2 {
		t.Fatalf("after VEL 0.4 0.2: %+v", st)
	}
	g.ok(3, "VEL", proto.Float(0.5, 3), proto.Float(0, 3))
	<-g.clk.BlockUntil(1) // the watchdog timer is armed
	g.clk.Advance(400 * time.Millisecond)
	l := g.tlm()
	if l.Field("st") != "RDY" || l.Field("x") != "0.200" || l.Field("y") != "0.000" || l.Field("vl") != "0.500" || l.TimeMs != 400 {
		t.Fatalf("TLM after 0.4 s at 0.5 m/s: %v", l)
	}
	if bat := g.r.State().Battery; bat >= 12.6 || bat < 12.5 || l.Field("bat") != "12.60" {
		t.Fatalf("battery %v (TLM %s) after 0.4 s", bat, l.Field("bat"))
	}
	// Clamped to the limits; beyond 10× is refused.
	g.ok(4, "VEL", proto.Float(3, 1), proto.Float(0, 0))
	if st := g.r.State(); st.Left != 1 || st.Right != 1 {
		t.Fatalf("VEL 3 0 not clamped to 1 m/s: %+v", st)
	}
	if l, _ := g.do(5, "VEL", proto.Float(11, 0), proto.Float(0, 0)); l.Code != 4 {
		t.Fatalf("VEL 11: %v", l)
	}
	// Spinning in place for a quarter turn.
	g.ok(6, "VEL", proto.Float(0, 0), proto.Float(1, 0))
	g.clk.Advance(100 * time.Millisecond)
	before := g.r.State().Theta
	g.ok(7, "VEL", proto.Float(0, 0), proto.Float(1, 0))
	g.clk.Advance(100 * time.Millisecond)
	if d := g.r.State().Theta - before; d < 0.099 || d > 0.101 {
		t.Fatalf("turned %v rad in 0.1 s at 1 rad/s", d)
	}
}

func TestWatchdog(t *testing.T) {
	g := start(t, &Options{TLMHz: -1, WdogMs: 300})
	g.ok(3, "VEL", proto.Float(0.4, 3), proto.Float(0, 3))
	<-g.clk.BlockUntil(1)
	g.clk.Advance(299 * time.Millisecond)
	if l := g.tlm(); l.Field("st") != "RDY" {
		t.Fatalf("at 299 ms: %v", l)
	}
	g.clk.Advance(time.Millisecond)
	g.evt("WDOG")
	if l := g.tlm(); l.Field("st") != "FS" || l.Field("vl") != "0.000" || l.Field("lseq") != "3" {
		t.Fatalf("after the watchdog: %v", l)
	}
	g.ok(4, "VEL", proto.Float(0.1, 3), proto.Float(0, 3))
	if l := g.tlm(); l.Field("st") != "RDY" || l.Field("vl") != "0.100" {
		t.Fatalf("after a fresh VEL: %v", l)
	}
	// PING does not feed the watchdog; HB does, and leaves FS with a zero setpoint.
	var seen []conformance.Line
	for i := range 5 {
		g.clk.Advance(100 * time.Millisecond)
		l, before := g.do(uint16(10+i), "PING")
		seen = append(append(seen, before...), l)
	}
	if i := slices.IndexFunc(seen, func(l conformance.Line) bool { return l.Name == "WDOG" }); i != 2 {
		t.Fatalf("EVT WDOG at %d in %v, want before the third PING's reply", i, seen)
	}
	g.ok(20, "HB")
	if l := g.tlm(); l.Field("st") != "RDY" || l.Field("vl") != "0.000" {
		t.Fatalf("after HB in FS: %v", l)
	}
	// At a zero setpoint the watchdog does not trip: an idle robot is not
	// in failsafe (after HB in FS, after STOP, after VEL 0 0).
	idle := func(how string) {
		t.Helper()
		g.clk.Advance(time.Second)
		if l := g.tlm(); l.Field("st") != "RDY" || l.Field("vl") != "0.000" {
			t.Fatalf("%s, then 1 s: %v", how, l)
		}
		for _, x := range g.c.Drain() {
			if x.Kind == proto.KindEvt {
				t.Fatalf("%s: unexpected %v", how, x)
			}
		}
	}
	idle("HB in FS")
	g.ok(21, "VEL", proto.Float(0.4, 3), proto.Float(0, 3))
	g.ok(22, "STOP")
	idle("STOP")
	g.ok(23, "VEL", proto.Float(0.4, 3), proto.Float(0, 3))
	g.ok(24, "VEL", proto.Float(0, 3), proto.Float(0, 3))
	idle("VEL 0 0")
	// Motion after the idle spell is watched again.
	g.ok(25, "VEL", proto.Float(0.2, 3), proto.Float(0, 3))
	g.clk.Advance(300 * time.Millisecond)
	g.evt("WDOG")
	if l := g.tlm(); l.Field("st") != "FS" || l.Field("lseq") != "25" {
		t.Fatalf("after motion and the watchdog: %v", l)
	}
}

func TestTelemetryRate(t *testing.T) {
	g := start(t, nil) // 10 Hz
	for i := 1; i <= 3; i++ {
		g.clk.Advance(100 * time.Millisecond)
		l, _ := g.c.WaitFor(wait, "TLM", func(l conformance.Line) bool { return l.Kind == proto.KindTLM })
		if l.TimeMs != uint32(100*i) {
			t.Fatalf("TLM %d at t=%d", i, l.TimeMs)
		}
	}
	g.ok(2, "SET", proto.KV("tlm_hz", proto.Int(0)))
	g.clk.Advance(time.Second)
	g.ok(3, "PING")
	for _, l := range g.c.Drain() {
		if l.Kind == proto.KindTLM {
			t.Fatalf("TLM with tlm_hz=0: %v", l)
		}
	}
}

func TestReplyCache(t *testing.T) {
	g := start(t, nil)
	before := g.r.State().Executed
	g.c.Send(13, "OUT", proto.KV("lights", proto.Int(1)))
	g.c.Send(13, "OUT", proto.KV("lights", proto.Int(1)))
	a, _ := g.c.Reply(wait, 13)
	b, _ := g.c.Reply(wait, 13)
	if a.Raw != "OK 13*26" || b.Raw != a.Raw {
		t.Fatalf("replies %v and %v", a, b)
	}
	st := g.r.State()
	if st.Executed-before != 1 || st.Replayed != 1 || st.Outputs["lights"] != 1 {
		t.Fatalf("executed %d, replayed %d, lights %d", st.Executed-before, st.Replayed, st.Outputs["lights"])
	}
	// A replayed VER repeats its HELLO.
	g.ok(14, "VER")
	l, before2 := g.do(14, "VER")
	if l.Kind != proto.KindOK || len(before2) == 0 || before2[len(before2)-1].Kind != proto.KindHello {
		t.Fatalf("VER replay: %v after %v", l, before2)
	}
	// RESYNC forgets the cache.
	g.c.Write([]byte{proto.ByteResync})
	g.ok(14, "OUT", proto.KV("lights", proto.Int(0)))
	if st := g.r.State(); st.Outputs["lights"] != 0 || st.Replayed != 2 {
		t.Fatalf("after RESYNC: %+v", st)
	}
}

func TestEstopLatchAndOrder(t *testing.T) {
	g := start(t, &Options{TLMHz: -1})
	g.ok(9, "VEL", proto.Float(0.3, 3), proto.Float(0, 3))
	g.c.WriteString("10 VEL 0.5!")
	if l := g.evt("ESTOP"); l.Field("src") != "byte" {
		t.Fatalf("%v", l)
	}
	if st := g.r.State(); st.Mode != Estop || st.Left != 0 || st.Right != 0 {
		t.Fatalf("after '!': %+v", st)
	}
	g.c.WriteString("\n") // the rest of the line: empty, no reply
	if l, _ := g.do(11, "VEL", proto.Float(0.2, 3), proto.Float(0, 3)); l.Raw != "ERR 11 5 estop*2D" {
		t.Fatalf("VEL in ES: %v", l)
	}
	// A CLEAR that was sent before a '!' does not release it.
	g.c.WriteString("12 CLEAR*7A\n!")
	l, _ := g.c.Reply(wait, 12)
	if l.Kind != proto.KindOK {
		t.Fatal(l)
	}
	if l := g.tlm(); l.Field("st") != "ES" {
		t.Fatalf("after CLEAR then '!': %v", l)
	}
	l, before := g.do(13, "CLEAR")
	if l.Kind != proto.KindOK || len(before) != 1 || before[0].Name != "CLEARED" {
		t.Fatalf("CLEAR: %v after %v", l, before)
	}
	g.ok(14, "VEL", proto.Float(0.2, 3), proto.Float(0, 3))
}

func TestStaleSetpoints(t *testing.T) {
	g := start(t, &Options{TLMHz: -1})
	g.ok(9, "VEL", proto.Float(0.2, 3), proto.Float(0, 3))
	for _, s := range []uint16{8, 9} {
		if l, _ := g.do(s, "VEL", proto.Float(0.3, 3), proto.Float(0, 3)); l.Code != 8 {
			t.Fatalf("VEL %d after 9: %v", s, l)
		}
	}
	if l, _ := g.do(7, "HB"); l.Code != 8 {
		t.Fatalf("HB 7: %v", l)
	}
	for _, s := range []uint16{30000, 60000, 65535} {
		g.ok(s, "VEL", proto.Float(0, 0), proto.Float(0, 0))
	}
	g.ok(1, "HB") // wraps: 1 is newer than 65535
	if st := g.r.State(); st.LastSeq != 1 || st.Setpoints != 5 {
		t.Fatalf("%+v", st)
	}
}

func TestOverflow(t *testing.T) {
	g := start(t, &Options{TLMHz: -1})
	g.r.Faults().SetReplyDelay(time.Second)
	// 8 lines of 10 bytes: more than the 64-byte buffer while the robot is busy.
	var burst []byte
	for i := range 8 {
		burst, _ = proto.AppendCommand(burst, uint16(100+i), "PING")
	}
	g.c.Write(burst)
	<-g.clk.BlockUntil(1) // the first line waits out the delay
	g.evt("OVERFLOW")
	g.r.Faults().SetReplyDelay(0)
	g.clk.Advance(time.Second)
	var got []uint16
	for {
		l, err := g.c.Next(200 * time.Millisecond)
		if err != nil {
			break
		}
		if l.Final() {
			got = append(got, l.Seq)
		}
	}
	if len(got) == 0 || len(got) >= 8 || got[0] != 100 {
		t.Fatalf("replies %v: want the lines that fit, in order", got)
	}
	if st := g.r.State(); st.Overflows == 0 {
		t.Fatal("no overflow counted")
	}
	g.ok(200, "PING")
	if l := g.tlm(); l.Field("ovf") == "" {
		t.Fatalf("TLM without ovf: %v", l)
	}
}

func TestResetFault(t *testing.T) {
	g := start(t, &Options{TLMHz: -1})
	g.ok(2, "SET", proto.KV("strict", proto.Int(1)), proto.KV("wdog_ms", proto.Int(300)))
	g.ok(3, "VEL", proto.Float(0.2, 3), proto.Float(0, 3))
	g.r.Faults().Reset()
	g.c.WaitFor(wait, "HELLO", func(l conformance.Line) bool { return l.Kind == proto.KindHello })
	st := g.r.State()
	if st.Boots != 2 || st.Settings.Strict || st.Settings.WdogMs != 500 || st.Left != 0 || st.LastSeq != 0 {
		t.Fatalf("after reset: %+v", st)
	}
	// RESET answers, then boots.
	l, _ := g.do(4, "RESET")
	if l.Kind != proto.KindOK {
		t.Fatal(l)
	}
	g.c.WaitFor(wait, "HELLO", func(l conformance.Line) bool { return l.Kind == proto.KindHello })
	if g.r.State().Boots != 3 {
		t.Fatal("RESET did not boot")
	}
}

func TestUnplugReplug(t *testing.T) {
	link := filepath.Join(t.TempDir(), "robot")
	g := start(t, &Options{TLMHz: -1, Link: link})
	first := g.r.Path()
	if got, _ := os.Readlink(link); got != first {
		t.Fatalf("link → %q, want %q", got, first)
	}
	g.r.Faults().Unplug(2 * time.Second)
	if _, err := g.c.Next(wait); err == nil || err == conformance.ErrTimeout {
		t.Fatalf("host read after unplug: %v", err)
	}
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Fatalf("link still there while unplugged: %v", err)
	}
	if _, err := os.Stat(first); !os.IsNotExist(err) {
		t.Fatalf("%s still there while unplugged: %v", first, err)
	}
	if st := g.r.State(); st.Plugged || st.Path != "" {
		t.Fatalf("%+v", st)
	}
	g.clk.Advance(2 * time.Second)
	var now string
	for now == "" { // the replug runs on the robot's goroutine; poll its result
		now = g.r.Path()
		runtime.Gosched()
	}
	if got, _ := os.Readlink(link); got != now {
		t.Fatalf("link → %q, want %q", got, now)
	}
	c := conformance.Open(t, link) // the host finds it again by the link
	c.WaitFor(wait, "HELLO", func(l conformance.Line) bool { return l.Kind == proto.KindHello })
	c.Send(1, "PING")
	if l, _ := c.Reply(wait, 1); l.Kind != proto.KindOK {
		t.Fatal(l)
	}
	if err := g.r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Fatalf("link left after Close: %v", err)
	}
}

// A host that lost its port closes it, which frees the old pty number; the
// robot still comes back under another path because it reserved the new pty
// before it let go of the old one.
func TestReplugUnderNewPath(t *testing.T) {
	link := filepath.Join(t.TempDir(), "robot")
	g := start(t, &Options{TLMHz: -1, Link: link})
	first := g.r.Path()
	g.r.Faults().Unplug(0) // away until Replug
	if _, err := g.c.Next(wait); err == nil || err == conformance.ErrTimeout {
		t.Fatalf("host read after unplug: %v", err)
	}
	if _, err := os.Stat(first); !os.IsNotExist(err) {
		t.Fatalf("%s still there while unplugged: %v", first, err)
	}
	if p, err := serial.Open(first, &conformance.Mode); err == nil {
		p.Close()
		t.Fatalf("%s opens while unplugged", first)
	}
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Fatalf("the reserved pty is published while unplugged: %v", err)
	}
	if st := g.r.State(); st.Plugged || st.Path != "" {
		t.Fatalf("%+v", st)
	}
	g.c.Close() // the host lets go: the kernel may hand out first's number again

	if err := g.r.Faults().Replug(); err != nil {
		t.Fatal(err)
	}
	now := g.r.Path()
	if now == "" || now == first {
		t.Fatalf("replugged at %q, before at %q: want a new path", now, first)
	}
	if got, _ := os.Readlink(link); got != now {
		t.Fatalf("link → %q, want %q", got, now)
	}
	c := conformance.Open(t, link)
	c.WaitFor(wait, "HELLO", func(l conformance.Line) bool { return l.Kind == proto.KindHello })
	c.Send(1, "PING")
	if l, _ := c.Reply(wait, 1); l.Kind != proto.KindOK {
		t.Fatal(l)
	}
	if st := g.r.State(); st.Boots != 2 || st.Path != now {
		t.Fatalf("%+v", st)
	}
}

// Closing an unplugged robot closes its reserved pty too.
func TestCloseWhileUnplugged(t *testing.T) {
	g := start(t, &Options{TLMHz: -1})
	g.r.Faults().Unplug(time.Hour)
	g.r.mu.Lock()
	sp := g.r.spare
	g.r.mu.Unlock()
	if sp == nil {
		t.Fatal("no pty reserved for the replug")
	}
	path := sp.slave.Name()
	g.r.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("reserved %s left open after Close: %v", path, err)
	}
}

func TestStall(t *testing.T) {
	g := start(t, &Options{TLMHz: -1})
	g.r.Faults().Stall(true)
	// The host writes until the pty is full and its Write blocks.
	port := g.c.Port()
	line, _ := proto.AppendCommand(nil, 7, "PING")
	progress := make(chan int, 1)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for n := 1; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := port.Write(line); err != nil {
				return
			}
			select {
			case <-progress:
			default:
			}
			progress <- n
		}
	}()
	defer func() { close(stop); <-done }()
	last := 0
	for blocked := false; !blocked; {
		select {
		case n := <-progress:
			if n > 1_000_000 {
				t.Fatal("a million writes to a stalled robot did not block")
			}
			last = n
		case <-time.After(500 * time.Millisecond): // no progress for a while: the Write blocks
			blocked = true
		}
	}
	if last == 0 {
		t.Fatal("no write got through before the stall filled the pty")
	}
	t.Logf("the host's Write blocked after %d lines", last)
	g.r.Faults().Stall(false)
	g.c.WaitFor(wait, "a reply after the stall", conformance.Line.Final)
}

func TestByteFaults(t *testing.T) {
	g := start(t, &Options{TLMHz: -1})
	f := g.r.Faults()
	next := func() conformance.Line {
		t.Helper()
		l, err := g.c.Next(wait)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	// A lost reply: the next line is the next command's.
	f.DropLines(ToHost, 1)
	g.c.Send(1, "PING")
	g.c.Send(2, "PING")
	if l := next(); l.Seq != 2 {
		t.Fatalf("after a dropped line: %v", l)
	}
	// A corrupted or doubled byte: the host's codec refuses the line.
	for name, fault := range map[string]func(){
		"corrupt":   func() { f.CorruptNext(ToHost, 1) },
		"duplicate": func() { f.DuplicateNext(ToHost, 1) },
		"drop byte": func() { f.DropNext(ToHost, 1) },
	} {
		fault()
		g.c.Send(3, "PING")
		if l := next(); l.Err == nil {
			t.Fatalf("%s: %v parsed", name, l)
		}
		g.c.Send(4, "PING")
		if l := next(); l.Raw != "OK 4*10" {
			t.Fatalf("%s: the line after: %v", name, l)
		}
	}
	// Host → robot: a corrupted command is refused, never run.
	f.CorruptNext(ToDevice, 1)
	g.c.WriteString("\r") // the corrupted byte: '\r' becomes another byte of the next line
	g.c.Send(5, "VEL", proto.Float(0.5, 3), proto.Float(0, 3))
	if l := next(); l.Kind != proto.KindErr && l.Kind != proto.KindEvt {
		t.Fatalf("corrupted VEL: %v", l)
	}
	if st := g.r.State(); st.Left != 0 || st.Setpoints != 0 {
		t.Fatalf("a corrupted VEL ran: %+v", st)
	}
	// Probabilities: everything lost, then nothing.
	f.SetDrop(ToHost, 1)
	g.c.Send(6, "PING")
	if l := g.c.Quiet(100 * time.Millisecond); len(l) != 0 {
		t.Fatalf("drop=1 let %v through", l)
	}
	f.Clear()
	g.ok(7, "PING")
}
