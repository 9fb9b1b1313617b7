package devices

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.bug.st/serial"
	"golang.org/x/sys/unix"

	"github.com/teleop/teleop/devices/proto"
)

// Port is one open serial port, used the way the teleop link needs:
//
//   - exclusive: the device node is flock'ed, so two agents (or an agent and
//     teleop serial) cannot share it; TIOCEXCL alone does not stop root.
//   - reads go through go.bug.st/serial with a short read timeout, where a
//     timeout is (0, nil) and not EOF, into a line splitter that discards
//     lines over proto.MaxDeviceLine bytes.
//   - writes cannot hang: go.bug.st/serial's Write has no timeout and closing
//     the port does not unblock it (measured on Linux ptys: the write stays
//     blocked after Close), so writes go through a second, non-blocking
//     descriptor of the same tty with a deadline. A write blocked longer than
//     the write timeout fails with ErrWriteStalled and closes the port.
//
// ReadLine may be called from one goroutine; Write, WriteNext and
// WriteUrgent from any, serialised by a mutex. Close may be called from any goroutine, any number
// of times, and unblocks both.
type Port struct {
	path         string
	sp           serial.Port // mode, exclusive use, buffer flushes
	wf           *os.File    // non-blocking, poller-backed: reads, writes with deadlines; holds the flock
	writeTimeout time.Duration

	wmu sync.Mutex // serialises writes: the writer goroutine and the e-stop fast path

	// owned by the ReadLine caller
	rbuf       []byte // read buffer
	rpos, rend int    // unread bytes are rbuf[rpos:rend]
	split      lineSplitter

	closing   atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// PortOptions configure OpenPort. A nil *PortOptions means the defaults.
type PortOptions struct {
	Baud         int           // default 115200; always 8N1
	WriteTimeout time.Duration // default 500ms

}

// Errors of Port.
var (
	// ErrPortClosed: Close was called.
	ErrPortClosed = errors.New("port closed")
	// ErrWriteStalled: a write made no progress within the write timeout
	// (the device stopped reading); the port has been closed.
	ErrWriteStalled = errors.New("write stalled")
	// ErrPortBusy: another process (or another Port in this one) holds the port.
	ErrPortBusy = errors.New("port busy")
)

// LineTooLongError reports a device line over proto.MaxDeviceLine bytes
// that ReadLine discarded. The port is still usable.
type LineTooLongError struct{ Len int }

func (e *LineTooLongError) Error() string {
	return fmt.Sprintf("discarded a %d-byte line (limit %d with its newline)", e.Len, proto.MaxDeviceLine)
}

// OpenPort opens and locks the device node at path (symlinks followed):
// baud 8N1, no flow control, modem lines untouched (InitialStatusBits nil:
// ptys fail the modem ioctls). It does not discard input; see DiscardInput.
func OpenPort(path string, opts *PortOptions) (*Port, error) {
	var o PortOptions
	if opts != nil {
		o = *opts
	}
	if o.Baud == 0 {
		o.Baud = DefaultBaud
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	node, err := filepath.EvalSymlinks(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("open %s: not present", path)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// The write descriptor first: once go.bug.st/serial has set TIOCEXCL,
	// a second open fails for non-root. Go's os.File polls ttys, so this
	// one gets write deadlines.
	wf, err := os.OpenFile(node, os.O_RDWR|syscall.O_NOCTTY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.EBUSY) {
			return nil, fmt.Errorf("open %s: %w: opened exclusively by %s", node, ErrPortBusy, describeHolders(node, -1))
		}
		return nil, fmt.Errorf("open %s: %w", node, err)
	}
	if err := flock(wf); err != nil {
		wf.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("open %s: %w: locked by %s", node, ErrPortBusy, describeHolders(node, os.Getpid()))
		}
		return nil, fmt.Errorf("lock %s: %w", node, err)
	}
	sp, err := serial.Open(node, &serial.Mode{
		BaudRate: o.Baud,
		DataBits: 8,
		Parity:   serial.NoParity,
		StopBits: serial.OneStopBit,
	})
	if err != nil {
		if terr := termios2Refused(wf, o.Baud); terr != nil {
			err = fmt.Errorf("%d baud is not a standard termios rate and setting it needs the termios2 ioctls, "+
				"which this system refuses (%v; qemu-user is one such); use a standard rate such as 115200 or 230400: %w",
				o.Baud, terr, err)
		}
		wf.Close()
		var pe *serial.PortError
		if errors.As(err, &pe) && pe.Code() == serial.PortBusy {
			return nil, fmt.Errorf("open %s: %w: %v", node, ErrPortBusy, err)
		}
		return nil, fmt.Errorf("open %s: %w", node, err)
	}
	return &Port{
		path:         node,
		sp:           sp,
		wf:           wf,
		writeTimeout: o.WriteTimeout,
		rbuf:         make([]byte, 256),
		split:        lineSplitter{line: make([]byte, 0, proto.MaxDeviceLine)},
	}, nil
}

// termiosRates are the rates go.bug.st/serial sets with plain termios on
// Linux (its baudrateMap); any other rate goes through termios2 (TCGETS2,
// TCSETS2 with BOTHER).
var termiosRates = []int{50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 9600, 19200, 38400,
	57600, 115200, 230400, 460800, 500000, 576000, 921600, 1000000, 1152000, 1500000, 2000000, 2500000,
	3000000, 3500000, 4000000}

// termios2Refused explains a failed open at a non-standard rate: it returns
// the error of TCGETS2 on a tty that answers TCGETS, nil otherwise. Such
// ttys exist under qemu-user, which does not translate TCGETS2/TCSETS2
// (ENOSYS); go.bug.st/serial then reports only "error configuring port".
func termios2Refused(f *os.File, baud int) error {
	if slices.Contains(termiosRates, baud) {
		return nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil
	}
	var refused error
	rc.Control(func(fd uintptr) {
		if _, err := unix.IoctlGetTermios(int(fd), unix.TCGETS); err != nil {
			return // not a tty at all: another problem
		}
		if _, err := unix.IoctlGetTermios(int(fd), unix.TCGETS2); err != nil {
			refused = fmt.Errorf("TCGETS2: %w", err)
		}
	})
	return refused
}

// flock takes an exclusive, non-blocking flock on f without putting it in
// blocking mode (as f.Fd would).
func flock(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB) }); err != nil {
		return err
	}
	return ferr
}

// Path is the device node that was opened (symlinks resolved).
func (p *Port) Path() string { return p.path }

// DiscardInput drops bytes received and not yet read, in the kernel and in
// the line splitter. Call it before the first ReadLine or from the goroutine
// that calls ReadLine.
func (p *Port) DiscardInput() error {
	p.rpos, p.rend = 0, 0
	p.split.reset()
	return p.sp.ResetInputBuffer()
}

// ReadLine returns the next line without its '\n' and with '\r' bytes
// removed. The slice is valid until the next call. An over-long line is
// discarded and reported as *LineTooLongError, after which reading may
// continue. Any other error ends the port: ErrPortClosed after Close,
// otherwise the device is gone (unplugged: PortClosed, EIO).
func (p *Port) ReadLine() ([]byte, error) {
	for {
		for p.rpos < p.rend {
			c := p.rbuf[p.rpos]
			p.rpos++
			if line, tooLong, ok := p.split.push(c); ok {
				if tooLong > 0 {
					return nil, &LineTooLongError{Len: tooLong}
				}
				return line, nil
			}
		}
		// Reads go through Go's runtime poller on the non-blocking
		// descriptor (epoll): the goroutine parks until bytes arrive or
		// Close, with no thread blocked in select(2) per read and no
		// wake-ups while the device is quiet. Silence is detected on the
		// clock elsewhere, not by read timeouts. A hang-up reads as EIO or
		// EOF: the link is down either way.
		n, err := p.wf.Read(p.rbuf)
		p.rpos, p.rend = 0, max(n, 0)
		if err != nil {
			p.rend = 0
			return nil, p.readErr(err)
		}
	}
}

// lineSplitter assembles device lines from bytes: '\r' is dropped, and a
// line over proto.MaxDeviceLine bytes (with its '\n') is thrown away as it
// arrives, so an endless line costs no memory.
type lineSplitter struct {
	line    []byte // the line so far
	discard int    // > 0: length so far of an over-long line being thrown away
}

// push takes one byte. At a '\n', ok is true and it returns the line
// (valid until the next push) or, for an over-long line, its length.
func (s *lineSplitter) push(c byte) (line []byte, tooLong int, ok bool) {
	switch {
	case c == '\n':
		if s.discard > 0 {
			n := s.discard + 1
			s.discard = 0
			return nil, n, true
		}
		line = s.line
		s.line = s.line[:0] // line stays valid until the next append
		return line, 0, true
	case c == '\r':
	case s.discard > 0:
		s.discard++
	case len(s.line)+1 >= proto.MaxDeviceLine: // no room for this byte and the '\n'
		s.discard = len(s.line) + 1
		s.line = s.line[:0]
	default:
		s.line = append(s.line, c)
	}
	return nil, 0, false
}

func (s *lineSplitter) reset() {
	s.line = s.line[:0]
	s.discard = 0
}

func (p *Port) readErr(err error) error {
	if p.closing.Load() {
		return ErrPortClosed
	}
	return fmt.Errorf("read %s: %w", p.path, err)
}

// Write writes b with the write timeout. A stall closes the port and
// returns an error wrapping ErrWriteStalled; a partial line may have gone
// out, which the next handshake's RESYNC byte discards on the device.
func (p *Port) Write(b []byte) (int, error) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	return p.writeLocked(b)
}

// WriteNext writes the bytes next returns, choosing them under the write
// mutex: a WriteUrgent that starts after next has run goes out after those
// bytes, and one that started before it is seen by next (for the Device,
// this is how an e-stop wins over a CLEAR still queued). It returns the
// bytes written; nil from next writes nothing.
func (p *Port) WriteNext(next func() []byte) ([]byte, error) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	b := next()
	if b == nil {
		return nil, nil
	}
	_, err := p.writeLocked(b)
	return b, err
}

// WriteUrgent is the e-stop fast path: it waits only for a write already in
// progress, drops the output the kernel has queued but not yet sent (so the
// bytes go out next, not behind a buffer of commands), then writes b.
func (p *Port) WriteUrgent(b []byte) (int, error) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_ = p.sp.ResetOutputBuffer() // best effort: a cut-off line is discarded by '!' anyway
	return p.writeLocked(b)
}

func (p *Port) writeLocked(b []byte) (int, error) {
	if err := p.wf.SetWriteDeadline(time.Now().Add(p.writeTimeout)); err != nil {
		return 0, p.writeErr(err)
	}
	n, err := p.wf.Write(b)
	if err != nil {
		return n, p.writeErr(err)
	}
	return n, nil
}

func (p *Port) writeErr(err error) error {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		p.Close()
		return fmt.Errorf("write %s: %w: blocked for %v (the device stopped reading)", p.path, ErrWriteStalled, p.writeTimeout)
	case p.closing.Load() || errors.Is(err, os.ErrClosed):
		return ErrPortClosed
	}
	return fmt.Errorf("write %s: %w", p.path, err)
}

// Close closes the port and releases the lock. It unblocks ReadLine and
// Write in other goroutines.
func (p *Port) Close() error {
	p.closing.Store(true)
	p.closeOnce.Do(p.closeNow)
	return p.closeErr
}

func (p *Port) closeNow() {
	err1 := p.sp.Close()
	err2 := p.wf.Close() // releases the flock
	p.closeErr = errors.Join(err1, err2)
}

// describeHolders names the processes that hold node: flock holders from
// /proc/locks, else processes with it open. self is this process's pid when
// our own descriptors should be reported as "this process".
func describeHolders(node string, self int) string {
	pids := lockHolders(node)
	if len(pids) == 0 {
		pids = openers(node)
	}
	if len(pids) == 0 {
		return "another process (unknown)"
	}
	var parts []string
	for _, pid := range pids {
		s := "pid " + strconv.Itoa(pid)
		if cmd := cmdline(pid); cmd != "" {
			s += " (" + cmd + ")"
		}
		if pid == os.Getpid() {
			s += ", this process"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// lockHolders reads /proc/locks for FLOCK locks on node's inode.
func lockHolders(node string) []int {
	var st unix.Stat_t
	if err := unix.Stat(node, &st); err != nil {
		return nil
	}
	want := fmt.Sprintf("%02x:%02x:%d", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)), st.Ino)
	f, err := os.Open("/proc/locks")
	if err != nil {
		return nil
	}
	defer f.Close()
	var pids []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 1: FLOCK  ADVISORY  WRITE 23860 fe:00:9978907 0 EOF
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[1] != "FLOCK" || f[5] != want {
			continue
		}
		if pid, err := strconv.Atoi(f[4]); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// openers scans /proc/*/fd for descriptors of node (best effort: needs
// permission to read other processes' fds).
func openers(node string) []int {
	procs, _ := os.ReadDir("/proc")
	var pids []int
	for _, pe := range procs {
		pid, err := strconv.Atoi(pe.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		fdDir := filepath.Join("/proc", pe.Name(), "fd")
		fds, _ := os.ReadDir(fdDir)
		for _, fd := range fds {
			if t, err := os.Readlink(filepath.Join(fdDir, fd.Name())); err == nil && t == node {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

func cmdline(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return ""
	}
	s := strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " ")
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return s
}
