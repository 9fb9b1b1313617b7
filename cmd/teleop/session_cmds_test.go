package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/relay"
	"github.com/teleop/teleop/signaling/token"
)

const sessKey, sessSecret = "123456", "session-cmd-secret"

// sessRelay starts a real relay on loopback and returns its URL.
func sessRelay(t *testing.T) string {
	t.Helper()
	r, err := relay.New(&relay.Options{APIKey: sessKey, APISecret: sessSecret})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r)
	t.Cleanup(func() { r.Close(); srv.Close() })
	return srv.URL
}

func sessToken(t *testing.T, session, data string) string {
	t.Helper()
	tok, err := token.New(sessKey, sessSecret, session, &token.Options{ConnectionData: data, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// sessClient dials a Go client into the session.
func sessClient(t *testing.T, url, session, data string) *signaling.Session {
	t.Helper()
	s, err := signaling.Dial(t.Context(), url, sessToken(t, session, data), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// lockedBuffer is a bytes.Buffer safe for the goroutines that log.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runSessionCmd runs teleop with args to completion.
func runSessionCmd(t *testing.T, args ...string) (stdout string, err error) {
	t.Helper()
	var out bytes.Buffer
	var errOut lockedBuffer
	root := newRootCmd(&out, &errOut)
	root.SetArgs(args)
	err = root.ExecuteContext(t.Context())
	if s := errOut.String(); s != "" {
		t.Logf("stderr:\n%s", s)
	}
	return out.String(), err
}

// startListen runs `teleop listen` in the background. It returns its
// stdout lines and a function that interrupts it and returns its error.
func startListen(t *testing.T, args ...string) (lines <-chan string, stop func() error) {
	t.Helper()
	pr, pw := io.Pipe()
	var errOut lockedBuffer
	root := newRootCmd(pw, &errOut)
	root.SetArgs(append([]string{"listen"}, args...))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		err := root.ExecuteContext(ctx)
		pw.Close()
		done <- err
	}()
	ch := make(chan string, 1000)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-done
			for range ch { // until stdout is closed
			}
			if s := errOut.String(); s != "" {
				t.Logf("listen stderr:\n%s", s)
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return ch, stop
}

// nextLine decodes the next line into a map.
func nextLine(t *testing.T, lines <-chan string) (raw string, m map[string]any) {
	t.Helper()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatal("listen ended early")
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", l, err)
		}
		return l, m
	case <-time.After(10 * time.Second):
		t.Fatal("no line from listen")
		return "", nil
	}
}

func TestListenPrintsEvents(t *testing.T) {
	url := sessRelay(t)
	lines, stop := startListen(t, "--server", url, "--token", sessToken(t, "cli", "name=listener"), "--type", "drive", "--type", "stop")

	raw, m := nextLine(t, lines)
	if m["event"] != "connected" || m["sessionId"] != "cli" || !strings.HasPrefix(raw, `{"event":"connected"`) {
		t.Fatalf("first line %s", raw)
	}
	op := sessClient(t, url, "cli", "name=op")
	_, m = nextLine(t, lines)
	if c, _ := m["connection"].(map[string]any); m["event"] != "connectionCreated" || c["data"] != "name=op" || c["connectionId"] != op.ID() {
		t.Fatalf("got %v, want the operator's connectionCreated", m)
	}

	ctx := t.Context()
	for _, s := range []signaling.Signal{
		{Type: "telemetry", Data: "{}"}, // not asked for
		{Type: "drive", Data: `{"id":1,"linear":0.4}`},
		{Type: "stop", Data: `{"id":2}`},
	} {
		if err := op.Signal(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	raw, _ = nextLine(t, lines)
	var sl signalLine
	json.Unmarshal([]byte(raw), &sl)
	sl.AgeMs = 0
	if want := (signalLine{"signal", "drive", `{"id":1,"linear":0.4}`, op.ID(), "", 3, 0}); sl != want {
		t.Fatalf("got %s\nwant %+v", raw, want)
	}
	if _, m = nextLine(t, lines); m["type"] != "stop" {
		t.Fatalf("got %v", m)
	}

	opID := op.ID()
	op.Close()
	_, m = nextLine(t, lines)
	if c, _ := m["connection"].(map[string]any); m["event"] != "connectionDestroyed" || c["connectionId"] != opID || m["reason"] != "clientDisconnected" {
		t.Fatalf("got %v", m)
	}
	if err := stop(); err != nil {
		t.Fatalf("listen interrupted: %v, want nil (exit 0)", err)
	}
}

func TestListenRefusedToken(t *testing.T) {
	url := sessRelay(t)
	bad, _ := token.New(sessKey, "other-secret", "cli", nil)
	_, err := runSessionCmd(t, "listen", "--server", url, "--token", bad)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("listen with a refused token: %v", err)
	}
}

func TestSignalCmd(t *testing.T) {
	url := sessRelay(t)
	tok := sessToken(t, "cli", "name=cli")
	listener := sessClient(t, url, "cli", "name=listener")
	got := make(chan signaling.Signal, 10)
	listener.OnSignal(func(s signaling.Signal) { got <- s })

	if out, err := runSessionCmd(t, "signal", "--server", url, "--token", tok, "--type", "lights", "--data", "on", "--to", listener.ID()); err != nil || out != "" {
		t.Fatalf("signal: %q, %v", out, err)
	}
	select {
	case s := <-got:
		if s.Type != "lights" || s.Data != "on" || s.To != listener.ID() {
			t.Fatalf("listener got %+v", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("signal not delivered")
	}

	tests := map[string]struct {
		args []string
		want string
	}{
		"too large":  {[]string{"--type", "drive", "--data", strings.Repeat("x", 9000)}, "signal refused: 413 data is 9000 bytes, the limit is 8192"},
		"bad type":   {[]string{"--type", "no spaces"}, "signal refused: 400 type may contain only A-Z a-z 0-9 - _ ~"},
		"no such to": {[]string{"--type", "drive", "--to", "nobody"}, "signal refused: 404 "},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := runSessionCmd(t, append([]string{"signal", "--server", url, "--token", tok}, tc.args...)...)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestSignalCmdWaitAck(t *testing.T) {
	url := sessRelay(t)
	tok := sessToken(t, "robot", "name=cli")
	robot := sessClient(t, url, "robot", "name=robot")
	// The robot acks every drive to its sender, after an ack for another
	// command; it never acks id 18.
	robot.OnSignalType("drive", func(s signaling.Signal) {
		var cmd struct {
			ID json.Number `json:"id"`
		}
		json.Unmarshal([]byte(s.Data), &cmd)
		if cmd.ID == "18" {
			return
		}
		ctx := context.Background()
		robot.Signal(ctx, signaling.Signal{Type: "ack", Data: `{"id":99,"status":"ok"}`, To: s.From})
		robot.Signal(ctx, signaling.Signal{Type: "ack", Data: `{"id": ` + string(cmd.ID) + `, "type":"drive", "status":"ok"}`, To: s.From})
	})

	base := []string{"signal", "--server", url, "--token", tok, "--type", "drive", "--to", robot.ID()}
	out, err := runSessionCmd(t, append(base, "--data", `{"id":17,"linear":0.4}`, "--wait-ack", "10s")...)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":17,"type":"drive","status":"ok"}` + "\n"; out != want {
		t.Fatalf("printed %q, want %q", out, want)
	}

	_, err = runSessionCmd(t, append(base, "--data", `{"id":18}`, "--wait-ack", "300ms")...)
	if err == nil || err.Error() != "no ack for id 18 within 300ms" {
		t.Fatalf("unacked: %v", err)
	}
	_, err = runSessionCmd(t, append(base, "--data", `{"linear":0.4}`, "--wait-ack", "1s")...)
	if err == nil || !strings.Contains(err.Error(), `no "id"`) {
		t.Fatalf("data without id: %v", err)
	}
}

func TestSessionFlags(t *testing.T) {
	tests := map[string]struct {
		env                   map[string]string
		args                  []string
		wantServer, wantToken string
		wantErr               string
	}{
		"defaults":       {args: []string{"--token", "t"}, wantServer: defaultServer, wantToken: "t"},
		"environment":    {env: map[string]string{"TELEOP_SERVER": "https://relay", "TELEOP_TOKEN": "env"}, wantServer: "https://relay", wantToken: "env"},
		"flags win":      {env: map[string]string{"TELEOP_SERVER": "https://relay", "TELEOP_TOKEN": "env"}, args: []string{"--server", "http://h:1", "--token", "flag"}, wantServer: "http://h:1", wantToken: "flag"},
		"token required": {wantErr: "no token"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Setenv("TELEOP_SERVER", tc.env["TELEOP_SERVER"])
			t.Setenv("TELEOP_TOKEN", tc.env["TELEOP_TOKEN"])
			var server, tok string
			var err error
			cmd := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error { return nil }}
			sf := addSessionFlags(cmd)
			cmd.RunE = func(cmd *cobra.Command, _ []string) error {
				server, tok, err = sf.resolve(cmd)
				return nil
			}
			cmd.SetArgs(tc.args)
			if e := cmd.Execute(); e != nil {
				t.Fatal(e)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || server != tc.wantServer || tok != tc.wantToken {
				t.Fatalf("got %q %q %v, want %q %q", server, tok, err, tc.wantServer, tc.wantToken)
			}
		})
	}
}
