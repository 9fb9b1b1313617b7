package interop_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/teleop/teleop/signaling/token"
)

// restRecorder is an OpenTok-shaped REST endpoint that records every request and
// answers as the service does: createSession → [{"session_id": …}], signal and
// forceDisconnect → 204, connection "gone" → 404, bad X-OPENTOK-AUTH → 403. It is a
// recorder, so shapes are checked independently of the relay (relay_test.go runs the
// SDK against the real relay).
type restRecorder struct {
	srv       *httptest.Server
	sessionID string // what createSession returns

	mu   sync.Mutex
	reqs []recorded // guarded by mu
}

type recorded struct {
	Method, Path string
	Header       http.Header
	Body         []byte
	AuthErr      error // from token.VerifyProjectJWT
}

func newRESTRecorder(t *testing.T, sessionID string) *restRecorder {
	t.Helper()
	rr := &restRecorder{sessionID: sessionID}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /session/create", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode([]map[string]string{{"session_id": rr.sessionID, "project_id": apiKey}})
	})
	noContentUnlessGone := func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("key") != apiKey {
			http.Error(w, `{"message":"project not found"}`, http.StatusNotFound)
			return
		}
		if r.PathValue("cid") == "gone" {
			http.Error(w, `{"message":"connection not found"}`, http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
	mux.HandleFunc("POST /v2/project/{key}/session/{sid}/signal", noContentUnlessGone)
	mux.HandleFunc("POST /v2/project/{key}/session/{sid}/connection/{cid}/signal", noContentUnlessGone)
	mux.HandleFunc("DELETE /v2/project/{key}/session/{sid}/connection/{cid}", noContentUnlessGone)

	rr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rec := recorded{Method: r.Method, Path: r.URL.EscapedPath(), Header: r.Header.Clone(), Body: body,
			AuthErr: token.VerifyProjectJWT(r.Header.Get("X-OPENTOK-AUTH"), apiKey, apiSecret, time.Now())}
		rr.mu.Lock()
		rr.reqs = append(rr.reqs, rec)
		rr.mu.Unlock()
		if rec.AuthErr != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			json.NewEncoder(w).Encode(map[string]string{"message": rec.AuthErr.Error()})
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(rr.srv.Close)
	return rr
}

// requests returns what was recorded so far. Call it after interop.js has exited:
// the SDK's callbacks run only after each response, so every request is in.
func (rr *restRecorder) requests() []recorded {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return append([]recorded(nil), rr.reqs...)
}

// TestSDKREST: the SDK's REST calls against a recording server have the shapes of
// research §9, and their X-OPENTOK-AUTH JWTs pass token.VerifyProjectJWT.
func TestSDKREST(t *testing.T) {
	t.Parallel()
	s := newSDK(t)
	sid := newSessionID(t, apiKey, "")
	rr := newRESTRecorder(t, sid)
	version := s.one(t, cmd{"op": "version"}).Version
	data := `{"id":17,"linear":0.4,"angular":-0.2} é 🤖 "q" \ </script>`
	rest := func(c cmd) cmd { c["apiUrl"] = rr.srv.URL; return creds(c) }

	tests := []struct {
		name        string
		cmd         cmd
		wantErr     string // substring of the SDK's error; "" means success
		method      string
		path        string
		contentType string
		wantBody    any // form values (url.Values) or JSON (map[string]any); nil means empty
	}{
		{
			name: "createSession routed", cmd: rest(cmd{"op": "createSession", "mediaMode": "routed"}),
			method: "POST", path: "/session/create", contentType: "application/x-www-form-urlencoded",
			wantBody: url.Values{"archiveMode": {"manual"}, "p2p.preference": {"disabled"}},
		},
		{
			name: "createSession relayed with location", cmd: rest(cmd{"op": "createSession", "location": "10.1.2.3"}),
			method: "POST", path: "/session/create", contentType: "application/x-www-form-urlencoded",
			wantBody: url.Values{"archiveMode": {"manual"}, "p2p.preference": {"enabled"}, "location": {"10.1.2.3"}},
		},
		{
			name: "signal to all", cmd: rest(cmd{"op": "signal", "sessionId": sid, "type": "drive", "data": data}),
			method: "POST", path: "/v2/project/" + apiKey + "/session/" + sid + "/signal", contentType: "application/json",
			wantBody: map[string]any{"type": "drive", "data": data},
		},
		{
			name: "signal to one connection", cmd: rest(cmd{"op": "signal", "sessionId": sid, "connectionId": "c-42", "type": "estop", "data": ""}),
			method: "POST", path: "/v2/project/" + apiKey + "/session/" + sid + "/connection/c-42/signal", contentType: "application/json",
			wantBody: map[string]any{"type": "estop", "data": ""},
		},
		{
			name: "signal without type", cmd: rest(cmd{"op": "signal", "sessionId": sid, "data": "ping"}),
			method: "POST", path: "/v2/project/" + apiKey + "/session/" + sid + "/signal", contentType: "application/json",
			wantBody: map[string]any{"data": "ping"},
		},
		{
			name: "signal to a gone connection", cmd: rest(cmd{"op": "signal", "sessionId": sid, "connectionId": "gone", "type": "t", "data": "d"}),
			wantErr: "Session or Connection not found",
			method:  "POST", path: "/v2/project/" + apiKey + "/session/" + sid + "/connection/gone/signal", contentType: "application/json",
			wantBody: map[string]any{"type": "t", "data": "d"},
		},
		{
			name: "forceDisconnect", cmd: rest(cmd{"op": "forceDisconnect", "sessionId": sid, "connectionId": "c-42"}),
			method: "DELETE", path: "/v2/project/" + apiKey + "/session/" + sid + "/connection/c-42",
		},
		{
			name: "forceDisconnect a gone connection", cmd: rest(cmd{"op": "forceDisconnect", "sessionId": sid, "connectionId": "gone"}),
			wantErr: "Session or Connection not found",
			method:  "DELETE", path: "/v2/project/" + apiKey + "/session/" + sid + "/connection/gone",
		},
	}
	var cmds []cmd
	for _, tc := range tests {
		cmds = append(cmds, tc.cmd)
	}
	results := s.run(t, cmds...)
	reqs := rr.requests()
	if len(reqs) != len(tests) {
		t.Fatalf("server saw %d requests, want %d: %+v", len(reqs), len(tests), reqs)
	}

	for i, tc := range tests {
		r, req := results[i], reqs[i]
		t.Run(tc.name, func(t *testing.T) {
			switch {
			case tc.wantErr == "" && !r.OK:
				t.Errorf("SDK: %s", r.Error)
			case tc.wantErr != "" && (r.OK || !strings.Contains(r.Error, tc.wantErr)):
				t.Errorf("SDK result %+v, want error %q", r, tc.wantErr)
			}
			if strings.HasPrefix(tc.name, "createSession") && r.SessionID != sid {
				t.Errorf("createSession returned %q, want %q", r.SessionID, sid)
			}
			if req.Method != tc.method || req.Path != tc.path {
				t.Errorf("request %s %s, want %s %s", req.Method, req.Path, tc.method, tc.path)
			}
			if req.AuthErr != nil {
				t.Errorf("X-OPENTOK-AUTH refused: %v", req.AuthErr)
			}
			if got := req.Header.Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type %q, want %q", got, tc.contentType)
			}
			if ua := req.Header.Get("User-Agent"); ua != "OpenTok-Node-SDK/"+version {
				t.Errorf("User-Agent %q", ua)
			}
			if a := req.Header.Get("Accept"); a != "application/json" {
				t.Errorf("Accept %q", a)
			}
			// An SDK bug sends a header literally named "headers"; a server must tolerate it.
			if h, ok := req.Header["Headers"]; ok {
				t.Logf("stray header %q: %q", "headers", h)
			}
			switch want := tc.wantBody.(type) {
			case nil:
				if len(req.Body) != 0 {
					t.Errorf("body %q, want none", req.Body)
				}
			case url.Values:
				got, err := url.ParseQuery(string(req.Body))
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("form body %q = %v, %v; want %v", req.Body, got, err, want)
				}
			case map[string]any:
				var got map[string]any
				if err := json.Unmarshal(req.Body, &got); err != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("json body %s = %v, %v; want %v", req.Body, got, err, want)
				}
			}
		})
	}
}

// TestSDKRESTAuth: the SDK's REST JWT is what research §9 says it is, and a server
// using VerifyProjectJWT refuses an SDK configured with the wrong secret or key.
func TestSDKRESTAuth(t *testing.T) {
	t.Parallel()
	s := newSDK(t)
	sid := newSessionID(t, apiKey, "")
	rr := newRESTRecorder(t, sid)
	res := s.run(t,
		creds(cmd{"op": "generateJwt"}),
		cmd{"op": "signal", "apiUrl": rr.srv.URL, "apiKey": apiKey, "apiSecret": "wrong-secret", "sessionId": sid, "type": "t", "data": "d"},
		cmd{"op": "forceDisconnect", "apiUrl": rr.srv.URL, "apiKey": "4712", "apiSecret": apiSecret, "sessionId": sid, "connectionId": "c-1"},
	)

	t.Run("generateJwt", func(t *testing.T) {
		if !res[0].OK {
			t.Fatal(res[0].Error)
		}
		if err := token.VerifyProjectJWT(res[0].Token, apiKey, apiSecret, time.Now()); err != nil {
			t.Fatalf("VerifyProjectJWT: %v", err)
		}
		h, c := jwtParts(t, res[0].Token)
		if h["alg"] != "HS256" || c["iss"] != apiKey || c["ist"] != "project" {
			t.Errorf("header %v claims %v", h, c)
		}
		iat, _ := c["iat"].(float64)
		exp, _ := c["exp"].(float64)
		if exp-iat != 300 {
			t.Errorf("exp-iat = %v, want 300 (research §9)", exp-iat)
		}
		if _, ok := c["jti"]; ok {
			t.Logf("the SDK now sends a jti: %v", c["jti"])
		}
		// Not a session token.
		if _, err := token.Verify(res[0].Token, apiKey, apiSecret, time.Now()); !errors.Is(err, token.ErrScope) {
			t.Errorf("Verify of a REST JWT as a session token: %v, want ErrScope", err)
		}
	})

	reqs := rr.requests()
	if len(reqs) != 2 {
		t.Fatalf("server saw %d requests, want 2", len(reqs))
	}
	for i, tc := range []struct {
		name string
		want error
	}{{"wrong secret", token.ErrSignature}, {"wrong key", token.ErrWrongKey}} {
		t.Run(tc.name, func(t *testing.T) {
			if r := res[i+1]; r.OK || !strings.Contains(r.Error, "Invalid API key or secret") {
				t.Errorf("SDK result %+v, want its AuthError", r)
			}
			if !errors.Is(reqs[i].AuthErr, tc.want) {
				t.Errorf("server: %v, want %v", reqs[i].AuthErr, tc.want)
			}
			t.Logf("server refused: %v", reqs[i].AuthErr)
		})
	}
}

// TestSDKRESTUnreachable documents an SDK bug: signal and forceDisconnect to an
// unreachable server throw a TypeError inside the SDK (it reads response.status of a
// null response) instead of calling back; interop.js reports it as the call's error.
func TestSDKRESTUnreachable(t *testing.T) {
	t.Parallel()
	s := newSDK(t)
	gone := httptest.NewServer(http.NotFoundHandler())
	url := gone.URL
	gone.Close()
	sid := newSessionID(t, apiKey, "")
	res := s.run(t,
		creds(cmd{"op": "signal", "apiUrl": url, "sessionId": sid, "type": "t", "data": "d"}),
		creds(cmd{"op": "forceDisconnect", "apiUrl": url, "sessionId": sid, "connectionId": "c-1"}),
		creds(cmd{"op": "createSession", "apiUrl": url}),
	)
	for i, r := range res {
		if r.OK {
			t.Errorf("call %d to a closed server succeeded", i)
		}
		t.Logf("call %d: %s: %s", i, r.Name, r.Error)
	}
}
