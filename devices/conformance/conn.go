package conformance

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.bug.st/serial"

	"github.com/teleop/teleop/devices/proto"
)

// Line is one device line as the test saw it.
type Line struct {
	Raw         string // without '\n'
	Text        string // without "*HH"
	Kind        proto.Kind
	Seq         uint16
	NoSeq       bool
	Code        int
	Name        string // EVT
	TimeMs      uint32 // TLM
	Fields      map[string]string
	HadChecksum bool
	Err         error // the codec refused the line
	At          time.Time
}

// Field returns the value of key ("" when absent).
func (l Line) Field(key string) string { return l.Fields[key] }

// Final reports whether l is a final reply (OK or ERR).
func (l Line) Final() bool {
	return l.Err == nil && (l.Kind == proto.KindOK || l.Kind == proto.KindErr)
}

func (l Line) String() string {
	if l.Err != nil {
		return fmt.Sprintf("%q (%v)", l.Raw, l.Err)
	}
	return l.Raw
}

// Conn is a host end of a serial port for tests: opened with go.bug.st/serial
// as production opens a board, one reader goroutine with its own line
// splitter (a read timeout returns (0, nil), not EOF), the test goroutine as
// the only writer.
type Conn struct {
	t    testing.TB
	port serial.Port
	path string

	mu      sync.Mutex
	lines   []Line        // guarded by mu; received, not yet taken
	notify  chan struct{} // guarded by mu; closed and replaced on every new line
	readErr error         // guarded by mu; why the reader stopped

	wg sync.WaitGroup
}

// Mode is how the suite and production open a port: 115200 8N1, and no
// InitialStatusBits (ptys have no modem lines; the ioctl fails).
var Mode = serial.Mode{BaudRate: 115200, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit}

// Open opens path and starts the reader; the port closes in t's cleanup.
func Open(t testing.TB, path string) *Conn {
	t.Helper()
	p, err := serial.Open(path, &Mode)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	if err := p.SetReadTimeout(50 * time.Millisecond); err != nil {
		p.Close()
		t.Fatalf("set read timeout on %s: %v", path, err)
	}
	c := &Conn{t: t, port: p, path: path, notify: make(chan struct{})}
	c.wg.Add(1)
	go c.readLoop()
	t.Cleanup(c.Close)
	return c
}

// Close closes the port and waits for the reader.
func (c *Conn) Close() {
	c.port.Close()
	c.wg.Wait()
}

// Port is the underlying serial port (for faults such as a stalled writer).
func (c *Conn) Port() serial.Port { return c.port }

func (c *Conn) readLoop() {
	defer c.wg.Done()
	buf := make([]byte, 256)
	var line []byte
	for {
		n, err := c.port.Read(buf)
		for _, b := range buf[:n] {
			if b != '\n' {
				if len(line) < 4*proto.MaxDeviceLine {
					line = append(line, b)
				}
				continue
			}
			c.add(line)
			line = line[:0]
		}
		if err != nil {
			c.mu.Lock()
			c.readErr = err
			close(c.notify)
			c.notify = make(chan struct{})
			c.mu.Unlock()
			return
		}
		// n == 0 && err == nil is the read timeout: go on.
	}
}

func (c *Conn) add(raw []byte) {
	l := Line{Raw: string(raw), At: time.Now()}
	var dl proto.DeviceLine
	l.Err = proto.ParseDeviceLine(append([]byte(nil), raw...), &dl, false)
	if l.Err == nil {
		l.Kind, l.Seq, l.NoSeq, l.Code = dl.Kind, dl.Seq, dl.NoSeq, dl.Code
		l.Name, l.TimeMs, l.HadChecksum = string(dl.Name), dl.TimeMs, dl.HadChecksum
		if dl.Kind == proto.KindErr || dl.Kind == proto.KindComment {
			l.Fields = map[string]string{"text": string(dl.Text)}
		} else {
			l.Fields = make(map[string]string, len(dl.Fields))
		}
		for _, f := range dl.Fields {
			l.Fields[string(f.Key)] = string(f.Value)
		}
	}
	l.Text, _, _ = strings.Cut(strings.TrimRight(l.Raw, "\r"), "*")
	c.mu.Lock()
	c.lines = append(c.lines, l)
	close(c.notify)
	c.notify = make(chan struct{})
	c.mu.Unlock()
}

// Write writes raw bytes (reserved bytes, partial lines, garbage).
func (c *Conn) Write(b []byte) {
	c.t.Helper()
	if _, err := c.port.Write(b); err != nil {
		c.t.Fatalf("write %q to %s: %v", b, c.path, err)
	}
}

// WriteString writes s raw.
func (c *Conn) WriteString(s string) { c.t.Helper(); c.Write([]byte(s)) }

// Send encodes and writes one command line with its checksum.
func (c *Conn) Send(seq uint16, verb string, args ...proto.Arg) {
	c.t.Helper()
	b, err := proto.AppendCommand(nil, seq, verb, args...)
	if err != nil {
		c.t.Fatalf("encode %d %s: %v", seq, verb, err)
	}
	c.Write(b)
}

// ErrTimeout is returned by Next when no line came in time.
var ErrTimeout = errors.New("no line in time")

// Next returns the next line, waiting up to d.
func (c *Conn) Next(d time.Duration) (Line, error) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		if len(c.lines) > 0 {
			l := c.lines[0]
			c.lines = c.lines[1:]
			c.mu.Unlock()
			return l, nil
		}
		ch, rerr := c.notify, c.readErr
		c.mu.Unlock()
		if rerr != nil {
			return Line{}, fmt.Errorf("read %s: %w", c.path, rerr)
		}
		select {
		case <-ch:
		case <-deadline.C:
			return Line{}, ErrTimeout
		}
	}
}

// Drain drops every line received so far.
func (c *Conn) Drain() []Line {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.lines
	c.lines = nil
	return l
}

// WaitFor returns the first line that match accepts, and the lines before
// it, failing the test after d.
func (c *Conn) WaitFor(d time.Duration, what string, match func(Line) bool) (Line, []Line) {
	c.t.Helper()
	end := time.Now().Add(d)
	var skipped []Line
	for {
		l, err := c.Next(time.Until(end))
		if err != nil {
			c.t.Fatalf("waiting %v for %s: %v; saw %v", d, what, err, skipped)
		}
		if l.Err != nil && !errors.Is(l.Err, proto.ErrUnknownKind) {
			c.t.Errorf("device sent a malformed line %v", l)
		}
		if match(l) {
			return l, skipped
		}
		skipped = append(skipped, l)
	}
}

// Reply waits for the final reply to seq; other final replies on the way
// fail the test (replies come in command order). It returns the reply and
// the non-final lines (HELLO, EVT, TLM, #) that came before it.
func (c *Conn) Reply(d time.Duration, seq uint16) (Line, []Line) {
	c.t.Helper()
	l, before := c.WaitFor(d, fmt.Sprintf("the reply to %d", seq), Line.Final)
	if l.Kind == proto.KindErr && l.NoSeq {
		return l, before
	}
	if l.Seq != seq {
		c.t.Fatalf("waiting for the reply to %d, got %v", seq, l)
	}
	return l, before
}

// Quiet collects the lines that arrive within d (a bounded wait to show
// that something did not happen).
func (c *Conn) Quiet(d time.Duration) []Line {
	end := time.Now().Add(d)
	var got []Line
	for {
		l, err := c.Next(time.Until(end))
		if err != nil {
			return got
		}
		got = append(got, l)
	}
}
