package compare

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Kind is a server under test.
type Kind int

const (
	Teleop    Kind = iota // teleop server: the relay
	Mosquitto             // mosquitto: an MQTT broker
	NATS                  // nats-server: NATS core
)

// Kinds is every server, the reference first.
var Kinds = []Kind{Teleop, Mosquitto, NATS}

var kindNames = [...]string{Teleop: "teleop server", Mosquitto: "mosquitto", NATS: "nats-server"}

func (k Kind) String() string {
	if int(k) >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Default locations of the peers: the Debian packages'.
const (
	DefaultMosquitto  = "/usr/sbin/mosquitto"
	DefaultNATSServer = "/usr/sbin/nats-server"
)

const (
	startWait = 10 * time.Second // for a server to accept connections
	stopWait  = 5 * time.Second  // between SIGTERM and SIGKILL
	loopback  = "127.0.0.1"
)

// Binaries are the programs run as servers.
type Binaries struct {
	Teleop     string // the teleop binary, run as `teleop server`
	Mosquitto  string // default DefaultMosquitto, else mosquitto on PATH
	NATSServer string // default DefaultNATSServer, else nats-server on PATH
}

// ErrBrokerMissing is wrapped by LookBinaries' error when mosquitto or
// nats-server is not installed.
var ErrBrokerMissing = errors.New("broker not installed")

// LookBinaries fills in the default peers and checks that every binary is
// there.
func LookBinaries(b Binaries) (Binaries, error) {
	var missing []string
	look := func(path *string, def, name, pkg string) {
		if *path == "" {
			*path = def
			if _, err := os.Stat(def); err != nil {
				if p, err := exec.LookPath(name); err == nil {
					*path = p
				}
			}
		}
		if st, err := os.Stat(*path); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			missing = append(missing, fmt.Sprintf("%s (not at %s nor on PATH; apt-get install %s)", name, *path, pkg))
		}
	}
	look(&b.Mosquitto, DefaultMosquitto, "mosquitto", "mosquitto")
	look(&b.NATSServer, DefaultNATSServer, "nats-server", "nats-server")
	if len(missing) > 0 {
		return b, fmt.Errorf("%w: %s", ErrBrokerMissing, strings.Join(missing, ", "))
	}
	if b.Teleop == "" {
		return b, errors.New("no teleop binary to run as teleop server")
	}
	if _, err := os.Stat(b.Teleop); err != nil {
		return b, fmt.Errorf("teleop binary: %w", err)
	}
	return b, nil
}

// server is one running server process on a loopback port of its own.
type server struct {
	kind        Kind
	cmd         *exec.Cmd
	addr        string // 127.0.0.1:port
	dir         string // its temporary directory: config and log
	logPath     string // its stdout and stderr
	exited      chan struct{}
	waitErr     error  // set before exited is closed
	key, secret string // teleop server only: its api key and secret
}

// startServer starts a server of kind k on a free loopback port and returns
// once it accepts TCP connections.
func startServer(ctx context.Context, k Kind, bins Binaries) (_ *server, err error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "teleop-bench-"+strings.ReplaceAll(k.String(), " ", "-")+"-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	s := &server{kind: k, addr: net.JoinHostPort(loopback, strconv.Itoa(port)), dir: dir,
		logPath: filepath.Join(dir, "log"), exited: make(chan struct{})}
	var argv []string
	switch k {
	case Teleop:
		s.key = "10000001"
		if s.secret, err = randomSecret(); err != nil {
			return nil, err
		}
		argv = []string{bins.Teleop, "server", "--listen", s.addr,
			"--api-key", s.key, "--api-secret", s.secret,
			// Measure the relay, not its per-connection rate limit
			// (default 200/s) or session size (default 500).
			"--rate", "1e9", "--burst", "1000000000", "--max-connections", strconv.Itoa(MaxFanout + 1),
			// Idle clients are bare sockets that never answer pings.
			"--ping-timeout", "1h", "--grace", "1h",
			"--log-level", "warn"}
	case Mosquitto:
		conf := filepath.Join(dir, "mosquitto.conf")
		// set_tcp_nodelay: Go programs (the relay, nats-server and every
		// client here) disable Nagle's algorithm; mosquitto does not unless
		// told to, and would then hold small writes back.
		text := fmt.Sprintf("listener %d %s\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n"+
			"log_dest stderr\nlog_type error\nlog_type warning\nconnection_messages false\n", port, loopback)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			return nil, err
		}
		argv = []string{bins.Mosquitto, "-c", conf}
	case NATS:
		argv = []string{bins.NATSServer, "-a", loopback, "-p", strconv.Itoa(port)}
	default:
		return nil, fmt.Errorf("unknown server %v", k)
	}
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	s.cmd = exec.Command(argv[0], argv[1:]...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.Dir = dir
	setProcAttr(s.cmd)
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %v: %w", k, err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(ctx); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// waitReady waits until the server accepts a TCP connection.
func (s *server) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(startWait)
	for {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%v did not accept connections on %s within %v: %w%s", s.kind, s.addr, startWait, err, s.logTail())
		}
		select {
		case <-s.exited:
			return fmt.Errorf("%v exited at start (%v)%s", s.kind, s.waitErr, s.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// stop ends the server by its PID: SIGTERM, then SIGKILL after stopWait. It
// returns when the process has been reaped and removes its directory.
func (s *server) stop() {
	select {
	case <-s.exited:
	default:
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(stopWait)
		select {
		case <-s.exited:
		case <-t.C:
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
		t.Stop()
	}
	os.RemoveAll(s.dir)
}

// alive reports an error if the server has exited.
func (s *server) alive() error {
	select {
	case <-s.exited:
		return fmt.Errorf("%v exited during the run (%v)%s", s.kind, s.waitErr, s.logTail())
	default:
		return nil
	}
}

// rss is the server process's resident set size in bytes (VmRSS of
// /proc/PID/status).
func (s *server) rss() (int64, error) {
	return readRSS(s.cmd.Process.Pid)
}

func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read RSS of process %d: %w", pid, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest) // "8524 kB"
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err == nil {
					return kb << 10, nil
				}
			}
			return 0, fmt.Errorf("read RSS of process %d: odd line %q", pid, line)
		}
	}
	return 0, fmt.Errorf("read RSS of process %d: no VmRSS line", pid)
}

// logTail is the end of the server's output, for error messages.
func (s *server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "; its output ends:\n" + string(bytes.TrimSpace(b))
}

// freePort picks a free loopback TCP port. Another process could take it
// before the server binds it; the server's start then fails visibly.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(loopback, "0"))
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func randomSecret() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make api secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// checkLoopback refuses any address that is not a loopback IP: the
// comparison floods its servers and is only ever run against its own.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing to benchmark %s: only loopback servers started by the bench are measured", addr)
	}
	return nil
}

// versionOf asks a server binary for its version: one line.
func versionOf(ctx context.Context, k Kind, bins Binaries) string {
	var argv []string
	switch k {
	case Teleop:
		argv = []string{bins.Teleop, "version"}
	case Mosquitto:
		argv = []string{bins.Mosquitto, "-h"} // prints the version first, exits 3
	case NATS:
		argv = []string{bins.NATSServer, "--version"}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	switch k {
	case Teleop:
		// "teleop dev (commit …, built …, go1.26.8 linux/amd64)"
		if f := strings.Fields(line); len(f) >= 2 {
			return f[1]
		}
	case Mosquitto:
		// "mosquitto version 2.0.11"
		if v, ok := strings.CutPrefix(line, "mosquitto version "); ok {
			return v
		}
	case NATS:
		// "nats-server: v2.9.10"
		if v, ok := strings.CutPrefix(line, "nats-server: "); ok {
			return strings.TrimPrefix(v, "v")
		}
	}
	return "unknown"
}
