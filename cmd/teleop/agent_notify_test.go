package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/teleop/teleop/devices/sim"
)

// TestAgentSystemdNotify runs the agent with systemd's side played by a
// unixgram socket in NOTIFY_SOCKET and a 200ms WatchdogSec: the agent says
// READY=1 once it is in the session, pings the watchdog while it runs,
// and says STOPPING=1 when it is told to stop.
func TestAgentSystemdNotify(t *testing.T) {
	dir, err := os.MkdirTemp("", "sdn") // sun_path is short: not t.TempDir
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "notify")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	next := func() string {
		t.Helper()
		buf := make([]byte, 4096)
		l.SetReadDeadline(time.Now().Add(waitLong))
		n, err := l.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}

	url := sessRelay(t)
	robot := newTestSim(t, sim.Options{})
	cfg := writeFile(t, "agent.yaml", agentYAML(url, sessToken(t, "demo", "role=robot,name=sim-1"), robot.Link(), ""))
	var errOut lockedBuffer
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	c := &agentConfig{config: cfg, logFormat: "text", logLevel: "debug"} // runAgent supervises itself
	done := make(chan error, 1)
	go func() { done <- runAgent(ctx, &errOut, c) }()
	defer func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", errOut.String())
		}
	}()

	var msgs []string
	for {
		m := next()
		msgs = append(msgs, m)
		if strings.Contains(m, "READY=1\n") {
			if !strings.Contains(m, "STATUS=in session as ") {
				t.Errorf("READY without the session in its status: %q", m)
			}
			break
		}
	}
	if !strings.HasPrefix(msgs[0], "STATUS=joining the session; base ") {
		t.Errorf("first message %q", msgs[0])
	}
	for pings := 0; pings < 3; {
		m := next()
		msgs = append(msgs, m)
		if strings.Contains(m, "WATCHDOG=1\n") {
			pings++
		}
	}
	cancel()
	for {
		m := next()
		msgs = append(msgs, m)
		if m == "STOPPING=1\nSTATUS=stopping\n" {
			break
		}
	}
	if err := <-done; err != nil {
		t.Errorf("agent: %v", err)
	}
	t.Logf("notifications:\n%s", strings.Join(msgs, "--\n"))
}
