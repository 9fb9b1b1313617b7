package devices

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/creack/pty"
)

// Rates outside the termios table go through termios2, which Linux ptys
// and USB serial drivers take. Under qemu-user (7.2) TCGETS2 fails with
// ENOSYS: OpenPort then says so instead of go.bug.st/serial's bare
// "error configuring port" (internal/emutest checks that under qemu).
func TestNonStandardBaud(t *testing.T) {
	m, s, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	name := s.Name()
	s.Close()

	for _, baud := range []int{115200, 250000} {
		f, err := os.OpenFile(name, os.O_RDWR|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := termios2Refused(f, baud); err != nil {
			t.Errorf("termios2Refused(pty, %d) = %v on the host, want nil", baud, err)
		}
		f.Close()

		p, err := OpenPort(name, &PortOptions{Baud: baud})
		if err != nil {
			t.Fatalf("OpenPort at %d baud: %v", baud, err)
		}
		p.Close()
	}

	// Not a tty: TCGETS fails too, so the open fails for another reason
	// and termios2 is not blamed.
	file := filepath.Join(t.TempDir(), "file")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := termios2Refused(f, 250000); err != nil {
		t.Errorf("termios2Refused(regular file) = %v, want nil", err)
	}
}
