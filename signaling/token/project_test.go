package token_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/teleop/teleop/signaling/token"
)

func TestProjectJWT(t *testing.T) {
	tok, err := token.NewProjectJWT(testKey, testSecret, t0, 0)
	if err != nil {
		t.Fatal(err)
	}
	m := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, m); err != nil {
		t.Fatal(err)
	}
	if m["iss"] != testKey || m["ist"] != "project" || m["iat"] != float64(t0.Unix()) ||
		m["exp"] != float64(t0.Add(token.DefaultProjectTTL).Unix()) || len(m["jti"].(string)) != 36 || len(m) != 5 {
		t.Errorf("claims %v", m)
	}
	if err := token.VerifyProjectJWT(tok, testKey, testSecret, t0.Add(time.Second)); err != nil {
		t.Errorf("VerifyProjectJWT: %v", err)
	}
	tok5, err := token.NewProjectJWT(testKey, testSecret, t0, token.MaxProjectTTL)
	if err != nil {
		t.Fatal(err)
	}
	if err := token.VerifyProjectJWT(tok5, testKey, testSecret, t0); err != nil {
		t.Errorf("VerifyProjectJWT 5 min: %v", err)
	}

	for _, tc := range []struct {
		name string
		ttl  time.Duration
	}{{"ttl too long", token.MaxProjectTTL + time.Second}, {"ttl negative", -time.Second}} {
		t.Run(tc.name, func(t *testing.T) {
			if tok, err := token.NewProjectJWT(testKey, testSecret, t0, tc.ttl); err == nil {
				t.Errorf("NewProjectJWT = %q, want an error", tok)
			}
		})
	}
}

func TestVerifyProjectJWTRefuses(t *testing.T) {
	hs := jwt.SigningMethodHS256
	sec := []byte(testSecret)
	// What opentok-node sends: no jti.
	node := jwt.MapClaims{"iss": testKey, "ist": "project", "iat": t0.Unix(), "exp": t0.Unix() + 300}
	sessionTok := mustNew(t, "robot-1", &token.Options{Now: t0, TTL: 2 * time.Minute})
	now := t0.Add(10 * time.Second)
	tests := []struct {
		name    string
		tok     string
		key     string
		now     time.Time
		want    error
		wantMsg string
	}{
		{"node sdk claims pass", signJWT(t, hs, sec, node), testKey, now, nil, ""},
		{"iss as a number passes", signJWT(t, hs, sec, with(node, "iss", 123456)), testKey, now, nil, ""},
		{"backend clock 30s ahead passes", signJWT(t, hs, sec, node), testKey, t0.Add(-30 * time.Second), nil, ""},
		{"expired", signJWT(t, hs, sec, node), testKey, t0.Add(5 * time.Minute), token.ErrExpired, "rest token expired at 2026-05-01T10:05:00Z"},
		{"wrong key", signJWT(t, hs, sec, node), "999", now, token.ErrWrongKey, `token signed for api key "123456", server has "999"`},
		{"wrong secret", signJWT(t, hs, []byte("nope"), node), testKey, now, token.ErrSignature, "signature"},
		{"alg none", noneToken(t, node), testKey, now, token.ErrAlgorithm, `"none"`},
		{"alg HS512", signJWT(t, jwt.SigningMethodHS512, sec, node), testKey, now, token.ErrAlgorithm, `"HS512"`},
		{"ist account", signJWT(t, hs, sec, with(node, "ist", "account")), testKey, now, token.ErrScope, `ist is "account"`},
		{"no ist", signJWT(t, hs, sec, with(node, "ist", nil)), testKey, now, token.ErrScope, "no ist"},
		{"no exp", signJWT(t, hs, sec, with(node, "exp", nil)), testKey, now, token.ErrMalformed, "no exp"},
		{"exp an hour away", signJWT(t, hs, sec, with(node, "exp", t0.Unix()+3600, "iat", nil)), testKey, now, token.ErrLifetime, "more than the 5m0s allowed"},
		{"lifetime 10 min", signJWT(t, hs, sec, with(node, "exp", t0.Unix()+600)), testKey, t0.Add(5 * time.Minute), token.ErrLifetime, "lifetime 10m0s"},
		{"issued in the future", signJWT(t, hs, sec, with(node, "iat", t0.Unix()+120, "exp", t0.Unix()+240)), testKey, now, token.ErrNotYetValid, "in the future"},
		{"session token", sessionTok, testKey, now, token.ErrScope, "session token"},
		{"session token without scope", signJWT(t, hs, sec, with(node, "session_id", "robot-1")), testKey, now, token.ErrScope, "session token"},
		{"t1 token", mustNew(t, "robot-1", &token.Options{Now: t0, Legacy: true}), testKey, now, token.ErrMalformed, "not a valid jwt"},
		{"empty", "", testKey, now, token.ErrMalformed, "empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := token.VerifyProjectJWT(tc.tok, tc.key, testSecret, tc.now)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("VerifyProjectJWT: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("VerifyProjectJWT = %v; want %v saying %q", err, tc.want, tc.wantMsg)
			}
			t.Logf("%v", err)
		})
	}
}
