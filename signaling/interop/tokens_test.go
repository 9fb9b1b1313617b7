package interop_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/teleop/teleop/signaling/token"
)

const (
	apiKey    = "4711"
	apiSecret = "8d2b9a0c1e5f47a3b6c9d0e1f2a3b4c5d6e7f809"
)

// creds adds the project credentials to an interop.js command.
func creds(c cmd) cmd {
	c["apiKey"], c["apiSecret"] = apiKey, apiSecret
	return c
}

func newSessionID(t *testing.T, key, location string) string {
	t.Helper()
	id, err := token.NewSessionID(key, location, time.Time{}, nil)
	if err != nil {
		t.Fatalf("NewSessionID(%q, %q): %v", key, location, err)
	}
	return id
}

func TestSDKVersion(t *testing.T) {
	t.Parallel()
	s := newSDK(t)
	r := s.one(t, cmd{"op": "version"})
	if !r.OK || !strings.HasPrefix(r.Version, "2.") {
		t.Fatalf("SDK version %+v, want 2.x", r)
	}
	t.Logf("opentok (npm) %s", r.Version)
}

// TestSDKTokensVerify: every kind of token the SDK mints verifies with token.Verify
// and grants what was asked for.
func TestSDKTokensVerify(t *testing.T) {
	t.Parallel()
	s := newSDK(t)
	sid := newSessionID(t, apiKey, "")
	inOneHour := time.Now().Add(time.Hour).Unix()
	data := `name=bar&x=1:2 é 🤖 +%20 "q" ~`
	tests := []struct {
		name       string
		role       string // "" leaves the SDK default
		data       string
		expireTime int64 // 0: SDK default (24 h)
		wantRole   token.Role
	}{
		{name: "default role", wantRole: token.Publisher},
		{name: "publisher", role: "publisher", wantRole: token.Publisher},
		{name: "subscriber", role: "subscriber", wantRole: token.Subscriber},
		{name: "moderator with data", role: "moderator", data: data, wantRole: token.Moderator},
		{name: "publisheronly", role: "publisheronly", wantRole: token.PublisherOnly},
		{name: "1024 bytes of data", data: strings.Repeat("x", 1024), wantRole: token.Publisher},
		{name: "1000 two-byte characters of data", data: strings.Repeat("é", 1000), wantRole: token.Publisher},
		{name: "expires in one hour", expireTime: inOneHour, wantRole: token.Publisher},
	}
	var cmds []cmd
	for _, legacy := range []bool{false, true} {
		for _, tc := range tests {
			c := creds(cmd{"op": "generateToken", "sessionId": sid, "legacy": legacy})
			if tc.role != "" {
				c["role"] = tc.role
			}
			if tc.data != "" {
				c["data"] = tc.data
			}
			if tc.expireTime != 0 {
				c["expireTime"] = tc.expireTime
			}
			cmds = append(cmds, c)
		}
	}
	results := s.run(t, cmds...)
	now := time.Now()

	for i, r := range results {
		tc, legacy := tests[i%len(tests)], i >= len(tests)
		format := token.FormatJWT
		if legacy {
			format = token.FormatT1
		}
		t.Run(format+"/"+tc.name, func(t *testing.T) {
			if !r.OK {
				t.Fatalf("SDK generateToken: %s", r.Error)
			}
			c, err := token.Verify(r.Token, apiKey, apiSecret, now)
			if err != nil {
				t.Fatalf("Verify SDK token: %v\ntoken: %s", err, r.Token)
			}
			if c.APIKey != apiKey || c.SessionID != sid || c.Role != tc.wantRole || c.ConnectionData != tc.data || c.Format != format {
				t.Errorf("claims %+v; want key %s, session %s, role %s, data %q, format %s", c, apiKey, sid, tc.wantRole, tc.data, format)
			}
			wantTTL := 24 * time.Hour
			if tc.expireTime != 0 {
				wantTTL = time.Unix(tc.expireTime, 0).Sub(c.CreateTime)
				if !c.ExpireTime.Equal(time.Unix(tc.expireTime, 0)) {
					t.Errorf("expire time %v, want %v", c.ExpireTime, time.Unix(tc.expireTime, 0))
				}
			}
			if got := c.ExpireTime.Sub(c.CreateTime); got != wantTTL {
				t.Errorf("lifetime %v, want %v", got, wantTTL)
			}
			if d := now.Sub(c.CreateTime); d < -time.Minute || d > time.Minute {
				t.Errorf("create time %v is not about now (%v)", c.CreateTime, now)
			}
			// The Node SDK's nonce is Math.random(): a float in [0, 1).
			if f, err := strconv.ParseFloat(c.Nonce, 64); err != nil || f < 0 || f >= 1 {
				t.Errorf("nonce %q is not a float in [0,1)", c.Nonce)
			}
			// Refused once expired, and by anyone else.
			if _, err := token.Verify(r.Token, apiKey, apiSecret, c.ExpireTime); !errors.Is(err, token.ErrExpired) {
				t.Errorf("Verify at expiry: %v, want ErrExpired", err)
			}
			if _, err := token.Verify(r.Token, apiKey, "another-secret", now); !errors.Is(err, token.ErrSignature) {
				t.Errorf("Verify with another secret: %v, want ErrSignature", err)
			}
			if _, err := token.Verify(r.Token, "4712", apiSecret, now); !errors.Is(err, token.ErrWrongKey) {
				t.Errorf("Verify with another key: %v, want ErrWrongKey", err)
			}
		})
	}
}

// TestSDKTokensTampered: a changed SDK token is refused.
func TestSDKTokensTampered(t *testing.T) {
	t.Parallel()
	s := newSDK(t)
	sid := newSessionID(t, apiKey, "")
	res := s.run(t,
		creds(cmd{"op": "generateToken", "sessionId": sid, "role": "subscriber", "data": "name=eve"}),
		creds(cmd{"op": "generateToken", "sessionId": sid, "role": "subscriber", "data": "name=eve", "legacy": true}),
	)
	for _, r := range res {
		if !r.OK {
			t.Fatalf("SDK generateToken: %s", r.Error)
		}
	}
	jwtTok, t1Tok := res[0].Token, res[1].Token
	now := time.Now()
	tests := []struct {
		name string
		tok  string
		want error
	}{
		{"jwt role raised", tamperJWT(t, jwtTok, `"role":"subscriber"`, `"role":"moderator"`), token.ErrSignature},
		{"jwt data changed", tamperJWT(t, jwtTok, `name=eve`, `name=bob`), token.ErrSignature},
		{"jwt expiry extended", tamperJWT(t, jwtTok, `"expire_time":1`, `"expire_time":2`), token.ErrSignature},
		{"jwt alg none", noneJWT(t, jwtTok), token.ErrAlgorithm},
		{"t1 role raised", tamperT1(t, t1Tok, "role=subscriber", "role=moderator"), token.ErrSignature},
		{"t1 data changed", tamperT1(t, t1Tok, "name%3Deve", "name%3Dbob"), token.ErrSignature},
		{"t1 signature changed", tamperT1(t, t1Tok, "&sig=", "&sig=00"), token.ErrSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := token.Verify(tc.tok, apiKey, apiSecret, now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %+v, %v; want %v", c, err, tc.want)
			}
			t.Logf("%v", err)
		})
	}
}

// TestSDKTokenLifetimeQuirk: the SDK documents a 30-day maximum but does not enforce
// it; Verify does, so such a token is refused with a reason.
func TestSDKTokenLifetimeQuirk(t *testing.T) {
	t.Parallel()
	s := newSDK(t)
	r := s.one(t, creds(cmd{"op": "generateToken", "sessionId": newSessionID(t, apiKey, ""),
		"expireTime": time.Now().Add(60 * 24 * time.Hour).Unix()}))
	if !r.OK {
		t.Skipf("this SDK version refuses a 60-day token (%s): the quirk is gone", r.Error)
	}
	_, err := token.Verify(r.Token, apiKey, apiSecret, time.Now())
	if !errors.Is(err, token.ErrLifetime) {
		t.Fatalf("Verify of a 60-day SDK token: %v, want ErrLifetime", err)
	}
	t.Logf("%v", err)
}

// TestSDKAcceptsOurSessionIDs: the SDK checks that a session belongs to its api key
// by decoding the ID; ours decode to the right key, and the SDK refuses the same IDs
// under another key, as New does.
func TestSDKAcceptsOurSessionIDs(t *testing.T) {
	t.Parallel()
	s := newSDK(t)
	type sample struct{ key, location, id string }
	var samples []sample
	for _, key := range []string{"4711", "1", "46123456", "teleop-demo", "a.b_c-d", "6f1d7b9e-3c1a-4e2b-9a55-0123456789ab"} {
		for _, loc := range []string{"", "10.1.2.3"} {
			for range 4 { // random parts differ, so base64 alignments vary
				samples = append(samples, sample{key, loc, newSessionID(t, key, loc)})
			}
		}
	}
	var cmds []cmd
	for _, sm := range samples {
		cmds = append(cmds,
			cmd{"op": "generateToken", "apiKey": sm.key, "apiSecret": apiSecret, "sessionId": sm.id},
			cmd{"op": "generateToken", "apiKey": sm.key + "0", "apiSecret": apiSecret, "sessionId": sm.id})
	}
	res := s.run(t, cmds...)
	for i, sm := range samples {
		own, other := res[2*i], res[2*i+1]
		t.Run(fmt.Sprintf("%s/%q/%d", sm.key, sm.location, i%4), func(t *testing.T) {
			if !own.OK {
				t.Fatalf("SDK refused our session id %s for its own key %q: %s", sm.id, sm.key, own.Error)
			}
			c, err := token.Verify(own.Token, sm.key, apiSecret, time.Now())
			if err != nil || c.SessionID != sm.id {
				t.Errorf("Verify SDK token for our session id: %+v, %v", c, err)
			}
			if other.OK {
				t.Errorf("SDK minted a token for session %s (key %q) under key %q", sm.id, sm.key, sm.key+"0")
			} else if !strings.Contains(other.Error, "session belongs to the API Key") {
				t.Errorf("SDK refusal %q", other.Error)
			}
			if _, err := token.New(sm.key+"0", apiSecret, sm.id, nil); !errors.Is(err, token.ErrWrongKey) {
				t.Errorf("New under another key: %v, want ErrWrongKey", err)
			}
		})
	}
}

// TestSDKRefusesHumanSessionIDs documents an SDK limit: it mints only for IDs that
// decode to its api key, so a backend using the SDK cannot mint for "robot-1"; teleop
// token.New can, and both kinds verify.
func TestSDKRefusesHumanSessionIDs(t *testing.T) {
	t.Parallel()
	s := newSDK(t)
	ids := []string{"robot-1", "1_robot"}
	res := s.run(t, creds(cmd{"op": "generateToken", "sessionId": ids[0]}), creds(cmd{"op": "generateToken", "sessionId": ids[1]}))
	for i, id := range ids {
		if r := res[i]; r.OK {
			t.Errorf("SDK minted a token for %q: the limit is gone, update the docs", id)
		} else {
			t.Logf("SDK refuses %q: %s", id, r.Error)
		}
		if _, err := token.New(apiKey, apiSecret, id, nil); err != nil {
			t.Errorf("New(%q): %v", id, err)
		}
	}
}

// TestTokenLayoutMatchesSDK compares our tokens with the SDK's, claim by claim: same
// header, same claim names with the same JSON types, and T1 fields in the same order.
func TestTokenLayoutMatchesSDK(t *testing.T) {
	t.Parallel()
	s := newSDK(t)
	sid := newSessionID(t, apiKey, "")
	res := s.run(t,
		creds(cmd{"op": "generateToken", "sessionId": sid, "role": "moderator", "data": "name=bar"}),
		creds(cmd{"op": "generateToken", "sessionId": sid, "role": "moderator", "data": "name=bar", "legacy": true}),
		creds(cmd{"op": "generateToken", "sessionId": sid}),
	)
	ours := func(o token.Options) string {
		tok, err := token.New(apiKey, apiSecret, sid, &o)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	t.Run("jwt with data", func(t *testing.T) {
		compareJWT(t, res[0].Token, ours(token.Options{Role: token.Moderator, ConnectionData: "name=bar"}))
	})
	t.Run("jwt without data", func(t *testing.T) {
		compareJWT(t, res[2].Token, ours(token.Options{}))
	})
	t.Run("t1", func(t *testing.T) {
		sdkFields, ourFields := t1Fields(t, res[1].Token), t1Fields(t, ours(token.Options{Role: token.Moderator, ConnectionData: "name=bar", Legacy: true}))
		if !reflect.DeepEqual(sdkFields, ourFields) {
			t.Errorf("t1 fields:\n sdk %v\nours %v", sdkFields, ourFields)
		}
	})
}

func compareJWT(t *testing.T, sdkTok, ourTok string) {
	t.Helper()
	sh, sc := jwtParts(t, sdkTok)
	oh, oc := jwtParts(t, ourTok)
	if !reflect.DeepEqual(sh, oh) {
		t.Errorf("header: sdk %v, ours %v", sh, oh)
	}
	kinds := func(m map[string]any) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[k] = fmt.Sprintf("%T", v)
		}
		return out
	}
	if sk, ok := kinds(sc), kinds(oc); !reflect.DeepEqual(sk, ok) {
		t.Errorf("claims and JSON types:\n sdk %v\nours %v", sk, ok)
	}
	for _, k := range []string{"iss", "ist", "scope", "session_id", "role", "connection_data", "initial_layout_class_list"} {
		if sc[k] != oc[k] {
			t.Errorf("claim %s: sdk %#v, ours %#v", k, sc[k], oc[k])
		}
	}
}

func jwtParts(t *testing.T, tok string) (header, claims map[string]any) {
	t.Helper()
	m := jwt.MapClaims{}
	tk, _, err := jwt.NewParser().ParseUnverified(tok, m)
	if err != nil {
		t.Fatalf("parse %s: %v", tok, err)
	}
	return tk.Header, m
}

// t1Fields lists the names in a T1 token's signed data, in order.
func t1Fields(t *testing.T, tok string) []string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(tok, "T1=="))
	if err != nil {
		t.Fatal(err)
	}
	head, d, ok := strings.Cut(string(raw), ":")
	if !ok || !strings.HasPrefix(head, "partner_id="+apiKey+"&sig=") {
		t.Fatalf("t1 %q", raw)
	}
	var names []string
	for _, kv := range strings.Split(d, "&") {
		k, _, _ := strings.Cut(kv, "=")
		if k, err = url.QueryUnescape(k); err != nil {
			t.Fatal(err)
		}
		names = append(names, k)
	}
	return names
}

func tamperJWT(t *testing.T, tok, old, new string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	p, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(p), old) {
		t.Fatalf("payload %s has no %s", p, old)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(p), old, new, 1)))
	return strings.Join(parts, ".")
}

// noneJWT re-issues tok's claims with alg "none" and no signature.
func noneJWT(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
	return base64.RawURLEncoding.EncodeToString(h) + "." + parts[1] + "."
}

func tamperT1(t *testing.T, tok, old, new string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(tok, "T1=="))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), old) {
		t.Fatalf("t1 %s has no %s", raw, old)
	}
	return "T1==" + base64.StdEncoding.EncodeToString([]byte(strings.Replace(string(raw), old, new, 1)))
}
