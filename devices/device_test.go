package devices

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teleop/teleop/clock"
	"github.com/teleop/teleop/devices/proto"
)

func TestHandshake(t *testing.T) {
	dev := newFakeDev(t)
	h := openDevice(t, testConfig(dev.Path()), nil)
	h.waitState(t, StateReady)

	// §6: RESYNC, "1 VER", then "2 SET strict=1 wdog_ms=… tlm_hz=…", then '?'.
	got := dev.got.all()
	want := []string{"\x18", "1 VER*50", "2 SET strict=1 wdog_ms=300 tlm_hz=10*27"}
	if len(got) < len(want) {
		t.Fatalf("device got %q, want %q first", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("device got %q, want %q first", got, want)
		}
	}
	dev.got.wait(t, "telemetry request after the handshake", eq("?"))
	hello, ok := h.d.Hello()
	if !ok || hello.FW != "fake/1.0.0" || hello.RX != 64 || !hello.Has("out") {
		t.Errorf("Hello() = %+v, %v", hello, ok)
	}
	h.logs.wait(t, "ready log line", has("device ready"))
}

func TestHandshakeAppliesExtraSettings(t *testing.T) {
	dev := newFakeDev(t)
	cfg := testConfig(dev.Path())
	hz := 0
	cfg.TelemetryHz = &hz
	cfg.WatchdogMs = 250
	cfg.Settings = map[string]string{"max_lin": "0.8", "max_ang": "2.5"}
	h := openDevice(t, cfg, nil)
	h.waitState(t, StateReady)
	dev.got.wait(t, "first SET", eq(withSumNL("2 SET strict=1 wdog_ms=250 tlm_hz=0")))
	dev.got.wait(t, "extra SET", eq(withSumNL("3 SET max_ang=2.5 max_lin=0.8")))
}

func withSumNL(body string) string { return strings.TrimSuffix(withSum(body), "\n") }

func TestDoReplies(t *testing.T) {
	dev := newFakeDev(t)
	h := openDevice(t, testConfig(dev.Path()), nil)
	h.waitState(t, StateReady)
	ctx := ctxT(t)

	t.Run("ok with fields and telemetry interleaved", func(t *testing.T) {
		dev.set(func(f *fakeDev) {
			f.script = func(line string, c *proto.Command) ([]string, bool) {
				if string(c.Verb) != "GET" {
					return nil, false
				}
				// TLM, an event and a comment between the command and its reply.
				return []string{
					withSum("TLM 5000 st=RDY vl=0.000 vr=0.000 lseq=0"),
					withSum("EVT FAULT code=3"),
					withSum("# motor driver warm"),
					string(proto.AppendOK(nil, c.Seq, proto.KV("wdog_ms", proto.Int(300)))),
				}, true
			}
		})
		defer dev.set(func(f *fakeDev) { f.script = nil })
		res, err := h.d.Do(ctx, Cmd("GET", proto.Word("wdog_ms")))
		if err != nil || res.Status != StatusOK || res.Fields["wdog_ms"] != "300" || res.Tries != 1 {
			t.Fatalf("Do(GET) = %+v, %v", res, err)
		}
		h.tlm.wait(t, "interleaved TLM", eq("5000 st=RDY"))
		h.evts.wait(t, "interleaved EVT", eq("FAULT"))
		h.logs.wait(t, "comment logged", has("device says: motor driver warm"))
	})

	t.Run("unknown verb", func(t *testing.T) {
		res, err := h.d.Do(ctx, Cmd("FLY"))
		if err != nil || res.Status != StatusError || res.Code != proto.CodeUnknown || res.Tries != 1 {
			t.Fatalf("Do(FLY) = %+v, %v", res, err)
		}
		if res.Err() == nil || !strings.Contains(res.Err().Error(), "unknown") {
			t.Errorf("Err() = %v", res.Err())
		}
	})

	t.Run("out of range setpoint", func(t *testing.T) {
		res, err := h.d.Setpoint(ctx, Cmd("VEL", proto.Float(99, 3), proto.Float(0, 3)))
		if err != nil || res.Status != StatusError || res.Code != proto.CodeRange {
			t.Fatalf("Setpoint(VEL 99) = %+v, %v", res, err)
		}
	})

	t.Run("invalid commands never reach the line", func(t *testing.T) {
		before := dev.got.len()
		for name, cmd := range map[string]Command{
			"NaN":           Cmd("VEL", proto.Float(math.NaN(), 3), proto.Float(0, 3)),
			"lower verb":    Cmd("vel"),
			"newline word":  Cmd("OUT", proto.KV("lights", proto.Word("1\n2 RESET"))),
			"reserved byte": Cmd("OUT", proto.Word("!")),
			"too long":      Cmd("OUT", proto.Word(strings.Repeat("x", 70))),
			"raw line":      RawCmd("M 1 1"),
		} {
			if res, err := h.d.Do(ctx, cmd); err == nil {
				t.Errorf("%s: Do = %+v, want an error", name, res)
			}
		}
		if _, err := h.d.Do(ctx, Cmd("VEL", proto.Float(0, 3), proto.Float(0, 3))); !errors.Is(err, ErrWrongKind) {
			t.Errorf("Do(VEL) error = %v, want ErrWrongKind", err)
		}
		// A PING still works, and nothing else went out.
		if res, err := h.d.Do(ctx, Cmd("PING")); err != nil || res.Status != StatusOK {
			t.Fatalf("PING = %+v, %v", res, err)
		}
		for _, l := range dev.got.all()[before:] {
			if l != "?" && cmdVerb(l) != "PING" {
				t.Errorf("device got %q", l)
			}
		}
	})
}

// Garbage from the device: each case ends with the link still ready (a
// PING works), a log line saying what was dropped, and no panic.
func TestBadDeviceInput(t *testing.T) {
	cases := []struct {
		name string
		send string
		log  string
	}{
		{"garbage bytes", "\x00\x01\xfe\xff garbage \x7f\n", "ignored a bad line"},
		{"binary without newline then a line", "\x80\x81\x82\x83" + "OK 1\n", "ignored a bad line"},
		{"line over 128 bytes", "TLM 1 st=RDY " + strings.Repeat("x=1 ", 40) + "\n", "discarded an over-long line"},
		{"bad checksum", "TLM 1 st=RDY*00\n", "checksum mismatch"},
		{"no checksum in strict mode", "TLM 1 st=RDY\n", "checksum required"},
		{"unknown kind", withSum("HOWDY 1"), "unknown line kind"},
		{"reply for unknown seq", withSum("OK 4321"), "reply for an unknown seq"},
		{"unattributable ERR -", withSum("ERR - 1 parse"), "error reply without a seq"},
		{"bad HELLO", withSum("HELLO fw=x"), "ignored a bad HELLO"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dev := newFakeDev(t)
			h := openDevice(t, testConfig(dev.Path()), nil)
			h.waitState(t, StateReady)
			dev.send(tc.send)
			h.logs.wait(t, "log line "+tc.log, has(tc.log))
			res, err := h.d.Do(ctxT(t), Cmd("PING"))
			if err != nil || res.Status != StatusOK {
				t.Fatalf("PING after bad input = %+v, %v", res, err)
			}
			if s := h.d.State(); s != StateReady {
				t.Errorf("state = %v, want ready", s)
			}
		})
	}
}

func TestOneShotRetrySameSeq(t *testing.T) {
	dev := newFakeDev(t)
	h := openDevice(t, testConfig(dev.Path()), nil)
	h.waitState(t, StateReady)

	t.Run("lost reply", func(t *testing.T) {
		var mu sync.Mutex
		n := 0
		dev.set(func(f *fakeDev) {
			f.script = func(line string, c *proto.Command) ([]string, bool) {
				if string(c.Verb) != "OUT" {
					return nil, false
				}
				mu.Lock()
				defer mu.Unlock()
				n++
				if n == 1 {
					return nil, true // the command ran; its reply was lost
				}
				return []string{string(proto.AppendOK(nil, c.Seq))}, true
			}
		})
		defer dev.set(func(f *fakeDev) { f.script = nil })
		from := dev.got.len()
		res, err := h.d.Do(ctxT(t), Cmd("OUT", proto.KV("lights", proto.Int(1))))
		if err != nil || res.Status != StatusOK || res.Tries != 2 {
			t.Fatalf("Do = %+v, %v; want ok after 2 tries", res, err)
		}
		var lines []string
		for _, l := range dev.got.all()[from:] {
			if cmdVerb(l) == "OUT" {
				lines = append(lines, l)
			}
		}
		if len(lines) != 2 || lines[0] != lines[1] {
			t.Fatalf("device got %q, want the same line (same seq) twice", lines)
		}
		h.logs.wait(t, "resend log", has("resending with the same seq"))
	})

	t.Run("checksum error is resent at once", func(t *testing.T) {
		first := true
		dev.set(func(f *fakeDev) {
			f.script = func(line string, c *proto.Command) ([]string, bool) {
				if string(c.Verb) != "OUT" || !first {
					return nil, false
				}
				first = false
				return []string{withSum("ERR - 2 checksum")}, true
			}
		})
		defer dev.set(func(f *fakeDev) { f.script = nil })
		res, err := h.d.Do(ctxT(t), Cmd("OUT", proto.KV("lights", proto.Int(0))))
		if err != nil || res.Status != StatusOK || res.Tries != 2 {
			t.Fatalf("Do = %+v, %v; want ok after 2 tries", res, err)
		}
	})

	t.Run("no reply at all times out after the retries", func(t *testing.T) {
		dev.set(func(f *fakeDev) {
			f.script = func(line string, c *proto.Command) ([]string, bool) {
				return nil, string(c.Verb) == "OUT"
			}
		})
		defer dev.set(func(f *fakeDev) { f.script = nil })
		res, err := h.d.Do(ctxT(t), Cmd("OUT", proto.KV("lights", proto.Int(1))))
		if err != nil || res.Status != StatusTimeout || res.Tries != 1+DefaultRetries {
			t.Fatalf("Do = %+v, %v; want timeout after %d tries", res, err, 1+DefaultRetries)
		}
		h.logs.wait(t, "give-up log", has("no reply; giving up"))
	})
}

// Setpoints are newest-wins: with the device's buffer full of unanswered
// setpoints, one waits; a newer one replaces it, and the older returns
// superseded without ever being sent.
func TestSetpointNewestWins(t *testing.T) {
	dev := newFakeDev(t)
	h := openDevice(t, testConfig(dev.Path()), nil)
	h.waitState(t, StateReady)

	release := make(chan struct{})
	var held []string
	var mu sync.Mutex
	dev.set(func(f *fakeDev) {
		f.script = func(line string, c *proto.Command) ([]string, bool) {
			if string(c.Verb) != "VEL" {
				return nil, false
			}
			mu.Lock()
			defer mu.Unlock()
			select {
			case <-release:
				return []string{string(proto.AppendOK(nil, c.Seq))}, true
			default:
				held = append(held, string(proto.AppendOK(nil, c.Seq)))
				return nil, true
			}
		}
	})
	vel := func(v float64) Command { return Cmd("VEL", proto.Float(v, 3), proto.Float(0, 3)) }
	ctx := ctxT(t)
	type ret struct {
		res Result
		err error
	}
	results := make([]chan ret, 6)
	send := func(i int) {
		results[i] = make(chan ret, 1)
		go func() {
			res, err := h.d.Setpoint(ctx, vel(0.1*float64(i+1)))
			results[i] <- ret{res, err}
		}()
	}
	// "N VEL 0.100 0.000*HH\n" is 21 bytes for seqs 3–5: three fit the
	// 64-byte window unanswered, the fourth waits.
	for i, v := range []string{"VEL 0.100", "VEL 0.200", "VEL 0.300"} {
		send(i)
		dev.got.wait(t, v, has(v))
	}
	send(3)
	send(4) // replaces 3, or is replaced by it: whichever came second wins
	var superseded int
	select {
	case r := <-results[3]:
		if r.err != nil || r.res.Status != StatusSuperseded {
			t.Fatalf("older waiting setpoint = %+v, %v; want superseded", r.res, r.err)
		}
		superseded = 3
	case r := <-results[4]:
		if r.err != nil || r.res.Status != StatusSuperseded {
			t.Fatalf("older waiting setpoint = %+v, %v; want superseded", r.res, r.err)
		}
		superseded = 4
	case <-time.After(waitLimit):
		t.Fatal("no setpoint was superseded")
	}
	winner := 7 - superseded // 3 ↔ 4

	// Release the device: the held replies go out, then the winner is sent.
	mu.Lock()
	close(release)
	out := held
	mu.Unlock()
	for _, l := range out {
		dev.send(l)
	}
	for _, i := range []int{0, 1, 2, winner} {
		r := <-results[i]
		if r.err != nil || r.res.Status != StatusOK {
			t.Errorf("setpoint %d = %+v, %v; want ok", i, r.res, r.err)
		}
	}
	loser := map[int]string{3: "VEL 0.400", 4: "VEL 0.500"}[superseded]
	if n := dev.got.count(has(loser)); n != 0 {
		t.Errorf("the superseded setpoint reached the device %d times", n)
	}
	// Never resent: each VEL line appears once.
	for _, l := range dev.got.all() {
		if cmdVerb(l) == "VEL" && dev.got.count(eq(l)) != 1 {
			t.Errorf("setpoint %q sent more than once", l)
		}
	}
}

// A lost setpoint is not retried; when a later command is answered, the
// host knows the earlier reply will never come.
func TestSetpointLostNotRetried(t *testing.T) {
	dev := newFakeDev(t)
	h := openDevice(t, testConfig(dev.Path()), nil)
	h.waitState(t, StateReady)
	first := true
	dev.set(func(f *fakeDev) {
		f.script = func(line string, c *proto.Command) ([]string, bool) {
			if string(c.Verb) == "VEL" && first {
				first = false
				return nil, true // lost on the wire
			}
			return nil, false
		}
	})
	ctx := ctxT(t)
	done := make(chan Result, 1)
	go func() {
		res, _ := h.d.Setpoint(ctx, Cmd("VEL", proto.Float(0.1, 3), proto.Float(0, 3)))
		done <- res
	}()
	dev.got.wait(t, "first VEL", has("VEL 0.100"))
	if res, err := h.d.Setpoint(ctx, Cmd("HB")); err != nil || res.Status != StatusOK {
		t.Fatalf("HB = %+v, %v", res, err)
	}
	res := <-done
	if res.Status != StatusTimeout || res.Tries != 1 {
		t.Fatalf("lost setpoint = %+v; want timeout after 1 try", res)
	}
	if n := dev.got.count(has("VEL 0.100")); n != 1 {
		t.Errorf("lost setpoint sent %d times, want 1", n)
	}
}

// The e-stop fast path overtakes a full queue: a one-shot in flight that
// the device does not answer, more one-shots queued behind it.
func TestEStopOvertakesQueue(t *testing.T) {
	dev := newFakeDev(t)
	h := openDevice(t, testConfig(dev.Path()), nil)
	h.waitState(t, StateReady)
	hold := make(chan struct{})
	dev.set(func(f *fakeDev) {
		f.script = func(line string, c *proto.Command) ([]string, bool) {
			if string(c.Verb) == "OUT" {
				<-hold // a slow device: nothing else is read meanwhile
			}
			return nil, false
		}
	})
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	do := func(cmd Command) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := h.d.Do(ctx, cmd)
			errs <- err
		}()
	}
	do(Cmd("OUT", proto.KV("lights", proto.Int(1))))
	dev.got.wait(t, "OUT in flight", verb("OUT"))
	do(Cmd("PING"))
	do(Cmd("GET", proto.Word("wdog_ms")))
	before := dev.got.len()
	if err := h.d.EStop(); err != nil {
		t.Fatalf("EStop: %v", err)
	}
	close(hold)
	i := dev.got.waitFrom(t, before, "e-stop byte", eq("!"))
	for _, l := range dev.got.all()[before:i] {
		if cmdVerb(l) == "PING" || cmdVerb(l) == "GET" {
			t.Errorf("queued %q reached the device before the e-stop", l)
		}
	}
	dev.got.waitFrom(t, dev.got.waitFrom(t, i+1, "second '!'", eq("!"))+1, "third '!'", eq("!"))
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("queued command: %v", err)
		}
	}
	h.evts.wait(t, "EVT ESTOP", eq("ESTOP"))
	if s := h.d.State(); s != StateEStopped {
		t.Errorf("state = %v, want estopped", s)
	}
	if _, err := h.d.Setpoint(ctx, Cmd("HB")); !errors.Is(err, ErrEStopped) {
		t.Errorf("Setpoint while latched: %v, want ErrEStopped", err)
	}
	if res, err := h.d.Clear(ctx); err != nil || res.Status != StatusOK {
		t.Fatalf("Clear = %+v, %v", res, err)
	}
	if s := h.d.State(); s != StateReady || h.d.Latched() {
		t.Errorf("after CLEAR: state %v, latched %v", s, h.d.Latched())
	}
	if res, err := h.d.Setpoint(ctx, Cmd("HB")); err != nil || res.Status != StatusOK {
		t.Errorf("HB after clear = %+v, %v", res, err)
	}
}

// An e-stop wins over a CLEAR queued before it: the CLEAR, waiting behind a
// slow one-shot when EStop is called, is never sent after the e-stop bytes;
// it fails with ErrEStopped and the latch holds.
func TestEStopDropsQueuedClear(t *testing.T) {
	dev := newFakeDev(t)
	h := openDevice(t, testConfig(dev.Path()), nil)
	h.waitState(t, StateReady)
	if err := h.d.EStop(); err != nil { // the latch a CLEAR is meant to release
		t.Fatal(err)
	}
	h.evts.wait(t, "EVT ESTOP", eq("ESTOP"))
	hold := make(chan struct{})
	dev.set(func(f *fakeDev) {
		f.script = func(line string, c *proto.Command) ([]string, bool) {
			if string(c.Verb) == "GET" {
				<-hold // a slow device: nothing else is read meanwhile
			}
			return nil, false
		}
	})
	ctx := ctxT(t)
	slow := make(chan error, 1)
	go func() {
		_, err := h.d.Do(ctx, Cmd("GET", proto.Word("wdog_ms")))
		slow <- err
	}()
	dev.got.wait(t, "GET in flight", verb("GET"))
	// What Clear does (Do: enqueue, then await), split so that the CLEAR is
	// known to be queued, behind the GET, before the e-stop.
	r, err := h.d.newRequest(kindOneShot, Cmd("CLEAR"))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.d.enqueue(r); err != nil {
		t.Fatal(err)
	}
	cleared := make(chan error, 1)
	go func() {
		_, err := h.d.await(ctx, r, nil, nil)
		cleared <- err
	}()
	if err := h.d.EStop(); err != nil {
		t.Fatalf("EStop: %v", err)
	}
	close(hold)
	if err := <-slow; err != nil {
		t.Errorf("GET: %v", err)
	}
	if err := <-cleared; !errors.Is(err, ErrEStopped) {
		t.Errorf("the queued CLEAR: %v, want ErrEStopped", err)
	}
	// One-shots go out in order: once a PING queued now is answered, a
	// CLEAR that was still queued would have reached the device.
	if res, err := h.d.Do(ctx, Cmd("PING")); err != nil || res.Status != StatusOK {
		t.Fatalf("PING = %+v, %v", res, err)
	}
	if n := dev.got.count(verb("CLEAR")); n != 0 {
		t.Errorf("CLEAR reached the device after the e-stop: %q", dev.got.all())
	}
	if !h.d.Latched() || h.d.State() != StateEStopped {
		t.Errorf("latched %v, state %v; want the e-stop in force", h.d.Latched(), h.d.State())
	}
}

// A CLEAR in flight when EStop is called is not resent after the e-stop
// bytes (the first copy may never have reached the device: lost, or still
// in the kernel's output queue that the e-stop flushes): it times out and
// the latch holds.
func TestEStopStopsClearResend(t *testing.T) {
	dev := newFakeDev(t)
	h := openDevice(t, testConfig(dev.Path()), nil)
	h.waitState(t, StateReady)
	if err := h.d.EStop(); err != nil {
		t.Fatal(err)
	}
	h.evts.wait(t, "EVT ESTOP", eq("ESTOP"))
	var mu sync.Mutex
	lost := 1
	dev.set(func(f *fakeDev) {
		f.script = func(line string, c *proto.Command) ([]string, bool) {
			mu.Lock()
			defer mu.Unlock()
			if string(c.Verb) == "CLEAR" && lost > 0 {
				lost--
				return nil, true // never arrived, as far as the host can tell
			}
			return nil, false // a resend would run, and release the e-stop
		}
	})
	ctx := ctxT(t)
	done := make(chan Result, 1)
	go func() {
		res, _ := h.d.Clear(ctx)
		done <- res
	}()
	i := dev.got.wait(t, "CLEAR", verb("CLEAR"))
	if err := h.d.EStop(); err != nil {
		t.Fatalf("EStop: %v", err)
	}
	dev.got.waitFrom(t, i+1, "the e-stop bytes", eq("!"))
	if res := <-done; res.Status != StatusTimeout || res.Tries != 1 {
		t.Errorf("CLEAR in flight at the e-stop: %+v, want a timeout after 1 try", res)
	}
	if res, err := h.d.Do(ctx, Cmd("PING")); err != nil || res.Status != StatusOK {
		t.Fatalf("PING = %+v, %v", res, err)
	}
	if n := dev.got.count(verb("CLEAR")); n != 1 {
		t.Errorf("CLEAR sent %d times: %q", n, dev.got.all())
	}
	if !h.d.Latched() || h.d.State() != StateEStopped {
		t.Errorf("latched %v, state %v; want the e-stop in force", h.d.Latched(), h.d.State())
	}
}

func TestFailsafeFromDevice(t *testing.T) {
	dev := newFakeDev(t)
	h := openDevice(t, testConfig(dev.Path()), nil)
	h.waitState(t, StateReady)
	dev.set(func(f *fakeDev) { f.fs = true })
	dev.sendLine("EVT WDOG")
	from := h.states.wait(t, "failsafe", stateIs(StateFailsafe))
	h.logs.wait(t, "watchdog log", has("device watchdog expired"))
	if res, err := h.d.Setpoint(ctxT(t), Cmd("VEL", proto.Float(0.1, 3), proto.Float(0, 3))); err != nil || res.Status != StatusOK {
		t.Fatalf("VEL = %+v, %v", res, err)
	}
	h.waitReadyFrom(t, from)
}

// The device reports an e-stop by itself (a button on the robot): the host
// latches it, and on a reboot re-sends it before anything else.
func TestDeviceEStopLatchesAndSurvivesReboot(t *testing.T) {
	dev := newFakeDev(t)
	h := openDevice(t, testConfig(dev.Path()), nil)
	h.waitState(t, StateReady)
	dev.set(func(f *fakeDev) { f.estop = true })
	dev.sendLine("EVT ESTOP src=button")
	h.waitState(t, StateEStopped)
	if !h.d.Latched() {
		t.Fatal("not latched")
	}
	from := dev.got.len()
	dev.reboot()
	// RESYNC, then the e-stop, then VER.
	i := dev.got.waitFrom(t, from, "resync", eq("\x18"))
	j := dev.got.waitFrom(t, i, "e-stop", eq("!"))
	dev.got.waitFrom(t, j, "VER", verb("VER"))
	h.states.waitFrom(t, 0, "estopped again", stateIs(StateEStopped))
}

func TestFirmwareResetMidCommand(t *testing.T) {
	dev := newFakeDev(t)
	h := openDevice(t, testConfig(dev.Path()), nil)
	h.waitState(t, StateReady)
	dev.set(func(f *fakeDev) {
		f.script = func(line string, c *proto.Command) ([]string, bool) {
			return nil, string(c.Verb) == "OUT" // no reply: the reboot comes first
		}
	})
	// The device reboots while OUT awaits its reply.
	ctx := ctxT(t)
	done := make(chan error, 1)
	go func() {
		_, err := h.d.Do(ctx, Cmd("OUT", proto.KV("lights", proto.Int(1))))
		done <- err
	}()
	dev.got.wait(t, "OUT", verb("OUT"))
	from := dev.got.len()
	statesFrom := h.states.len()
	dev.reboot()
	if err := <-done; !errors.Is(err, ErrDeviceReset) {
		t.Fatalf("pending command: %v, want ErrDeviceReset", err)
	}
	h.logs.wait(t, "reset log", has("device reset: unexpected HELLO"))
	i := dev.got.waitFrom(t, from, "resync after reset", eq("\x18"))
	i = dev.got.waitFrom(t, i, "VER after reset", eq("1 VER*50"))
	dev.got.waitFrom(t, i, "settings re-applied", eq("2 SET strict=1 wdog_ms=300 tlm_hz=10*27"))
	h.waitReadyFrom(t, statesFrom)
	if res, err := h.d.Do(ctx, Cmd("PING")); err != nil || res.Status != StatusOK {
		t.Fatalf("PING after reset = %+v, %v", res, err)
	}
}

func TestNoHello(t *testing.T) {
	dev := newFakeDev(t)
	dev.set(func(f *fakeDev) { f.silent = true })
	h := openDevice(t, testConfig(dev.Path()), nil)
	h.logs.wait(t, "handshake failure log", has("VER got no reply after 3 tries"))
	h.waitState(t, StateDisconnected)
	if n := dev.got.count(verb("VER")); n < 3 {
		t.Errorf("VER sent %d times, want 3", n)
	}
	if _, err := h.d.Do(ctxT(t), Cmd("PING")); !errors.Is(err, ErrNotReady) {
		t.Errorf("Do before ready: %v, want ErrNotReady", err)
	}
	// It keeps trying, and gets there when the device starts talking.
	dev.set(func(f *fakeDev) { f.silent = false })
	h.waitState(t, StateReady)
}

func TestVersionMismatchRefused(t *testing.T) {
	dev := newFakeDev(t)
	dev.set(func(f *fakeDev) { f.hello.Major = 2 })
	h := openDevice(t, testConfig(dev.Path()), nil)
	h.logs.wait(t, "refusal", has("refusing the device"))
	h.logs.wait(t, "reason", has("incompatible protocol version"))
	h.waitState(t, StateDisconnected)
	if h.states.count(stateIs(StateReady)) != 0 {
		t.Error("became ready with an incompatible device")
	}
}

func TestSilentDevice(t *testing.T) {
	dev := newFakeDev(t)
	h := openDevice(t, testConfig(dev.Path()), nil)
	h.waitState(t, StateReady)
	from := h.states.len()
	dev.set(func(f *fakeDev) { f.silent = true })
	h.logs.wait(t, "silence log", has("link failed: device silent"))
	h.states.waitFrom(t, from, "disconnected", stateIs(StateDisconnected))
	dev.got.wait(t, "a probe before giving up", eq("?"))
	from = h.states.len()
	dev.set(func(f *fakeDev) { f.silent = false })
	h.waitReadyFrom(t, from)
}

// A healthy device with telemetry off answers the '?' probes and is never
// declared silent.
func TestQuietDeviceKeptAliveByProbes(t *testing.T) {
	dev := newFakeDev(t)
	cfg := testConfig(dev.Path())
	hz := 0
	cfg.TelemetryHz = &hz
	h := openDevice(t, cfg, nil)
	h.waitState(t, StateReady)
	from := dev.got.count(eq("?"))
	// Three probes span more than one silence timeout.
	for n := 0; n < 4; n++ {
		idx := 0
		for i, s := range dev.got.all() {
			if s == "?" {
				idx = i
			}
		}
		dev.got.waitFrom(t, idx+1, "another probe", eq("?"))
	}
	if dev.got.count(eq("?")) < from+3 {
		t.Fatal("too few probes")
	}
	if n := h.states.count(stateIs(StateDisconnected)); n != 0 {
		t.Errorf("link dropped %d times", n)
	}
}

func TestUnplugReplugUnderNewName(t *testing.T) {
	dev := newFakeDev(t).withLink()
	h := openDevice(t, testConfig(dev.link), nil)
	h.waitState(t, StateReady)
	oldPath := dev.path
	from := h.states.len()
	dev.unplug()
	h.states.waitFrom(t, from, "disconnected", stateIs(StateDisconnected))
	h.logs.wait(t, "link down log", has("link down; reconnecting"))
	if _, err := h.d.Do(ctxT(t), Cmd("PING")); !errors.Is(err, ErrNotReady) {
		t.Errorf("Do while down: %v, want ErrNotReady", err)
	}
	dev.replug() // a new /dev/pts/N; the link follows
	if dev.path == oldPath {
		t.Fatalf("replug reused %s", oldPath)
	}
	h.waitReadyFrom(t, from)
	h.logs.wait(t, "open log naming the new node", has("path="+dev.path))
	if res, err := h.d.Do(ctxT(t), Cmd("PING")); err != nil || res.Status != StatusOK {
		t.Fatalf("PING after replug = %+v, %v", res, err)
	}
}

func TestEStopWhilePortDown(t *testing.T) {
	dev := newFakeDev(t).withLink()
	h := openDevice(t, testConfig(dev.link), nil)
	h.waitState(t, StateReady)
	from := h.states.len()
	dev.unplug()
	h.states.waitFrom(t, from, "disconnected", stateIs(StateDisconnected))
	if err := h.d.EStop(); !errors.Is(err, ErrLinkDown) {
		t.Errorf("EStop while down = %v, want ErrLinkDown (recorded)", err)
	}
	dev.plug()
	i := dev.got.wait(t, "resync", eq("\x18"))
	j := dev.got.waitFrom(t, i, "e-stop in the handshake", eq("!"))
	dev.got.waitFrom(t, j, "VER after the e-stop", verb("VER"))
	h.states.waitFrom(t, from, "estopped", stateIs(StateEStopped))
}

// The device stops reading: a write blocks, the watchdog fails the link,
// and the host reconnects once the device reads again. Raw mode, which has
// no flow control, fills the pty's buffer quickly.
func TestWriteStall(t *testing.T) {
	dev := newFakeDev(t)
	cfg := testConfig(dev.Path())
	cfg.Protocol = ProtocolRaw
	cfg.Raw.Stop = "S"
	dev.set(func(f *fakeDev) { f.silent = true })
	h := openDevice(t, cfg, nil)
	h.waitState(t, StateReady)
	from := h.states.len()
	dev.stallReads()
	ctx := ctxT(t)
	line := RawCmd(strings.Repeat("M 100 -100 ", 5))
	var err error
	for i := 0; i < 100000 && err == nil; i++ {
		_, err = h.d.Do(ctx, line)
	}
	if !errors.Is(err, ErrLinkDown) || !strings.Contains(err.Error(), "write stalled") {
		t.Fatalf("Do on a stalled device = %v, want ErrLinkDown (write stalled)", err)
	}
	h.logs.wait(t, "stall log", has("write stalled"))
	h.logs.wait(t, "link down with the reason", func(s string) bool {
		return strings.Contains(s, "link down; reconnecting") && strings.Contains(s, "write stalled")
	})
	h.states.waitFrom(t, from, "disconnected", stateIs(StateDisconnected))
	dev.resumeReads()
	h.waitReadyFrom(t, from+1)
}

func TestRawProtocol(t *testing.T) {
	t.Run("sent without patterns", func(t *testing.T) {
		dev := newFakeDev(t)
		cfg := testConfig(dev.Path())
		cfg.Protocol = ProtocolRaw
		cfg.Raw.Stop = "M 0 0"
		h := openDevice(t, cfg, nil)
		h.waitState(t, StateReady)
		res, err := h.d.Setpoint(ctxT(t), RawCmd("M 100 -100"))
		if err != nil || res.Status != StatusSent {
			t.Fatalf("Setpoint = %+v, %v; want sent", res, err)
		}
		dev.got.wait(t, "raw line as-is", eq("M 100 -100"))
		if _, err := h.d.Do(ctxT(t), RawCmd("L1\nRESET")); err == nil {
			t.Error("a newline in a raw line was accepted")
		}
		if _, err := h.d.Do(ctxT(t), Cmd("PING")); !errors.Is(err, ErrWrongKind) {
			t.Errorf("verb in raw mode: %v", err)
		}
		before := dev.got.count(eq("M 0 0"))
		if err := h.d.EStop(); err != nil {
			t.Fatal(err)
		}
		i := -1
		for n := 0; n < before+3; n++ {
			i = dev.got.waitFrom(t, i+1, "stop line", eq("M 0 0"))
		}
		if n := dev.got.count(eq("\x18")); n != 0 {
			t.Errorf("raw device got %d RESYNC bytes", n)
		}
	})
	t.Run("reply patterns", func(t *testing.T) {
		dev := newFakeDev(t)
		dev.set(func(f *fakeDev) {
			f.script = func(string, *proto.Command) ([]string, bool) { return nil, true }
		})
		cfg := testConfig(dev.Path())
		cfg.Protocol = ProtocolRaw
		cfg.Raw = RawConfig{OK: `^ok\b`, Error: `^err`, Stop: "S"}
		h := openDevice(t, cfg, nil)
		h.waitState(t, StateReady)
		ctx := ctxT(t)
		for _, tc := range []struct {
			reply  string
			status Status
		}{{"ok done\n", StatusOK}, {"err 12\n", StatusError}, {"", StatusTimeout}} {
			from := dev.got.len()
			done := make(chan Result, 1)
			go func() {
				res, _ := h.d.Do(ctx, RawCmd("L1"))
				done <- res
			}()
			dev.got.waitFrom(t, from, "L1", eq("L1"))
			if tc.reply != "" {
				dev.send("noise line\n")
				dev.send(tc.reply)
			}
			if res := <-done; res.Status != tc.status {
				t.Errorf("reply %q: %+v, want %v", tc.reply, res, tc.status)
			}
		}
	})
}

func TestCloseSendsStop(t *testing.T) {
	dev := newFakeDev(t)
	h := openDevice(t, testConfig(dev.Path()), nil)
	h.waitState(t, StateReady)
	if err := h.d.Close(); err != nil {
		t.Fatal(err)
	}
	dev.got.wait(t, "STOP before close", verb("STOP"))
	h.waitState(t, StateClosed)
	if _, err := h.d.Do(ctxT(t), Cmd("PING")); !errors.Is(err, ErrClosed) {
		t.Errorf("Do after Close: %v", err)
	}
	if err := h.d.EStop(); !errors.Is(err, ErrClosed) {
		t.Errorf("EStop after Close: %v", err)
	}
}

// With StopOnClose off, Close closes the port without sending STOP (the
// agent's safety.stop_on_shutdown: false).
func TestCloseWithoutStop(t *testing.T) {
	dev := newFakeDev(t)
	cfg := testConfig(dev.Path())
	off := false
	cfg.StopOnClose = &off
	h := openDevice(t, cfg, nil)
	h.waitState(t, StateReady)
	if res, err := h.d.Do(ctxT(t), Cmd("PING")); err != nil || res.Status != StatusOK {
		t.Fatalf("PING = %+v, %v", res, err)
	}
	from := dev.got.len()
	if err := h.d.Close(); err != nil {
		t.Fatal(err)
	}
	h.waitState(t, StateClosed)
	h.logs.wait(t, "the log saying so", has("closing without a stop"))
	// The port is free again: a line written now arrives after anything
	// Close wrote.
	p, err := OpenPort(dev.Path(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Write([]byte("9 PING\n")); err != nil {
		t.Fatal(err)
	}
	i := dev.got.waitFrom(t, from, "the marker", eq("9 PING"))
	if got := dev.got.all()[from:i]; len(got) != 0 {
		t.Errorf("Close wrote %q, want nothing", got)
	}
}

func TestOpenContextEndsDevice(t *testing.T) {
	dev := newFakeDev(t)
	ctx, cancel := context.WithCancel(context.Background())
	logger, _ := newTestLogger(t)
	states := newRecorder()
	d, err := Open(ctx, testConfig(dev.Path()), &Options{Logger: logger, OnState: func(s State) { states.add(s.String()) }})
	if err != nil {
		t.Fatal(err)
	}
	states.wait(t, "ready", stateIs(StateReady))
	cancel()
	states.wait(t, "closed", stateIs(StateClosed))
	dev.got.wait(t, "STOP on the way out", verb("STOP"))
	d.Close()
}

func TestBackoff(t *testing.T) {
	b := backoff{min: 250 * time.Millisecond, max: 2 * time.Second}
	caps := []time.Duration{250, 500, 1000, 2000, 2000}
	for i, c := range caps {
		c *= time.Millisecond
		got := b.next()
		if got > c || got < c*3/4 {
			t.Errorf("wait %d = %v, want in [%v, %v]", i, got, c*3/4, c)
		}
	}
	b.reset()
	if got := b.next(); got > 250*time.Millisecond {
		t.Errorf("after reset: %v", got)
	}
}

func TestStateStrings(t *testing.T) {
	for s := StateConnecting; s <= StateClosed; s++ {
		if strings.HasPrefix(s.String(), "state") {
			t.Errorf("state %d has no name", s)
		}
	}
	for s := StatusOK; s <= StatusSuperseded; s++ {
		if strings.HasPrefix(s.String(), "status") {
			t.Errorf("status %d has no name", s)
		}
	}
}

// With a fake clock nothing waits on the wall clock: the boot wait, the
// one-shot retry, silence and the reconnect backoff each happen when the
// test moves time, and not before.
func TestFakeClock(t *testing.T) {
	clk := clock.NewFake()
	dev := newFakeDev(t)
	cfg := testConfig(dev.Path())
	h := openDevice(t, cfg, &Options{Clock: clk})

	<-clk.BlockUntil(1) // the boot wait
	if n := dev.got.len(); n != 0 {
		t.Fatalf("device got %d lines before the boot wait ended", n)
	}
	clk.Advance(cfg.BootWait)
	h.waitState(t, StateReady)
	// The handshake ends with '?': let its TLM arrive now, so that no line
	// lands late (at a later fake time) in the silence check below.
	h.tlm.wait(t, "TLM after the handshake", func(string) bool { return true })

	var mu sync.Mutex
	drops := 1
	dev.set(func(f *fakeDev) {
		f.script = func(line string, c *proto.Command) ([]string, bool) {
			mu.Lock()
			defer mu.Unlock()
			if string(c.Verb) == "OUT" && drops > 0 {
				drops--
				return nil, true
			}
			return nil, false
		}
	})
	done := make(chan Result, 1)
	go func() {
		res, _ := h.d.Do(ctxT(t), Cmd("OUT", proto.KV("lights", proto.Int(1))))
		done <- res
	}()
	first := dev.got.wait(t, "OUT", verb("OUT"))
	select {
	case res := <-done:
		t.Fatalf("Do returned before any time passed: %+v", res)
	default:
	}
	clk.Advance(cfg.CommandTimeout) // the reply timer was armed before the write
	dev.got.waitFrom(t, first+1, "OUT resent", verb("OUT"))
	if res := <-done; res.Status != StatusOK || res.Tries != 2 {
		t.Fatalf("Do = %+v, want ok after 2 tries", res)
	}

	// Silence: the device stops answering; the host probes, then gives up.
	from := h.states.len()
	dev.set(func(f *fakeDev) { f.silent = true })
	for i := 0; i < 5; i++ {
		clk.Advance(cfg.SilenceTimeout / 4)
	}
	h.states.waitFrom(t, from, "disconnected", stateIs(StateDisconnected))
	if dev.got.count(eq("?")) == 0 {
		t.Error("no '?' probe before declaring the device silent")
	}

	// The reconnect waits for the backoff, then the boot wait.
	dev.set(func(f *fakeDev) { f.silent = false })
	<-clk.BlockUntil(1) // the backoff timer
	from = h.states.len()
	clk.Advance(cfg.BackoffMax)
	<-clk.BlockUntil(1) // the boot wait
	clk.Advance(cfg.BootWait)
	h.waitReadyFrom(t, from)
}

// A port that is not there yet: the host retries with backoff and connects
// when it appears (a board plugged in after the agent started).
func TestPortAppearsLater(t *testing.T) {
	link := filepath.Join(t.TempDir(), "robot")
	h := openDevice(t, testConfig(link), nil)
	h.logs.wait(t, "open failure log", has("cannot open the port; retrying"))
	h.logs.wait(t, "reason", has("not present"))
	h.waitState(t, StateDisconnected)
	dev := newFakeDev(t)
	if err := os.Symlink(dev.Path(), link); err != nil {
		t.Fatal(err)
	}
	h.waitState(t, StateReady)
}
