package devices

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/teleop/teleop/clock"
	"github.com/teleop/teleop/devices/proto"
)

// FuzzLineSplitter checks the splitter against the obvious definition:
// split at '\n', drop '\r', and report lines over 128 bytes (with their
// '\n', '\r' not counted) by length instead.
func FuzzLineSplitter(f *testing.F) {
	f.Add([]byte("OK 1*15\nTLM 1 st=RDY\r\n"))
	f.Add(bytes.Repeat([]byte("x"), 300))
	f.Add(append(bytes.Repeat([]byte("y"), 127), '\n', 'a', '\n'))
	f.Add([]byte("\n\n\r\r\n\x00\xff\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var s lineSplitter
		var got []string
		for _, c := range in {
			if line, tooLong, ok := s.push(c); ok {
				if tooLong > 0 {
					got = append(got, "<"+string(rune('0'+tooLong%10))+">")
				} else {
					got = append(got, string(line))
				}
			}
		}
		var want []string
		parts := bytes.Split(in, []byte("\n"))
		for _, p := range parts[:len(parts)-1] { // the last part has no '\n' yet
			p = bytes.ReplaceAll(p, []byte("\r"), nil)
			if len(p)+1 > proto.MaxDeviceLine {
				want = append(want, "<"+string(rune('0'+(len(p)+1)%10))+">")
			} else {
				want = append(want, string(p))
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%d lines, want %d", len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("line %d = %q, want %q", i, got[i], want[i])
			}
		}
	})
}

// FuzzHandleLine feeds arbitrary device lines to a ready Device with
// commands in flight: nothing may panic, and the bookkeeping must stay
// consistent (window bytes match the pending commands).
func FuzzHandleLine(f *testing.F) {
	for _, s := range []string{
		"OK 3*17", "OK 4 k=v", "ERR 3 4 range", "ERR - 2 checksum*77", "ERR 4 5 estop",
		"HELLO proto=1.0 fw=x/1 board=b rx=64 caps=vel", "HELLO proto=2.0", "HELLO rx=1",
		"TLM 5 st=ES", "TLM 5 st=FS", "TLM 5 st=RDY", "EVT ESTOP src=byte", "EVT CLEARED", "EVT WDOG",
		"EVT OVERFLOW", "EVT FAULT code=1", "# hi", "", "\x00", "OK 65535", "ERR 0 1", "OK 3*00",
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, line string, strict bool) {
		d := &Device{
			cfg:     Config{Retries: 1, CommandTimeout: time.Second}.withDefaults(),
			log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
			clk:     clock.NewFake(),
			ctx:     context.Background(),
			pending: map[uint16]*request{},
		}
		c := newConn(nil)
		d.conn, d.ready, d.strictRx, d.state = c, true, strict, StateReady
		one, _ := d.newRequest(kindOneShot, Cmd("OUT", proto.KV("lights", proto.Int(1))))
		sp, _ := d.newRequest(kindSetpoint, Cmd("VEL", proto.Float(0.1, 3), proto.Float(0, 3)))
		d.enqueue(one)
		d.enqueue(sp)
		d.mu.Lock()
		for b, _ := d.nextLocked(c); b != nil; b, _ = d.nextLocked(c) {
		}
		d.mu.Unlock()

		d.handleLine(c, []byte(line))

		d.mu.Lock()
		defer d.mu.Unlock()
		n := 0
		for seq, r := range d.pending {
			if r.finished || r.seq != seq {
				t.Fatalf("pending[%d] = %+v", seq, r)
			}
			n += r.bytes
		}
		if n != d.inflight {
			t.Fatalf("inflight %d, pending bytes %d", d.inflight, n)
		}
		d.failAllLocked(ErrClosed)
		if d.inflight != 0 || len(d.pending) != 0 || d.oneshot != nil || d.setpoint != nil {
			t.Fatal("failAll left commands behind")
		}
	})
}
