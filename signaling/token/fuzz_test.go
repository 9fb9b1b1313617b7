package token_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/teleop/teleop/signaling/token"
)

// FuzzVerify: Verify never panics, every refusal carries a sentinel, and an accepted
// token's claims survive a mint→verify round trip in the same format.
func FuzzVerify(f *testing.F) {
	now := t0.Add(time.Minute)
	for _, o := range []token.Options{
		{Now: t0},
		{Now: t0, Legacy: true},
		{Now: t0, Role: token.Moderator, ConnectionData: "name=bar&x=é", TTL: time.Hour},
		{Now: t0, Role: token.Subscriber, ConnectionData: "a:b c", Legacy: true},
	} {
		tok, err := token.New(testKey, testSecret, "robot-1", &o)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tok)
		f.Add(tok[:len(tok)/2])
	}
	f.Add("")
	f.Add("T1==")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiIxMjM0NTYifQ.")
	f.Add(t1(testKey, testSecret, "session_id=s&expire_time=1777633200"))

	sentinels := []error{token.ErrMalformed, token.ErrAlgorithm, token.ErrSignature, token.ErrWrongKey, token.ErrExpired,
		token.ErrLifetime, token.ErrScope, token.ErrRole, token.ErrConnectionData}
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := token.Verify(tok, testKey, testSecret, now)
		if err != nil {
			for _, s := range sentinels {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("refusal without a sentinel: %v", err)
		}
		if c.APIKey != testKey || !c.ExpireTime.After(now) || c.SessionID == "" {
			t.Fatalf("accepted implausible claims %+v", c)
		}
		wantFormat := token.FormatJWT
		if strings.HasPrefix(tok, "T1==") {
			wantFormat = token.FormatT1
		}
		if c.Format != wantFormat {
			t.Fatalf("format %q for token %q", c.Format, tok)
		}
		if len(c.ConnectionData) > token.MaxConnectionData {
			return // accepted by the SDKs' UTF-16 count but longer than New mints
		}
		ttl := c.ExpireTime.Sub(now)
		if ttl > token.MaxTTL || ttl < time.Second {
			return
		}
		again, err := token.New(testKey, testSecret, c.SessionID, &token.Options{
			Role: c.Role, ConnectionData: c.ConnectionData, TTL: ttl, Now: now, Legacy: c.Format == token.FormatT1,
		})
		if err != nil {
			t.Fatalf("re-mint %+v: %v", c, err)
		}
		c2, err := token.Verify(again, testKey, testSecret, now)
		if err != nil {
			t.Fatalf("verify re-minted %+v: %v", c, err)
		}
		c2.Nonce, c2.CreateTime = c.Nonce, c.CreateTime
		if *c2 != *c {
			t.Fatalf("round trip:\n got %+v\nwant %+v", *c2, *c)
		}
	})
}

// FuzzParseSessionID: ParseSessionID never panics and returns a usable key; every ID
// NewSessionID mints parses back to its api key.
func FuzzParseSessionID(f *testing.F) {
	f.Add(opentokSessionID, testKey, "")
	f.Add("robot-1", "abc", "10.0.0.1")
	f.Add("1_", "a.b-c_d", "x")
	f.Add("2_fn5-fg", "1", "")
	f.Fuzz(func(t *testing.T, id, apiKey, location string) {
		if key, err := token.ParseSessionID(id); err == nil {
			if key == "" || strings.ContainsAny(key, "~ ") {
				t.Fatalf("ParseSessionID(%q) = %q", id, key)
			}
		} else if !errors.Is(err, token.ErrSessionID) {
			t.Fatalf("ParseSessionID(%q): error without ErrSessionID: %v", id, err)
		}
		minted, err := token.NewSessionID(apiKey, location, t0, nil)
		if err != nil {
			return
		}
		if key, err := token.ParseSessionID(minted); err != nil || key != apiKey {
			t.Fatalf("NewSessionID(%q, %q) = %q parses to %q, %v", apiKey, location, minted, key, err)
		}
	})
}
