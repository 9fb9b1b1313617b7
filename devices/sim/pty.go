package sim

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// openPTY opens a pty pair in raw mode: no echo, no line discipline, no
// output processing, so every byte (0x18, '\r', '!') passes unchanged.
//
// pty.Open leaves the master in blocking mode (it calls Fd), and Close on a
// blocking *os.File does not interrupt a pending Read. The master is
// therefore re-wrapped as a non-blocking duplicate, which the runtime
// poller serves: Close unblocks the reader and writer, and write deadlines
// work.
func openPTY() (master, slave *os.File, err error) {
	m, s, err := pty.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("open pty: %w", err)
	}
	fd, err := unix.FcntlInt(m.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	m.Close()
	if err != nil {
		s.Close()
		return nil, nil, fmt.Errorf("dup pty master: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		s.Close()
		return nil, nil, fmt.Errorf("pty master nonblocking: %w", err)
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := MakeRaw(s); err != nil {
		master.Close()
		s.Close()
		return nil, nil, fmt.Errorf("raw mode on %s: %w", s.Name(), err)
	}
	return master, s, nil
}

// MakeRaw puts the tty f in raw mode, as cfmakeraw(3) does: 8 bits, no
// echo, no line discipline, no output processing, so every byte (0x18, '\r',
// '!') passes unchanged. Tests that build pty pairs of their own use it too.
func MakeRaw(f *os.File) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ioErr error
	err = sc.Control(func(fd uintptr) {
		t, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
		if err != nil {
			ioErr = err
			return
		}
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag &^= unix.CSIZE | unix.PARENB | unix.CRTSCTS
		t.Cflag |= unix.CS8 | unix.CREAD | unix.CLOCAL
		t.Cc[unix.VMIN] = 1
		t.Cc[unix.VTIME] = 0
		ioErr = unix.IoctlSetTermios(int(fd), unix.TCSETS, t)
	})
	if err != nil {
		return err
	}
	return ioErr
}

// pointLink makes link a symlink to target, atomically (a rename over the
// old link), so a host polling the link never sees it missing mid-update.
func pointLink(link, target string) error {
	if fi, err := os.Lstat(link); err == nil && fi.Mode()&os.ModeSymlink == 0 {
		return fmt.Errorf("link %s exists and is not a symlink", link)
	}
	tmp := filepath.Join(filepath.Dir(link), "."+filepath.Base(link)+".tmp"+strconv.Itoa(os.Getpid()))
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("link %s: %w", link, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("link %s: %w", link, err)
	}
	return nil
}

// removeLink removes link if it still points at target (another simulator
// may have taken the name since).
func removeLink(link, target string) {
	if got, err := os.Readlink(link); err == nil && got == target {
		os.Remove(link)
	}
}
