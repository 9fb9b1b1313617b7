package emutest

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// output collects a process's stdout or stderr; tests wait on it.
type output struct {
	mu sync.Mutex
	b  bytes.Buffer
	ch chan struct{} // closed and replaced on every write
}

func newOutput() *output { return &output{ch: make(chan struct{})} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	close(o.ch)
	o.ch = make(chan struct{})
	return o.b.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// waitLine waits for a line that contains sub and returns it.
func (o *output) waitLine(t testing.TB, p *proc, sub string, d time.Duration) string {
	t.Helper()
	deadline := time.After(d)
	for {
		o.mu.Lock()
		s, ch := o.b.String(), o.ch
		o.mu.Unlock()
		for _, l := range strings.Split(s, "\n") {
			if strings.Contains(l, sub) {
				return l
			}
		}
		select {
		case <-ch:
		case <-p.done:
			t.Fatalf("%s exited (%v) before printing %q:\nstdout:\n%s\nstderr:\n%s", p.name, p.err, sub, p.stdout, p.stderr)
		case <-deadline:
			t.Fatalf("%s printed no %q within %v:\nstdout:\n%s\nstderr:\n%s", p.name, sub, d, p.stdout, p.stderr)
		}
	}
}

// proc is a process a test started; only its own PID is ever signalled.
type proc struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr *output
	done           chan struct{} // closed when it has exited
	err            error         // its exit, once done is closed
}

// start starts cmd and stops it (SIGTERM, then SIGKILL) when the test ends.
func start(t testing.TB, name string, cmd *exec.Cmd, env ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: cmd, stdout: newOutput(), stderr: newOutput(), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if err := p.stop(10 * time.Second); err != nil && t.Failed() {
			t.Logf("%s: %v", name, err)
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", name, p.stderr)
		}
	})
	return p
}

// stop sends SIGTERM and waits up to d for the exit, then kills. It
// returns the exit error (nil for exit code 0).
func (p *proc) stop(d time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		p.cmd.Process.Kill()
		<-p.done
		return &exitTimeout{p.name, d}
	}
}

type exitTimeout struct {
	name string
	d    time.Duration
}

func (e *exitTimeout) Error() string {
	return e.name + " did not exit within " + e.d.String() + " of SIGTERM"
}

// memKB is a process's resident memory from /proc/PID/status, in KiB.
type memKB struct{ rss, anon, file int }

// mem reads VmRSS, RssAnon and RssFile of the process (for qemu-user: the
// emulator and its guest, one process).
func (p *proc) mem() (memKB, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/status")
	if err != nil {
		return memKB{}, err
	}
	var m memKB
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
		switch k {
		case "VmRSS":
			m.rss = n
		case "RssAnon":
			m.anon = n
		case "RssFile":
			m.file = n
		}
	}
	if m.rss == 0 {
		return m, os.ErrNotExist
	}
	return m, nil
}
