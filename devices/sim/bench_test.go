package sim

import (
	"slices"
	"testing"
	"time"

	"go.bug.st/serial"

	"github.com/teleop/teleop/devices/conformance"
	"github.com/teleop/teleop/devices/proto"
)

// The round-trip benchmarks time one command line written with
// go.bug.st/serial on the pty slave until its reply line is read back, as
// the host's serial link does. BenchmarkRoundTripPtyFloor is the same with a
// bare echo on the master instead of the robot: the cost of the pty and the
// serial library alone. Both report p50 and p99 per round trip.

// lineReader splits lines from a serial port without bufio (a read timeout
// returns (0, nil)).
type lineReader struct {
	p    serial.Port
	buf  [256]byte
	r, w int
	line []byte
}

func (lr *lineReader) next(b *testing.B) []byte {
	lr.line = lr.line[:0]
	for {
		for lr.r < lr.w {
			c := lr.buf[lr.r]
			lr.r++
			if c == '\n' {
				return lr.line
			}
			lr.line = append(lr.line, c)
		}
		n, err := lr.p.Read(lr.buf[:])
		if err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			b.Fatal("read timeout")
		}
		lr.r, lr.w = 0, n
	}
}

func openHost(b *testing.B, path string) (serial.Port, *lineReader) {
	p, err := serial.Open(path, &conformance.Mode)
	if err != nil {
		b.Fatal(err)
	}
	if err := p.SetReadTimeout(5 * time.Second); err != nil {
		b.Fatal(err)
	}
	return p, &lineReader{p: p, line: make([]byte, 0, proto.MaxDeviceLine)}
}

func reportPercentiles(b *testing.B, d []time.Duration) {
	b.StopTimer()
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	us := func(q float64) float64 { return float64(d[int(q*float64(len(d)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(us(0.50), "p50-µs")
	b.ReportMetric(us(0.99), "p99-µs")
}

func BenchmarkRoundTripSim(b *testing.B) {
	r, err := New(&Options{TLMHz: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	p, lr := openHost(b, r.Path())
	defer p.Close()
	for string(lr.next(b)[:5]) != "HELLO" {
	}
	out := make([]byte, 0, proto.MaxCommandLine)
	var dl proto.DeviceLine
	lat := make([]time.Duration, 0, b.N)
	var seq uint16
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		seq = proto.NextSeq(seq)
		out, err = proto.AppendCommand(out[:0], seq, "VEL", proto.Float(0.25, 3), proto.Float(-0.1, 3))
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if _, err := p.Write(out); err != nil {
			b.Fatal(err)
		}
		for {
			if err := proto.ParseDeviceLine(lr.next(b), &dl, true); err != nil {
				b.Fatal(err)
			}
			if dl.Kind == proto.KindOK || dl.Kind == proto.KindErr {
				break
			}
		}
		lat = append(lat, time.Since(t0))
		if dl.Kind != proto.KindOK || dl.Seq != seq {
			b.Fatalf("reply %+v to %q", dl, out)
		}
	}
	reportPercentiles(b, lat)
}

func BenchmarkRoundTripPtyFloor(b *testing.B) {
	master, slave, err := openPTY()
	if err != nil {
		b.Fatal(err)
	}
	defer slave.Close()
	done := make(chan struct{})
	go func() { // bare echo: whatever the host writes comes straight back
		defer close(done)
		buf := make([]byte, 512)
		for {
			n, err := master.Read(buf)
			if n > 0 {
				if _, err := master.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() { master.Close(); <-done }()
	p, lr := openHost(b, slave.Name())
	defer p.Close()
	line, _ := proto.AppendCommand(nil, 12, "VEL", proto.Float(0.25, 3), proto.Float(-0.1, 3))
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := p.Write(line); err != nil {
			b.Fatal(err)
		}
		lr.next(b)
		lat = append(lat, time.Since(t0))
	}
	reportPercentiles(b, lat)
}
