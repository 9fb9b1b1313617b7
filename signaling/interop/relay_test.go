package interop_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/relay"
	"github.com/teleop/teleop/signaling/token"
)

// wait bounds every wait for an event in these tests.
const wait = 10 * time.Second

// TestSDKThroughRelay is the whole loop with nothing of ours on the backend side: the
// official SDK creates a session on the real relay and mints tokens for it; real Go
// clients connect with those tokens over WebSockets; the SDK's REST signals reach
// them and its forceDisconnect ends one.
func TestSDKThroughRelay(t *testing.T) {
	t.Parallel()
	s := newSDK(t)
	r, err := relay.New(&relay.Options{APIKey: apiKey, APISecret: apiSecret, Logger: testLogger(t, "relay")})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r)
	t.Cleanup(func() {
		r.Close()
		srv.Close()
	})
	rest := func(c cmd) cmd { c["apiUrl"] = srv.URL; return creds(c) }

	created := s.one(t, rest(cmd{"op": "createSession", "mediaMode": "routed"}))
	if !created.OK {
		t.Fatalf("SDK createSession on the relay: %s", created.Error)
	}
	sid := created.SessionID
	if key, err := token.ParseSessionID(sid); err != nil || key != apiKey {
		t.Fatalf("relay session id %q: ParseSessionID = %q, %v", sid, key, err)
	}
	toks := s.run(t,
		creds(cmd{"op": "generateToken", "sessionId": sid, "role": "moderator", "data": "name=operator"}),
		creds(cmd{"op": "generateToken", "sessionId": sid, "role": "subscriber", "data": "name=robot", "legacy": true}),
	)
	for _, tk := range toks {
		if !tk.OK {
			t.Fatalf("SDK generateToken for the relay's session: %s", tk.Error)
		}
	}
	op := connect(t, srv.URL, toks[0].Token, "operator")
	robot := connect(t, srv.URL, toks[1].Token, "robot")

	if robot.SessionID() != sid || robot.Role() != "subscriber" || op.Role() != "moderator" {
		t.Errorf("session %q roles %q/%q; want %q, moderator/subscriber", robot.SessionID(), op.Role(), robot.Role(), sid)
	}
	if !slices.ContainsFunc(robot.Connections(), func(c signaling.Connection) bool {
		return c.ConnectionID == op.ID() && c.Data == "name=operator"
	}) {
		t.Errorf("robot sees connections %+v, want the operator's with its SDK token data", robot.Connections())
	}

	drive := `{"id":17,"linear":0.4,"angular":-0.2}`
	res := s.run(t,
		rest(cmd{"op": "signal", "sessionId": sid, "type": "drive", "data": drive}),
		rest(cmd{"op": "signal", "sessionId": sid, "connectionId": robot.ID(), "type": "estop", "data": ""}),
		rest(cmd{"op": "signal", "sessionId": sid, "connectionId": "no-such-connection", "type": "t", "data": "d"}),
		rest(cmd{"op": "forceDisconnect", "sessionId": sid, "connectionId": op.ID()}),
	)
	for i, wantErr := range []string{"", "", "Session or Connection not found", ""} {
		if got := res[i]; (wantErr == "") != got.OK || !strings.Contains(got.Error, wantErr) {
			t.Errorf("REST call %d: %+v, want error %q", i, got, wantErr)
		}
	}

	// REST signals come from nobody (From ""), in the order the backend sent them.
	for _, want := range []signaling.Signal{{Type: "drive", Data: drive}, {Type: "estop", To: robot.ID()}} {
		got := robot.nextSignal(t)
		if got.Type != want.Type || got.Data != want.Data || got.To != want.To || got.From != "" {
			t.Errorf("robot got %+v, want %+v from the REST API", got, want)
		}
	}
	if got := op.nextSignal(t); got.Type != "drive" || got.Data != drive || got.From != "" {
		t.Errorf("operator got %+v, want the broadcast drive", got)
	}
	err = op.disconnected(t)
	var ce *signaling.CloseError
	if !errors.As(err, &ce) || ce.Reason != signaling.ReasonForceDisconnected {
		t.Errorf("operator disconnected with %v, want forceDisconnected", err)
	}
	t.Logf("operator: %v", err)
}

// relayClient is a Go client whose signals and end are recorded.
type relayClient struct {
	*signaling.Session
	signals chan signaling.Signal
	done    chan error
}

func connect(t *testing.T, url, tok, name string) *relayClient {
	t.Helper()
	c := &relayClient{
		Session: signaling.NewSession(&signaling.Options{Logger: testLogger(t, name)}),
		signals: make(chan signaling.Signal, 64),
		done:    make(chan error, 1),
	}
	c.OnSignal(func(s signaling.Signal) { c.signals <- s })
	c.OnDisconnected(func(err error) { c.done <- err })
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	if err := c.Connect(ctx, url, tok); err != nil {
		t.Fatalf("%s: connect with an SDK token: %v", name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (c *relayClient) nextSignal(t *testing.T) signaling.Signal {
	t.Helper()
	select {
	case s := <-c.signals:
		return s
	case <-time.After(wait):
		t.Fatalf("%s: no signal within %v", c.ID(), wait)
		return signaling.Signal{}
	}
}

func (c *relayClient) disconnected(t *testing.T) error {
	t.Helper()
	select {
	case err := <-c.done:
		return err
	case <-time.After(wait):
		t.Fatalf("%s: not disconnected within %v", c.ID(), wait)
		return nil
	}
}

// testLogger sends slog output to t.Logf.
func testLogger(t *testing.T, side string) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})).With("side", side)
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
