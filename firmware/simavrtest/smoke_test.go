package simavrtest_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.bug.st/serial"

	"github.com/teleop/teleop/firmware/simavrtest"
)

// Timeouts are loose on purpose (the emulator shares the CPU with the rest
// of the test run); they bound a wait, they never order events.
const (
	helloTimeout = 10 * time.Second
	replyTimeout = 2 * time.Second
)

type line struct {
	text string    // without "*HH" and "\n"
	at   time.Time // when the reader saw its '\n'
}

// board is one emulated Uno: a serial port, one reader goroutine that
// splits lines and checks every checksum, and the test goroutine as the
// only writer.
type board struct {
	t     testing.TB
	port  serial.Port
	lines chan line
	errs  chan error
	wg    sync.WaitGroup
}

func open(t testing.TB) *board {
	t.Helper()
	return openSim(t, simavrtest.StartSim(t))
}

func openSim(t testing.TB, sim *simavrtest.Sim) *board {
	t.Helper()
	path := sim.Path
	p, err := serial.Open(path, &serial.Mode{BaudRate: 115200, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	if err := p.SetReadTimeout(50 * time.Millisecond); err != nil {
		t.Fatalf("set read timeout: %v", err)
	}
	b := &board{t: t, port: p, lines: make(chan line, 1024), errs: make(chan error, 1)}
	b.wg.Add(1)
	go b.read()
	t.Cleanup(func() {
		p.Close() // ends read() with PortClosed
		b.wg.Wait()
	})
	return b
}

func (b *board) read() {
	defer b.wg.Done()
	defer close(b.lines)
	buf := make([]byte, 256)
	var acc []byte
	for {
		n, err := b.port.Read(buf)
		if err != nil {
			var pe *serial.PortError
			if !errors.As(err, &pe) || pe.Code() != serial.PortClosed {
				b.errs <- err
			}
			return
		}
		// n == 0 is a read timeout: keep going.
		for _, c := range buf[:n] {
			if c != '\n' {
				acc = append(acc, c)
				continue
			}
			text, err := verify(string(acc))
			acc = acc[:0]
			if err != nil {
				b.errs <- err
				return
			}
			select {
			case b.lines <- line{text, time.Now()}:
			default:
				b.errs <- fmt.Errorf("reader: line buffer full at %q", text)
				return
			}
		}
	}
}

// verify checks the "*HH" every reference-firmware line ends with.
func verify(s string) (string, error) {
	i := strings.LastIndexByte(s, '*')
	if i < 0 || len(s)-i != 3 {
		return "", fmt.Errorf("line without *HH: %q", s)
	}
	var sum byte
	for j := 0; j < i; j++ {
		sum ^= s[j]
	}
	if want := fmt.Sprintf("%02X", sum); s[i+1:] != want {
		return "", fmt.Errorf("line %q: checksum %s, want %s", s, s[i+1:], want)
	}
	if len(s)+1 > 128 {
		return "", fmt.Errorf("line over 128 bytes: %q", s)
	}
	return s[:i], nil
}

func withChecksum(cmd string) string {
	var sum byte
	for j := 0; j < len(cmd); j++ {
		sum ^= cmd[j]
	}
	return fmt.Sprintf("%s*%02X\n", cmd, sum)
}

// send writes raw bytes and returns the time just before the write.
func (b *board) send(raw string) time.Time {
	b.t.Helper()
	at := time.Now()
	if _, err := b.port.Write([]byte(raw)); err != nil {
		b.t.Fatalf("write %q: %v", raw, err)
	}
	return at
}

// cmd sends one command with its checksum.
func (b *board) cmd(c string) time.Time { return b.send(withChecksum(c)) }

// expect waits for the first line that starts with prefix. Lines skipped on
// the way (TLM, comments, events) are returned too, for checks on order.
func (b *board) expect(prefix string, timeout time.Duration) (line, []line) {
	b.t.Helper()
	var skipped []line
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case l, ok := <-b.lines:
			if !ok {
				b.t.Fatalf("port closed while waiting for %q", prefix)
			}
			if strings.HasPrefix(l.text, prefix) {
				return l, skipped
			}
			skipped = append(skipped, l)
		case err := <-b.errs:
			b.t.Fatalf("reader: %v", err)
		case <-deadline.C:
			b.t.Fatalf("no line starting %q within %v; saw %q", prefix, timeout, texts(skipped))
		}
	}
}

// reply waits for the final reply to seq and checks that no other final
// reply came first.
func (b *board) reply(seq int) string {
	b.t.Helper()
	got, ok := b.tryReply(seq, replyTimeout)
	if !ok {
		b.t.Fatalf("no reply to %d within %v", seq, replyTimeout)
	}
	return got
}

// tryReply is reply without the failure on timeout. The lines before the
// reply are not returned.
func (b *board) tryReply(seq int, timeout time.Duration) (string, bool) {
	b.t.Helper()
	ok, errPrefix := fmt.Sprintf("OK %d", seq), fmt.Sprintf("ERR %d ", seq)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case l, open := <-b.lines:
			if !open {
				b.t.Fatalf("port closed while waiting for the reply to %d", seq)
			}
			if l.text == ok || strings.HasPrefix(l.text, ok+" ") || strings.HasPrefix(l.text, errPrefix) {
				return l.text, true
			}
			if strings.HasPrefix(l.text, "OK ") || strings.HasPrefix(l.text, "ERR ") {
				b.t.Fatalf("waiting for the reply to %d, got %q", seq, l.text)
			}
		case err := <-b.errs:
			b.t.Fatalf("reader: %v", err)
		case <-deadline.C:
			return "", false
		}
	}
}

// retry sends a one-shot command with the same seq until it is answered,
// as a host does (protocol section 7.2), and returns the reply and the
// lines that came before it.
func (b *board) retry(seq int, cmd string, tries int) (string, []line) {
	b.t.Helper()
	ok, errPrefix := fmt.Sprintf("OK %d", seq), fmt.Sprintf("ERR %d ", seq)
	var before []line
	for i := 0; i < tries; i++ {
		b.cmd(fmt.Sprintf("%d %s", seq, cmd))
		wait := time.NewTimer(250 * time.Millisecond)
	read:
		for {
			select {
			case l, open := <-b.lines:
				if !open {
					b.t.Fatalf("port closed while waiting for the reply to %d", seq)
				}
				if l.text == ok || strings.HasPrefix(l.text, ok+" ") || strings.HasPrefix(l.text, errPrefix) {
					wait.Stop()
					return l.text, before
				}
				before = append(before, l)
			case err := <-b.errs:
				b.t.Fatalf("reader: %v", err)
			case <-wait.C:
				break read
			}
		}
	}
	b.t.Fatalf("%d %s: no reply after %d tries", seq, cmd, tries)
	return "", nil
}

func texts(ls []line) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.text
	}
	return out
}

func (b *board) hello() line {
	b.t.Helper()
	l, _ := b.expect("HELLO ", helloTimeout)
	for _, kv := range []string{"proto=1.0", "fw=teleop-uno/", "board=uno", "rx=64", "caps=vel,hb,out:lights,tlm,estop,strict"} {
		if !strings.Contains(l.text, kv) {
			b.t.Fatalf("HELLO %q lacks %q", l.text, kv)
		}
	}
	return l
}

// TestSmoke is the walk-through of the issue: HELLO, PING, e-stop, CLEAR.
func TestSmoke(t *testing.T) {
	t.Parallel()
	b := open(t)
	b.hello()

	sent := b.cmd("1 PING")
	if l, _ := b.expect("OK 1", replyTimeout); l.text != "OK 1" {
		t.Fatalf("PING: got %q", l.text)
	} else {
		t.Logf("PING -> OK: %v", l.at.Sub(sent))
	}

	b.cmd("2 VEL 0.400 0.200")
	if got := b.reply(2); got != "OK 2" {
		t.Fatalf("VEL: %q", got)
	}
	b.cmd("3 GET pwm")
	if got := b.reply(3); got != "OK 3 pwm=94,110" {
		t.Fatalf("outputs while driving: %q, want OK 3 pwm=94,110", got)
	}

	sent = b.send("!")
	l, _ := b.expect("EVT ESTOP", replyTimeout)
	if l.text != "EVT ESTOP src=byte" {
		t.Fatalf("e-stop event: %q", l.text)
	}
	t.Logf("! -> EVT ESTOP: %v", l.at.Sub(sent))
	b.cmd("4 GET pwm")
	if got := b.reply(4); got != "OK 4 pwm=0,0" {
		t.Fatalf("outputs after e-stop: %q", got)
	}
	b.cmd("5 VEL 0.100 0.000")
	if got := b.reply(5); got != "ERR 5 5 estop" {
		t.Fatalf("VEL while e-stopped: %q", got)
	}

	b.cmd("6 CLEAR")
	_, skipped := b.expect("OK 6", replyTimeout)
	if !contains(skipped, "EVT CLEARED") {
		t.Fatalf("CLEAR: no EVT CLEARED before OK 6; saw %q", texts(skipped))
	}
	b.cmd("7 VEL 0.100 0.000")
	if got := b.reply(7); got != "OK 7" {
		t.Fatalf("VEL after CLEAR: %q", got)
	}
}

func contains(ls []line, text string) bool {
	for _, l := range ls {
		if l.text == text {
			return true
		}
	}
	return false
}

// TestFirmware covers what is particular to the AVR build; the protocol as a
// whole is the conformance suite's job (devices/conformance).
func TestFirmware(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(t *testing.T, b *board)
	}{
		{"errors", func(t *testing.T, b *board) {
			for _, c := range []struct{ send, want string }{
				{"hello\n", "ERR - 1 parse"},
				{"14 VEL 0.2 0.0*00\n", "ERR - 2 checksum"},
				{withChecksum("15 FLY"), "ERR 15 3 unknown"},
				{withChecksum("16 VEL 99 0"), "ERR 16 4 range"},
				{withChecksum("17 SET wdog_ms=10"), "ERR 17 4 wdog_ms"},
				{withChecksum("18 GET nope"), "ERR 18 4 nope"},
				{"19 PING" + strings.Repeat(" ", 60) + "\n", "ERR - 7 toolong"},
				{"20 PI\x01NG\n", "ERR - 1 parse"},
				{withChecksum("21 VEL 99999999999 0"), "ERR 21 4 range"},
				{withChecksum("22 VEL 1. 0"), "ERR 22 4 range"},
				{withChecksum("23 VEL 0.12345 0"), "ERR 23 4 range"},
				{withChecksum("24 SET wdog_ms="), "ERR 24 4 wdog_ms"},
				{withChecksum("25 OUT lights=01"), "ERR 25 4 lights"},
				{withChecksum("26 PING  1"), "ERR 26 1 parse"},
				{withChecksum("27 ping"), "ERR 27 1 parse"},
				{withChecksum("0 PING"), "ERR - 1 parse"},
				{withChecksum("65536 PING"), "ERR - 1 parse"},
				{"28 PING*01\n", "ERR - 2 checksum"},
				{"29 PING*1\n", "ERR - 2 checksum"},
			} {
				b.send(c.send)
				if l, _ := b.expect("ERR ", replyTimeout); l.text != c.want {
					t.Errorf("%q: got %q, want %q", c.send, l.text, c.want)
				}
			}
		}},
		{"stale setpoint", func(t *testing.T, b *board) {
			b.cmd("9 VEL 0.200 0.000")
			b.cmd("8 VEL 0.300 0.000")
			if got := b.reply(9); got != "OK 9" {
				t.Fatalf("9: %q", got)
			}
			if got := b.reply(8); got != "ERR 8 8 stale" {
				t.Fatalf("8: %q", got)
			}
			b.send("\x18") // RESYNC forgets the newest seq
			b.cmd("8 VEL 0.300 0.000")
			if got := b.reply(8); got != "OK 8" {
				t.Fatalf("8 after RESYNC: %q", got)
			}
		}},
		{"resent one-shot runs once", func(t *testing.T, b *board) {
			b.cmd("13 OUT lights=1")
			if got := b.reply(13); got != "OK 13" {
				t.Fatalf("OUT: %q", got)
			}
			b.cmd("14 OUT lights=0")
			b.reply(14)
			b.cmd("14 OUT lights=0") // a resend: answered from the cache
			if got := b.reply(14); got != "OK 14" {
				t.Fatalf("resent OUT: %q", got)
			}
			b.cmd("13 ESTOP") // not the cached seq: runs
			b.reply(13)
			b.cmd("15 OUT lights=1")
			if got := b.reply(15); got != "ERR 15 5 estop" {
				t.Fatalf("OUT while e-stopped: %q", got)
			}
			b.cmd("15 OUT lights=1") // same seq: the cached ERR, even after...
			if got := b.reply(15); got != "ERR 15 5 estop" {
				t.Fatalf("resent OUT: %q", got)
			}
			b.cmd("16 GET lights")
			if got := b.reply(16); got != "OK 16 lights=0" {
				t.Fatalf("lights: %q", got)
			}
		}},
		{"strict", func(t *testing.T, b *board) {
			b.cmd("2 SET strict=1 wdog_ms=300 tlm_hz=10")
			if got := b.reply(2); got != "OK 2" {
				t.Fatalf("SET: %q", got)
			}
			b.send("3 PING\n")
			if got := b.reply(3); got != "ERR 3 2 checksum required" {
				t.Fatalf("PING without *HH: %q", got)
			}
			b.cmd("4 GET wdog_ms")
			if got := b.reply(4); got != "OK 4 wdog_ms=300" {
				t.Fatalf("GET: %q", got)
			}
		}},
		{"watchdog", func(t *testing.T, b *board) {
			b.cmd("2 SET wdog_ms=100 tlm_hz=0")
			b.reply(2)
			sent := b.cmd("3 VEL 0.300 0.000")
			b.reply(3)
			l, _ := b.expect("EVT WDOG", replyTimeout)
			t.Logf("VEL -> EVT WDOG: %v (wdog_ms=100)", l.at.Sub(sent))
			if d := l.at.Sub(sent); d < 80*time.Millisecond {
				t.Errorf("watchdog fired after %v, before wdog_ms", d)
			}
			b.send("?")
			if l, _ := b.expect("TLM ", replyTimeout); !strings.Contains(l.text, " st=FS vl=0.000 vr=0.000 lseq=3") {
				t.Fatalf("TLM after the watchdog: %q", l.text)
			}
			b.cmd("4 GET pwm")
			if got := b.reply(4); got != "OK 4 pwm=0,0" {
				t.Fatalf("outputs after the watchdog: %q", got)
			}
			b.cmd("5 HB") // leaves FS with a zero setpoint
			b.reply(5)
			b.cmd("6 GET st")
			if got := b.reply(6); got != "OK 6 st=RDY" {
				t.Fatalf("state after HB: %q", got)
			}
		}},
		{"e-stop mid-line", func(t *testing.T, b *board) {
			b.send("10 VEL 0.5!")
			if l, _ := b.expect("EVT ", replyTimeout); l.text != "EVT ESTOP src=byte" {
				t.Fatalf("got %q", l.text)
			}
			b.cmd("11 VEL 0.200 0.000")
			if got := b.reply(11); got != "ERR 11 5 estop" {
				t.Fatalf("VEL: %q", got)
			}
			b.send("!!!") // latched: no second event
			b.cmd("12 CLEAR")
			_, skipped := b.expect("OK 12", replyTimeout)
			if got := texts(skipped); !contains(skipped, "EVT CLEARED") || contains(skipped, "EVT ESTOP src=byte") {
				t.Fatalf("before OK 12: %q", got)
			}
		}},
		{"overflow", func(t *testing.T, b *board) {
			// Each VER answers ~110 bytes for 6 received: the UART's TX
			// side falls behind, the firmware stops taking lines, and the
			// 128-byte RX ring fills. It must say so, drop whole lines
			// only, and keep working.
			b.cmd("1 SET tlm_hz=0")
			b.reply(1)
			var burst strings.Builder
			const n = 60
			for i := 2; i < 2+n; i++ {
				fmt.Fprintf(&burst, "%d VER\n", i)
			}
			b.send(burst.String())
			// Lines lost in the overflow get no reply; the host's retries
			// (same seq) get through once the burst has drained.
			got, before := b.retry(100, "GET ovf", 40)
			if got == "OK 100 ovf=0" || !contains(before, "EVT OVERFLOW") {
				t.Fatalf("GET ovf: %q; no EVT OVERFLOW in %q", got, texts(before))
			}
			t.Logf("%d of %d VER lines answered", strings.Count(strings.Join(texts(before), "\n"), "HELLO"), n)
			last := 0
			for _, l := range before {
				var seq int
				if _, err := fmt.Sscanf(l.text, "OK %d", &seq); err == nil {
					if seq <= last || seq >= 2+n {
						t.Fatalf("replies out of order or unknown: %d after %d", seq, last)
					}
					last = seq
				} else if strings.HasPrefix(l.text, "ERR ") {
					t.Fatalf("a damaged line was answered: %q", l.text)
				}
			}
			b.cmd("101 PING") // (a late answer to a retry may come first)
			b.expect("OK 101", replyTimeout)
		}},
		{"reset", func(t *testing.T, b *board) {
			b.cmd("5 RESET")
			if got := b.reply(5); got != "OK 5" {
				t.Fatalf("RESET: %q", got)
			}
			b.hello() // rebooted through the AVR watchdog
			if l, _ := b.expect("# reset=", replyTimeout); l.text != "# reset=watchdog" {
				t.Fatalf("reset cause: %q", l.text)
			}
			b.cmd("1 PING")
			if got := b.reply(1); got != "OK 1" {
				t.Fatalf("PING after reset: %q", got)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := open(t)
			b.hello()
			tt.run(t, b)
		})
	}
}

// TestExternalReset pulls the reset pin mid-burst, as an Uno's auto-reset
// does when a host opens the port: a new HELLO, the state gone, outputs off,
// and input still flowing afterwards.
func TestExternalReset(t *testing.T) {
	t.Parallel()
	sim := simavrtest.StartSim(t)
	b := openSim(t, sim)
	b.hello()
	b.cmd("1 VEL 0.300 0.000")
	b.reply(1)

	var burst strings.Builder
	for i := 2; i < 22; i++ {
		burst.WriteString(withChecksum(fmt.Sprintf("%d PING", i)))
	}
	b.send(burst.String())
	if err := sim.Reset(); err != nil {
		t.Fatal(err)
	}
	b.hello()
	if l, _ := b.expect("# reset=", replyTimeout); l.text != "# reset=external" {
		t.Fatalf("reset cause: %q", l.text)
	}
	if got, _ := b.retry(50, "GET lseq", 8); got != "OK 50 lseq=0" {
		t.Fatalf("after reset: %q", got)
	}
	b.cmd("51 GET pwm")
	b.expect("OK 51 pwm=0,0", replyTimeout)
}
