// Package natstest runs a real nats-server (the Debian binary) with
// JetStream on a loopback port for tests and benchmarks.
package natstest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// DefaultBinary is where Debian's nats-server package installs it.
const DefaultBinary = "/usr/sbin/nats-server"

// Binary finds nats-server: DefaultBinary, then $PATH.
func Binary() (string, error) {
	if _, err := os.Stat(DefaultBinary); err == nil {
		return DefaultBinary, nil
	}
	p, err := exec.LookPath("nats-server")
	if err != nil {
		return "", errors.New("nats-server not found (apt-get install nats-server, or make deps as root)")
	}
	return p, nil
}

// Server is one nats-server process.
type Server struct {
	bin  string
	dir  string
	Port int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  []byte
}

// Start runs nats-server with JetStream on 127.0.0.1 at a free port, its
// store in a new directory under dir.
func Start(dir string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	store, err := os.MkdirTemp(dir, "nats-")
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, dir: store}
	if err := s.start(-1); err != nil {
		return nil, err
	}
	return s, nil
}

var listening = regexp.MustCompile(`Listening for client connections on [^\s]*:(\d+)`)

func (s *Server) start(port int) error {
	cmd := exec.Command(s.bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", s.dir)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start nats-server: %w", err)
	}
	found := make(chan int, 1)
	done := make(chan struct{})
	go func() {
		r := bufio.NewReader(stderr)
		for {
			line, err := r.ReadString('\n')
			s.mu.Lock()
			s.log = append(s.log, line...)
			s.mu.Unlock()
			if m := listening.FindStringSubmatch(line); m != nil {
				p, _ := strconv.Atoi(m[1])
				select {
				case found <- p:
				default:
				}
			}
			if err != nil {
				io.Copy(io.Discard, r)
				cmd.Wait()
				close(done)
				return
			}
		}
	}()
	select {
	case p := <-found:
		s.mu.Lock()
		s.cmd, s.done, s.Port = cmd, done, p
		s.mu.Unlock()
	case <-done:
		return fmt.Errorf("nats-server exited at start:\n%s", s.Log())
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("nats-server did not listen within 15 s:\n%s", s.Log())
	}
	// Ready for JetStream once a client can connect.
	for end := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("nats-server not reachable: %w", err)
		}
		time.Sleep(20 * time.Millisecond) // polling a process we started; not ordering test events
	}
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// URL is nats://host:port.
func (s *Server) URL() string { return "nats://" + s.Addr() }

// Log is what the server printed.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.log)
}

// Kill stops the server at once (SIGKILL) and waits for it.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Restart starts the server again on the same port and store.
func (s *Server) Restart() error {
	s.Kill()
	return s.start(s.Port)
}

// Stop stops the server and removes its store.
func (s *Server) Stop() {
	s.Kill()
	os.RemoveAll(s.dir)
}

// TB is the part of testing.TB that ForTest uses (this package is linked
// into the teleop binary by the benchmarks, which must not pull in the
// testing package).
type TB interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Skip(args ...any)
	Cleanup(func())
	TempDir() string
}

// ForTest starts a server for t and stops it at the end. Without
// nats-server the test is skipped, unless TELEOP_REQUIRE_BROKERS is set (CI).
func ForTest(t TB) *Server {
	t.Helper()
	if _, err := Binary(); err != nil {
		if os.Getenv("TELEOP_REQUIRE_BROKERS") != "" {
			t.Fatalf("TELEOP_REQUIRE_BROKERS is set: %v", err)
		}
		t.Skip(err)
	}
	s, err := Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}
