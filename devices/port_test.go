package devices

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func openTestPort(t *testing.T, opts *PortOptions) (*Port, *os.File) {
	t.Helper()
	m, s := openTestPTY(t)
	t.Cleanup(func() { m.Close(); s.Close() })
	p, err := OpenPort(s.Name(), opts)
	if err != nil {
		t.Fatalf("OpenPort: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p, m
}

// readResult renders what ReadLine returned, for table comparisons.
func readResult(line []byte, err error) string {
	var tl *LineTooLongError
	switch {
	case errors.As(err, &tl):
		return fmt.Sprintf("<too long %d>", tl.Len)
	case err != nil:
		return "<err " + err.Error() + ">"
	}
	return string(line)
}

func TestReadLine(t *testing.T) {
	long := strings.Repeat("x", 200)
	cases := []struct {
		name   string
		chunks []string
		want   []string
	}{
		{"one line", []string{"OK 1*15\n"}, []string{"OK 1*15"}},
		{"split across reads", []string{"TLM 12", "3 st=R", "DY\n"}, []string{"TLM 123 st=RDY"}},
		{"two in one read", []string{"OK 1\nOK 2\n"}, []string{"OK 1", "OK 2"}},
		{"CR dropped", []string{"OK 1\r\n", "\rOK\r 2\n"}, []string{"OK 1", "OK 2"}},
		{"empty line", []string{"\n"}, []string{""}},
		{"127 bytes is the limit", []string{strings.Repeat("a", 127) + "\n"}, []string{strings.Repeat("a", 127)}},
		{"128 bytes is too long", []string{strings.Repeat("a", 128) + "\nOK 1\n"}, []string{"<too long 129>", "OK 1"}},
		{"long across reads, then a good line", []string{long[:100], long[100:], "\nOK 3\n"}, []string{"<too long 201>", "OK 3"}},
		{"binary passes to the parser", []string{"\x00\xff\n"}, []string{"\x00\xff"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, m := openTestPort(t, nil)
			go func() {
				for _, c := range tc.chunks {
					m.Write([]byte(c))
				}
			}()
			for i, want := range tc.want {
				if got := readResult(p.ReadLine()); got != want {
					t.Fatalf("ReadLine %d = %q, want %q", i, got, want)
				}
			}
		})
	}
}

func TestPortCloseUnblocksRead(t *testing.T) {
	p, _ := openTestPort(t, nil)
	done := make(chan error, 1)
	go func() {
		_, err := p.ReadLine()
		done <- err
	}()
	p.Close()
	if err := <-done; !errors.Is(err, ErrPortClosed) {
		t.Fatalf("ReadLine after Close = %v, want ErrPortClosed", err)
	}
	if _, err := p.Write([]byte("x")); !errors.Is(err, ErrPortClosed) {
		t.Fatalf("Write after Close = %v, want ErrPortClosed", err)
	}
}

func TestPortUnplug(t *testing.T) {
	m, s := openTestPTY(t)
	p, err := OpenPort(s.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	m.Close()
	s.Close()
	_, err = p.ReadLine()
	if err == nil || errors.Is(err, ErrPortClosed) {
		t.Fatalf("ReadLine after unplug = %v, want a link error", err)
	}
	t.Logf("unplug reads as: %v", err)
}

func TestPortWriteStall(t *testing.T) {
	p, _ := openTestPort(t, &PortOptions{WriteTimeout: 100 * time.Millisecond})
	buf := []byte(strings.Repeat("x", 1023) + "\n")
	var err error
	for i := 0; i < 10000 && err == nil; i++ { // nobody reads the master
		_, err = p.Write(buf)
	}
	if !errors.Is(err, ErrWriteStalled) {
		t.Fatalf("Write = %v, want ErrWriteStalled", err)
	}
	if _, err := p.ReadLine(); !errors.Is(err, ErrPortClosed) {
		t.Fatalf("a stalled port is closed; ReadLine = %v", err)
	}
}

func TestPortExclusive(t *testing.T) {
	p, _ := openTestPort(t, nil)
	_, err := OpenPort(p.Path(), nil)
	if !errors.Is(err, ErrPortBusy) {
		t.Fatalf("second OpenPort = %v, want ErrPortBusy", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) || !strings.Contains(err.Error(), "this process") {
		t.Errorf("error does not name the holder: %v", err)
	}
	t.Logf("busy error: %v", err)
	p.Close()
	p2, err := OpenPort(p.Path(), nil)
	if err != nil {
		t.Fatalf("OpenPort after Close: %v", err)
	}
	p2.Close()
}

func TestOpenPortNotPresent(t *testing.T) {
	_, err := OpenPort("/dev/serial/by-id/usb-nothing-here", nil)
	if err == nil || !strings.Contains(err.Error(), "not present") {
		t.Fatalf("OpenPort = %v", err)
	}
}

// EStop bytes written with WriteUrgent while a writer is mid-stream go out
// between two writes, not after the queue.
func TestWriteUrgent(t *testing.T) {
	p, m := openTestPort(t, nil)
	if _, err := p.Write([]byte("1 PING*01\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.WriteUrgent([]byte("!!!")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	got := ""
	for !strings.Contains(got, "!!!") {
		n, err := m.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got += string(buf[:n])
	}
	// The kernel may have sent the PING already, or flushed it: either
	// way the e-stop is not behind anything newer.
	if got != "!!!" && got != "1 PING*01\n!!!" {
		t.Fatalf("device got %q", got)
	}
}

// WriteNext picks its bytes under the write mutex: an urgent write that
// starts while they are picked goes out after them (or flushes them), never
// before. nil writes nothing.
func TestWriteNext(t *testing.T) {
	p, m := openTestPort(t, nil)
	if b, err := p.WriteNext(func() []byte { return nil }); b != nil || err != nil {
		t.Fatalf("WriteNext(nil) = %q, %v", b, err)
	}
	urgent := make(chan error, 1)
	b, err := p.WriteNext(func() []byte {
		go func() {
			_, err := p.WriteUrgent([]byte("!!!"))
			urgent <- err
		}()
		return []byte("4 CLEAR*4D\n")
	})
	if err != nil || string(b) != "4 CLEAR*4D\n" {
		t.Fatalf("WriteNext = %q, %v", b, err)
	}
	if err := <-urgent; err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write([]byte("end\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	got := ""
	for !strings.HasSuffix(got, "end\n") {
		n, err := m.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got += string(buf[:n])
	}
	if got != "!!!end\n" && got != "4 CLEAR*4D\n!!!end\n" {
		t.Fatalf("device got %q, want the CLEAR before the e-stop bytes or not at all", got)
	}
}
