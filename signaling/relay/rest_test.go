package relay_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/relay"
	"github.com/teleop/teleop/signaling/token"
)

func TestRESTSessionCreate(t *testing.T) {
	h := newHarness(t, nil)
	req := h.rest("POST", "/session/create", "archiveMode=manual&p2p.preference=disabled&location=10.1.2.3")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("headers", "[object Object]") // the Node SDK's stray header
	code, body := h.do(req)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var got []map[string]string
	if err := json.Unmarshal([]byte(body), &got); err != nil || len(got) != 1 {
		t.Fatalf("body %s: %v", body, err)
	}
	s := got[0]
	if s["project_id"] != testKey || !strings.HasPrefix(s["session_id"], "1_") || s["create_dt"] == "" {
		t.Fatalf("created %v", s)
	}
	if key, err := token.ParseSessionID(s["session_id"]); err != nil || key != testKey {
		t.Fatalf("session id %q names key %q (%v)", s["session_id"], key, err)
	}
	// A client can join the new session.
	c := h.join(s["session_id"], token.Publisher, "")
	if c.welcome.SessionID != s["session_id"] {
		t.Fatalf("joined %q", c.welcome.SessionID)
	}
	// Without credentials: 403.
	req = h.rest("POST", "/session/create", "")
	req.Header.Del("X-OPENTOK-AUTH")
	if code, _ := h.do(req); code != 403 {
		t.Fatalf("without auth: %d", code)
	}
}

func TestRESTSignal(t *testing.T) {
	h := newHarness(t, nil)
	a := h.join(testSess, token.Publisher, "")
	b := h.join(testSess, token.Publisher, "")
	a.readOp(signaling.OpConnectionCreated)
	base := "/v2/project/" + testKey + "/session/" + testSess

	// Broadcast, with Bearer auth and the stray header: from is absent.
	req := h.rest("POST", base+"/signal", `{"type":"chat","data":"from the backend"}`)
	jwt := req.Header.Get("X-OPENTOK-AUTH")
	req.Header.Del("X-OPENTOK-AUTH")
	req.Header.Set("Authorization", "Bearer "+jwt)
	req.Header.Set("headers", "[object Object]")
	if code, body := h.do(req); code != 204 {
		t.Fatalf("broadcast: %d %s", code, body)
	}
	for _, c := range []*client{a, b} {
		f := c.readOp(signaling.OpSignal)
		if f.From != nil || f.Type != "chat" || f.Data != "from the backend" || f.To != "" {
			t.Fatalf("got %+v", f)
		}
	}
	// To one connection.
	if code, body := h.do(h.rest("POST", base+"/connection/"+b.id+"/signal", `{"type":"t","data":"d"}`)); code != 204 {
		t.Fatalf("to b: %d %s", code, body)
	}
	if f := b.readOp(signaling.OpSignal); f.To != b.id || f.From != nil {
		t.Fatalf("b got %+v", f)
	}

	tests := map[string]struct {
		req  *http.Request
		code int
	}{
		"bad type":          {h.rest("POST", base+"/signal", `{"type":"a b","data":""}`), 400},
		"type too long":     {h.rest("POST", base+"/signal", `{"type":"`+strings.Repeat("a", 129)+`"}`), 413},
		"data too large":    {h.rest("POST", base+"/signal", `{"data":"`+strings.Repeat("a", 8193)+`"}`), 413},
		"body too large":    {h.rest("POST", base+"/signal", `{"data":"`+strings.Repeat("a", 70000)+`"}`), 413},
		"not json":          {h.rest("POST", base+"/signal", `type=a`), 400},
		"unknown session":   {h.rest("POST", "/v2/project/"+testKey+"/session/nobody/signal", `{}`), 404},
		"unknown conn":      {h.rest("POST", base+"/connection/00000000-0000-4000-8000-000000000000/signal", `{}`), 404},
		"malformed conn":    {h.rest("POST", base+"/connection/not%20an%20id/signal", `{}`), 404},
		"wrong key in path": {h.rest("POST", "/v2/project/99999999/session/"+testSess+"/signal", `{}`), 403},
		"no auth":           {withHeader(h.rest("POST", base+"/signal", `{}`), "X-OPENTOK-AUTH", ""), 403},
		"garbage auth":      {withHeader(h.rest("POST", base+"/signal", `{}`), "X-OPENTOK-AUTH", "x.y.z"), 403},
		"wrong secret":      {withHeader(h.rest("POST", base+"/signal", `{}`), "X-OPENTOK-AUTH", mustProjectJWT(t, testKey, "other", h.clock.Now())), 403},
		"expired auth":      {withHeader(h.rest("POST", base+"/signal", `{}`), "X-OPENTOK-AUTH", mustProjectJWT(t, testKey, testSecret, h.clock.Now().Add(-time.Hour))), 403},
		"empty body fields": {h.rest("POST", base+"/signal", `{}`), 204},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			code, body := h.do(tc.req)
			if code != tc.code {
				t.Fatalf("%d %s, want %d", code, body, tc.code)
			}
			if code != 204 && !strings.Contains(body, `"message"`) {
				t.Fatalf("error body %s", body)
			}
		})
	}
}

func withHeader(r *http.Request, k, v string) *http.Request {
	if v == "" {
		r.Header.Del(k)
	} else {
		r.Header.Set(k, v)
	}
	return r
}

func mustProjectJWT(t *testing.T, key, secret string, now time.Time) string {
	t.Helper()
	jwt, err := token.NewProjectJWT(key, secret, now, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return jwt
}

func TestMetricsHealthAndFallback(t *testing.T) {
	console := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("console")) })
	h := newHarness(t, &relay.Options{Fallback: console})
	a := h.join(testSess, token.Publisher, "")
	a.result(a.signal("", "x", ""))
	h.dialRaw(url.Values{"token": {"garbage"}}, nil).readClose()

	code, body := h.do(h.rest("GET", "/healthz", ""))
	var health relay.Health
	if err := json.Unmarshal([]byte(body), &health); code != 200 || err != nil || health.Status != "ok" || health.Connections != 1 || health.Sessions != 1 {
		t.Fatalf("healthz %d %s", code, body)
	}
	code, body = h.do(h.rest("GET", "/metrics", ""))
	for _, want := range []string{
		"teleop_relay_connections 1",
		"teleop_relay_sessions 1",
		`teleop_relay_signals_received_total{via="ws"} 1`,
		`teleop_relay_auth_failures_total{api="connect"} 1`,
		"teleop_relay_signals_delivered_total",
		"teleop_relay_slow_consumers_total 0",
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if code != 200 {
		t.Fatalf("metrics %d", code)
	}
	if code, body := h.do(h.rest("GET", "/", "")); code != 200 || body != "console" {
		t.Fatalf("fallback: %d %q", code, body)
	}
}

// TestSharedRegistry: a registry holds one relay's metrics; a second relay
// on it is an error, not a panic.
func TestSharedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	r, err := relay.New(&relay.Options{APIKey: testKey, APISecret: testSecret, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := relay.New(&relay.Options{APIKey: testKey, APISecret: testSecret, Registry: reg}); err == nil {
		t.Fatal("second relay on one registry")
	}
	if _, err := relay.New(&relay.Options{APIKey: testKey}); err == nil {
		t.Fatal("relay without a secret")
	}
}
