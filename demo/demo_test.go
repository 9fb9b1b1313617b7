package demo

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/token"
)

// Close must leave nothing running: the agent, the robot, the relay and
// their goroutines.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testKey, testSecret = "1234567", "demo-test-secret"

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestStackRunsAndCloses: the agent joins with role=robot,name=sim-1 and
// gets its device; Close takes everything down, the robot's link included.
func TestStackRunsAndCloses(t *testing.T) {
	link := filepath.Join(t.TempDir(), "sim")
	st, err := Start(listen(t), &Options{APIKey: testKey, APISecret: testSecret, Link: link})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.Link() != link || st.Session() != DefaultSession || !strings.HasPrefix(st.URL(), "http://127.0.0.1:") {
		t.Fatalf("link %q, session %q, url %q", st.Link(), st.Session(), st.URL())
	}
	if target, err := os.Readlink(link); err != nil || target != st.Robot().Path() {
		t.Fatalf("link → %q (%v), want the robot's pty %q", target, err, st.Robot().Path())
	}

	tok, err := st.Token(OperatorData, token.Publisher)
	if err != nil {
		t.Fatal(err)
	}
	if want := st.URL() + "/#token=" + tok; st.ConsoleURL(tok) != want {
		t.Fatalf("console URL %q, want %q", st.ConsoleURL(tok), want)
	}
	joined := make(chan signaling.Connection, 8)
	s := signaling.NewSession(nil)
	s.OnConnectionCreated(func(c signaling.Connection) { joined <- c })
	if err := s.Connect(t.Context(), st.URL(), tok); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	robot := func() bool {
		for _, c := range s.Connections() {
			if c.Data == RobotData {
				return true
			}
		}
		return false
	}
	deadline := time.After(10 * time.Second)
	for !robot() {
		select {
		case <-joined:
		case <-deadline:
			t.Fatalf("no robot in the session: %+v", s.Connections())
		}
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for st.Agent().Status().Devices["base"].State != "ready" {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("the agent's device is not ready: %+v", st.Agent().Status())
		}
	}

	if err := st.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	select {
	case <-st.Done():
	default:
		t.Error("Done is not closed after Close")
	}
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the robot's link is still there: %v", err)
	}
	if c, err := net.Dial("tcp", strings.TrimPrefix(st.URL(), "http://")); err == nil {
		c.Close()
		t.Error("the relay still accepts connections")
	}
	if err := st.Close(); err != nil {
		t.Errorf("a second close: %v", err)
	}
}

// TestStartBadConfig: a configuration the agent cannot run is an error
// that names the file and line, and nothing Start began is left running.
func TestStartBadConfig(t *testing.T) {
	link := filepath.Join(t.TempDir(), "sim")
	ln := listen(t)
	bad := []byte("version: 1\nsession:\n  server: ${TELEOP_SERVER}\n  token: ${TELEOP_TOKEN}\ndevices:\n  base:\n    port: ${TELEOP_PORT}\n    baud: 7\n")
	_, err := Start(ln, &Options{APIKey: testKey, APISecret: testSecret, Link: link, Config: bad, ConfigName: "bad.yaml"})
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:8: devices.base.baud") {
		t.Fatalf("Start with a bad baud: %v", err)
	}
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the robot's link is still there: %v", err)
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("the relay still accepts connections")
	}
}

// TestStartNeedsCredentials: the tokens are minted with them.
func TestStartNeedsCredentials(t *testing.T) {
	ln := listen(t)
	defer ln.Close()
	if _, err := Start(ln, &Options{}); err == nil {
		t.Fatal("Start without an api key and secret succeeded")
	}
}

func TestLinkFree(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "live")
	if err := os.WriteFile(live, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	mk := func(name, target string) string {
		p := filepath.Join(dir, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for name, tc := range map[string]struct {
		path string
		free bool
	}{
		"nothing there":          {filepath.Join(dir, "none"), true},
		"a link to a gone pty":   {mk("dangling", filepath.Join(dir, "pts-gone")), true},
		"a link to a live pty":   {mk("taken", live), false},
		"not a link (a file)":    {live, false},
		"a directory in the way": {dir, false},
	} {
		t.Run(name, func(t *testing.T) {
			if got := linkFree(tc.path); got != tc.free {
				t.Fatalf("linkFree(%s) = %v, want %v", tc.path, got, tc.free)
			}
		})
	}
}
