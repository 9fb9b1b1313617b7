package devices

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/teleop/teleop/devices/proto"
	"github.com/teleop/teleop/devices/sim"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitLimit bounds every wait on an event; tests never sleep to order events.
const waitLimit = 10 * time.Second

// recorder is an append-only list of strings that tests wait on.
type recorder struct {
	mu    sync.Mutex
	items []string
	ch    chan struct{} // closed and replaced on every add
}

func newRecorder() *recorder { return &recorder{ch: make(chan struct{})} }

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.items = append(r.items, s)
	close(r.ch)
	r.ch = make(chan struct{})
	r.mu.Unlock()
}

func (r *recorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.items...)
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.items)
}

// waitFrom waits for an item at index ≥ from that matches, returning its index.
func (r *recorder) waitFrom(t *testing.T, from int, what string, match func(string) bool) int {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		r.mu.Lock()
		for i := from; i < len(r.items); i++ {
			if match(r.items[i]) {
				r.mu.Unlock()
				return i
			}
		}
		ch := r.ch
		r.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; have:\n  %s", what, strings.Join(quoteAll(r.all()), "\n  "))
		}
	}
}

func (r *recorder) wait(t *testing.T, what string, match func(string) bool) int {
	t.Helper()
	return r.waitFrom(t, 0, what, match)
}

func (r *recorder) count(match func(string) bool) int {
	n := 0
	for _, s := range r.all() {
		if match(s) {
			n++
		}
	}
	return n
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

func eq(want string) func(string) bool { return func(s string) bool { return s == want } }
func has(sub string) func(string) bool {
	return func(s string) bool { return strings.Contains(s, sub) }
}
func verb(v string) func(string) bool    { return func(s string) bool { return cmdVerb(s) == v } }
func stateIs(st State) func(string) bool { return eq(st.String()) }

// cmdVerb is the verb of a host command line ("3 VEL 0.1 0*4C" → "VEL").
func cmdVerb(line string) string {
	f := strings.Fields(line)
	if len(f) < 2 {
		return ""
	}
	v, _, _ := strings.Cut(f[1], "*")
	return v
}

// testLog is a logger whose lines go to t.Log and into a recorder.
type testLog struct {
	t   *testing.T
	rec *recorder
}

func (l testLog) Write(p []byte) (int, error) {
	s := strings.TrimRight(string(p), "\n")
	l.rec.add(s)
	l.t.Log(s)
	return len(p), nil
}

func newTestLogger(t *testing.T) (*slog.Logger, *recorder) {
	rec := newRecorder()
	h := slog.NewTextHandler(testLog{t, rec}, &slog.HandlerOptions{Level: slog.LevelDebug})
	return slog.New(h), rec
}

// fakeDev is a scripted device on the master side of a real pty: the host
// opens the slave path with go.bug.st/serial, as it opens a board. By
// default it speaks teleop/1 like a well-behaved firmware (HELLO, OK,
// one-shot reply cache, e-stop latch, '?' telemetry); tests change its
// behaviour with the fields guarded by mu.
type fakeDev struct {
	t    *testing.T
	got  *recorder // every command line and realtime byte ("!", "?", "\x18") received
	link string    // stable symlink to the current slave, if any

	mu        sync.Mutex
	master    *os.File
	slave     *os.File // kept open, so the master never sees EIO between host opens
	path      string
	hello     proto.Hello
	silent    bool // read everything, answer nothing
	estop     bool
	fs        bool // failsafe: the watchdog expired; VEL/HB/CLEAR leave it
	tms       uint32
	cacheSeq  uint16 // reply cache of the last one-shot (§7.2)
	cacheResp []string
	// script, when set, sees each parsed command first; handled=true
	// means its replies are final.
	script func(line string, c *proto.Command) (replies []string, handled bool)
	stall  chan struct{} // non-nil: the reader stops reading until it is closed
	wg     sync.WaitGroup
}

func newFakeDev(t *testing.T) *fakeDev {
	t.Helper()
	f := &fakeDev{
		t:     t,
		got:   newRecorder(),
		hello: proto.Hello{Major: 1, Minor: 0, FW: "fake/1.0.0", Board: "test", RX: 64, Caps: []string{"vel", "hb", "out:lights", "tlm", "estop", "strict"}},
	}
	f.plug()
	t.Cleanup(f.close)
	return f
}

// withLink gives the device a stable symlink that follows it across replugs.
func (f *fakeDev) withLink() *fakeDev {
	f.link = filepath.Join(f.t.TempDir(), "robot")
	f.mu.Lock()
	path := f.path
	f.mu.Unlock()
	if err := os.Symlink(path, f.link); err != nil {
		f.t.Fatal(err)
	}
	return f
}

// plug opens a fresh pty (a new /dev/pts/N) and starts reading it.
func (f *fakeDev) plug() {
	m, s := openTestPTY(f.t)
	f.mu.Lock()
	f.master, f.slave, f.path = m, s, s.Name()
	f.mu.Unlock()
	if f.link != "" {
		tmp := f.link + ".tmp"
		os.Remove(tmp)
		if err := os.Symlink(s.Name(), tmp); err != nil {
			f.t.Fatal(err)
		}
		if err := os.Rename(tmp, f.link); err != nil {
			f.t.Fatal(err)
		}
	}
	f.wg.Add(1)
	go f.readLoop(m)
}

// unplug closes the pty: the host's next read gets PortClosed / EIO.
func (f *fakeDev) unplug() {
	f.mu.Lock()
	m, s := f.master, f.slave
	f.master, f.slave = nil, nil
	if st := f.stall; st != nil {
		close(st)
		f.stall = nil
	}
	f.mu.Unlock()
	if m != nil {
		m.Close()
		s.Close()
	}
	f.wg.Wait()
}

// replug comes back under a new /dev/pts name: ptys reuse the lowest free
// number, so a squatter holds the old one while the new pty is opened.
func (f *fakeDev) replug() {
	sm, ss, err := pty.Open()
	if err != nil {
		f.t.Fatal(err)
	}
	defer sm.Close()
	defer ss.Close()
	f.plug()
}

func (f *fakeDev) close() {
	f.unplug()
}

func (f *fakeDev) Path() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.link != "" {
		return f.link
	}
	return f.path
}

func (f *fakeDev) set(fn func(f *fakeDev)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// send writes raw bytes to the host.
func (f *fakeDev) send(b string) {
	f.mu.Lock()
	m := f.master
	f.mu.Unlock()
	if m == nil {
		return
	}
	m.Write([]byte(b))
}

// sendLine writes a device line, adding "*HH\n".
func (f *fakeDev) sendLine(body string) { f.send(withSum(body)) }

func withSum(body string) string {
	return string(proto.AppendChecksum([]byte(body), 0))
}

func (f *fakeDev) helloLine() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return string(proto.AppendHello(nil, f.hello))
}

// reboot plays a reset: the state is lost and a HELLO goes out.
func (f *fakeDev) reboot() {
	f.mu.Lock()
	f.estop, f.cacheSeq, f.cacheResp = false, 0, nil
	f.mu.Unlock()
	f.send(f.helloLine())
}

// stallReads makes the device stop reading until resumeReads.
func (f *fakeDev) stallReads() {
	f.mu.Lock()
	f.stall = make(chan struct{})
	f.mu.Unlock()
}

func (f *fakeDev) resumeReads() {
	f.mu.Lock()
	if f.stall != nil {
		close(f.stall)
		f.stall = nil
	}
	f.mu.Unlock()
}

func (f *fakeDev) readLoop(m *os.File) {
	defer f.wg.Done()
	buf := make([]byte, 256)
	var line []byte
	for {
		f.mu.Lock()
		st := f.stall
		f.mu.Unlock()
		if st != nil {
			<-st
		}
		n, err := m.Read(buf)
		if err != nil {
			return
		}
		for _, c := range buf[:n] {
			switch c {
			case proto.ByteEstop:
				f.got.add("!")
				f.mu.Lock()
				was := f.estop
				f.estop = true
				f.mu.Unlock()
				line = line[:0]
				if !was {
					f.reply(m, withSum("EVT ESTOP src=byte"))
				}
			case proto.ByteTelemetry:
				f.got.add("?")
				f.reply(m, f.tlm())
			case proto.ByteResync:
				f.got.add("\x18")
				line = line[:0]
				f.mu.Lock()
				f.cacheSeq, f.cacheResp = 0, nil
				f.mu.Unlock()
			case '\n':
				l := string(line)
				line = line[:0]
				f.got.add(l)
				for _, r := range f.handle(l) {
					f.reply(m, r)
				}
			default:
				line = append(line, c)
			}
		}
	}
}

func (f *fakeDev) reply(m *os.File, line string) {
	f.mu.Lock()
	silent := f.silent
	f.mu.Unlock()
	if !silent {
		m.Write([]byte(line))
	}
}

func (f *fakeDev) tlm() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tms += 100
	st := "RDY"
	switch {
	case f.estop:
		st = "ES"
	case f.fs:
		st = "FS"
	}
	return withSum(fmt.Sprintf("TLM %d st=%s", f.tms, st))
}

// handle answers one command line like a conforming firmware.
func (f *fakeDev) handle(line string) []string {
	var c proto.Command
	raw := []byte(line)
	if err := proto.ParseCommand(raw, &c, false); err != nil {
		if pe, ok := err.(*proto.ProtoError); ok {
			return []string{string(pe.Reply(nil))}
		}
		return nil
	}
	f.mu.Lock()
	script := f.script
	f.mu.Unlock()
	if script != nil {
		if out, ok := script(line, &c); ok {
			return out
		}
	}
	verb := string(c.Verb)
	ok := func(extra ...string) []string {
		return append(extra, string(proto.AppendOK(nil, c.Seq)))
	}
	f.mu.Lock()
	oneShot := verb != "VEL" && verb != "HB"
	if oneShot && c.Seq == f.cacheSeq && f.cacheResp != nil {
		out := f.cacheResp
		f.mu.Unlock()
		return out
	}
	estop := f.estop
	f.mu.Unlock()
	var out []string
	switch verb {
	case "VER":
		out = ok(f.helloLine())
	case "PING", "SET", "STOP", "GET":
		out = ok()
	case "OUT":
		if estop {
			out = []string{string(proto.AppendErr(nil, c.Seq, true, proto.CodeEstop, "estop"))}
		} else {
			out = ok()
		}
	case "CLEAR":
		f.set(func(f *fakeDev) { f.estop, f.fs = false, false })
		if estop {
			out = ok(withSum("EVT CLEARED"))
		} else {
			out = ok()
		}
	case "ESTOP":
		f.set(func(f *fakeDev) { f.estop = true })
		out = ok()
	case "VEL", "HB":
		switch {
		case estop:
			out = []string{string(proto.AppendErr(nil, c.Seq, true, proto.CodeEstop, "estop"))}
		case verb == "VEL" && len(c.Args) == 2 && outOfRange(c.Args):
			out = []string{string(proto.AppendErr(nil, c.Seq, true, proto.CodeRange, "range"))}
		default:
			f.set(func(f *fakeDev) { f.fs = false })
			out = ok()
		}
	default:
		out = []string{string(proto.AppendErr(nil, c.Seq, true, proto.CodeUnknown, "unknown"))}
	}
	if oneShot {
		f.set(func(f *fakeDev) { f.cacheSeq, f.cacheResp = c.Seq, out })
	}
	return out
}

func outOfRange(args [][]byte) bool {
	for _, a := range args {
		v, ok := proto.ParseNumber(a)
		if !ok || v > 10 || v < -10 {
			return true
		}
	}
	return false
}

// openTestPTY opens a raw pty pair. The master is non-blocking, so the
// runtime poller serves it and Close interrupts a Read (pty.Open leaves it
// blocking, where Close does not).
func openTestPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, s, err := pty.Open()
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	fd, err := unix.FcntlInt(m.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	m.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	m = os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := sim.MakeRaw(s); err != nil {
		t.Fatal(err)
	}
	return m, s
}

// testConfig is a Config with timeouts short enough for tests.
func testConfig(port string) Config {
	return Config{
		Name:           "test",
		Port:           port,
		BootWait:       20 * time.Millisecond,
		CommandTimeout: 150 * time.Millisecond,
		SilenceTimeout: time.Second,
		WriteTimeout:   200 * time.Millisecond,
		BackoffMin:     20 * time.Millisecond,
		BackoffMax:     80 * time.Millisecond,
	}
}

// harness is a Device under test with its states, telemetry and events
// recorded.
type harness struct {
	d      *Device
	states *recorder
	tlm    *recorder
	evts   *recorder
	logs   *recorder
}

func openDevice(t *testing.T, cfg Config, opts *Options) *harness {
	t.Helper()
	logger, logs := newTestLogger(t)
	h := &harness{states: newRecorder(), tlm: newRecorder(), evts: newRecorder(), logs: logs}
	var o Options
	if opts != nil {
		o = *opts
	}
	o.Logger = logger
	o.OnState = func(s State) { h.states.add(s.String()) }
	o.OnTelemetry = func(tl Telemetry) { h.tlm.add(fmt.Sprintf("%d st=%s", tl.TimeMs, tl.State)) }
	o.OnEvent = func(e Event) { h.evts.add(e.Name) }
	d, err := Open(context.Background(), cfg, &o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	h.d = d
	t.Cleanup(func() { d.Close() })
	return h
}

func (h *harness) waitState(t *testing.T, s State) {
	t.Helper()
	h.states.wait(t, "state "+s.String(), stateIs(s))
}

// waitReady waits for the next ready state after the states seen so far.
func (h *harness) waitReadyFrom(t *testing.T, from int) int {
	t.Helper()
	return h.states.waitFrom(t, from, "state ready", stateIs(StateReady))
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}
