package simavrtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Files, relative to the firmware directory.
const (
	ELF     = "build/teleop-fw.elf" // the simavr build (with the .mmcu section)
	Harness = "build/simavr-uart"
)

// RequireEnv names the environment variable that turns a skip into a failure.
const RequireEnv = "TELEOP_REQUIRE_SIMAVR"

const (
	startTimeout = 20 * time.Second // the pty line; generous on a loaded CI box
	stopTimeout  = 5 * time.Second
)

// Dir returns the firmware directory (the one holding firmware/Makefile).
func Dir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "firmware"
	}
	return filepath.Dir(filepath.Dir(file))
}

// Available reports why the firmware cannot run under simavr here, or nil.
func Available() error {
	var missing []string
	for _, tool := range []struct{ cmd, pkg string }{
		{"make", "make"},
		{"cc", "gcc"},
		{"avr-gcc", "gcc-avr"},
	} {
		if _, err := exec.LookPath(tool.cmd); err != nil {
			missing = append(missing, tool.pkg)
		}
	}
	if _, err := os.Stat("/usr/lib/avr/include/avr/io.h"); err != nil {
		missing = append(missing, "avr-libc")
	}
	if _, err := os.Stat("/usr/include/simavr/sim_avr.h"); err != nil {
		missing = append(missing, "libsimavr-dev")
	}
	if _, err := os.Stat("/usr/include/libelf.h"); err != nil {
		missing = append(missing, "libelf-dev")
	}
	if len(missing) > 0 {
		return fmt.Errorf("simavr firmware tests need Debian packages %s (make deps installs them)",
			strings.Join(missing, " "))
	}
	return nil
}

var build struct {
	once sync.Once
	err  error
}

// Build runs make for the firmware and the harness once per test binary.
// make itself is serialised across processes (go test runs packages in
// parallel) with a lock file in the build directory.
func Build() error {
	build.once.Do(func() {
		build.err = runMake(Dir())
		statInputs(Dir())
	})
	return build.err
}

// statInputs stats the firmware's sources and outputs from this process, so
// that go test's result cache (which records the files a test looks at)
// is invalidated when the firmware changes.
func statInputs(dir string) {
	for _, pattern := range []string{"Makefile", "src/*", "sim/*", ELF, Harness} {
		names, _ := filepath.Glob(filepath.Join(dir, pattern))
		for _, name := range names {
			_, _ = os.Stat(name)
		}
	}
}

func runMake(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "build"), 0o755); err != nil {
		return fmt.Errorf("build firmware: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "build", ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("build firmware: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("build firmware: lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	cmd := exec.Command("make", "--no-print-directory", "-C", dir, "fw", "harness")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("make -C %s fw harness: %w\n%s", dir, err, out)
	}
	return nil
}

// Start runs the firmware under simavr for the rest of tb and returns the
// pty path. The emulator stops in tb's cleanup; a firmware crash fails tb.
func Start(tb testing.TB) string {
	tb.Helper()
	return StartSim(tb).Path
}

// Sim is one running emulator.
type Sim struct {
	Path string // the pty: the emulated board's serial port
	cmd  *exec.Cmd
}

// Reset pulls the emulated MCU's reset pin, as a Uno's auto-reset does when
// its port is opened: the firmware reboots and sends a new HELLO.
func (s *Sim) Reset() error {
	if err := s.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return fmt.Errorf("reset simavr: %w", err)
	}
	return nil
}

// StartSim is Start returning the emulator, for tests that reset it.
func StartSim(tb testing.TB) *Sim {
	tb.Helper()
	if err := Available(); err != nil {
		if os.Getenv(RequireEnv) != "" {
			tb.Fatalf("%v (%s is set)", err, RequireEnv)
		}
		tb.Skip(err)
	}
	if err := Build(); err != nil {
		tb.Fatal(err)
	}
	dir := Dir()
	cmd := exec.Command(filepath.Join(dir, Harness), "-v", "-e", filepath.Join(dir, ELF))
	// -e: the harness exits when this pipe closes, also if this process dies.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatalf("simavr: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatalf("simavr: %v", err)
	}
	cmd.Stderr = &logWriter{tb: tb}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("simavr: start %s: %v", Harness, err)
	}

	exited := make(chan error, 1)
	var once sync.Once
	wait := func() error {
		once.Do(func() { exited <- cmd.Wait() })
		return <-exited
	}
	tb.Cleanup(func() {
		stdin.Close()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- wait() }()
		var err error
		select {
		case err = <-done:
		case <-time.After(stopTimeout):
			_ = cmd.Process.Kill()
			err = <-done
			tb.Errorf("simavr: harness ignored SIGTERM for %v; killed", stopTimeout)
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 2 {
			tb.Errorf("simavr: the firmware crashed (see the log above)")
		}
	})

	// The harness prints exactly one line, "pty: /dev/pts/N", then closes stdout.
	type result struct {
		path string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		_, _ = io.Copy(io.Discard, stdout)
		path, ok := strings.CutPrefix(strings.TrimSpace(line), "pty: ")
		if !ok && err == nil {
			err = fmt.Errorf("unexpected first line %q", line)
		}
		got <- result{path, err}
	}()
	select {
	case r := <-got:
		if r.err != nil || r.path == "" {
			tb.Fatalf("simavr: reading the pty path: %v", r.err)
		}
		return &Sim{Path: r.path, cmd: cmd}
	case <-time.After(startTimeout):
		tb.Fatalf("simavr: no pty path from %s within %v", Harness, startTimeout)
	}
	return nil
}

// logWriter passes the harness's stderr to the test log, line by line.
type logWriter struct {
	tb  testing.TB
	mu  sync.Mutex
	buf []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.tb.Logf("simavr: %s", w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}
