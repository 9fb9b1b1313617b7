package token_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/teleop/teleop/signaling/token"
)

func TestNewSessionID(t *testing.T) {
	rnd := bytes.NewReader(bytes.Repeat([]byte{0xfb}, 18)) // encodes with '+' and '/'
	id, err := token.NewSessionID(testKey, "10.0.0.7", t0, rnd)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(id, "1_") || strings.ContainsAny(id, "+/=") {
		t.Errorf("id %q: want 1_ + unpadded base64url", id)
	}
	payload, err := base64.RawURLEncoding.DecodeString(id[2:])
	if err != nil {
		t.Fatal(err)
	}
	want := "1~123456~10.0.0.7~1777629600000~+/v7+/v7+/v7+/v7+/v7+/v7~"
	if string(payload) != want {
		t.Errorf("payload %q, want %q", payload, want)
	}
	key, err := token.ParseSessionID(id)
	if err != nil || key != testKey {
		t.Errorf("ParseSessionID(%q) = %q, %v; want %q", id, key, err, testKey)
	}

	// Random by default: two IDs differ.
	a, _ := token.NewSessionID(testKey, "", t0, nil)
	b, _ := token.NewSessionID(testKey, "", t0, nil)
	if a == b {
		t.Errorf("two session ids are equal: %s", a)
	}

	for _, tc := range []struct{ name, key, location string }{
		{"empty key", "", ""},
		{"key with tilde", "a~b", ""},
		{"location with tilde", testKey, "a~b"},
		{"location too long", testKey, strings.Repeat("x", 65)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if id, err := token.NewSessionID(tc.key, tc.location, t0, nil); err == nil {
				t.Errorf("NewSessionID = %q, want an error", id)
			}
		})
	}
	if _, err := token.NewSessionID(testKey, "", t0, bytes.NewReader(nil)); err == nil {
		t.Error("NewSessionID with an empty random source: want an error")
	}
}

func TestParseSessionID(t *testing.T) {
	enc := func(prefix, payload string) string {
		return prefix + base64.RawURLEncoding.EncodeToString([]byte(payload))
	}
	tests := []struct {
		name, id string
		want     string // "" means not OpenTok format
	}{
		{"opentok shaped", opentokSessionID, "45328742"},
		{"ours", ourSessionID(t, "abc-DEF_1.2"), "abc-DEF_1.2"},
		{"prefix 2_", enc("2_", "1~777~~0~r~"), "777"},
		{"padded", "1_" + base64.URLEncoding.EncodeToString([]byte("1~7777~~0~r")), "7777"},
		{"exactly four fields", enc("1_", "1~k~l~t"), "k"},
		{"uuid key (vonage application id)", enc("1_", "1~6f1d7b9e-3c1a-4e2b-9a55-0123456789ab~~0~r~"), "6f1d7b9e-3c1a-4e2b-9a55-0123456789ab"},
		{"human name", "robot-1", ""},
		{"human name with digit prefix", "1_robot", ""},
		{"empty", "", ""},
		{"prefix only", "1_", ""},
		{"letter prefix", enc("x_", "1~k~l~t~"), ""},
		{"three fields", enc("1_", "1~k~l"), ""},
		{"empty key", enc("1_", "1~~l~t~"), ""},
		{"key with space", enc("1_", "1~a b~l~t~"), ""},
		{"key with binary", enc("1_", "1~a\x00b~l~t~"), ""},
		{"not base64", "1_!!!!", ""},
		// The SDKs only map '-' and '_', so the standard alphabet decodes as well.
		{"standard base64 alphabet", "1_" + base64.RawStdEncoding.EncodeToString([]byte("1~k~~0~\xfb\xff~")), "k"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key, err := token.ParseSessionID(tc.id)
			if tc.want == "" {
				if !errors.Is(err, token.ErrSessionID) {
					t.Errorf("ParseSessionID(%q) = %q, %v; want ErrSessionID", tc.id, key, err)
				}
				return
			}
			if err != nil || key != tc.want {
				t.Errorf("ParseSessionID(%q) = %q, %v; want %q", tc.id, key, err, tc.want)
			}
		})
	}
}

// TestHumanSessionIDs: the design lets any session ID inside a valid token be joined,
// including ones that merely look like OpenTok IDs but do not decode.
func TestHumanSessionIDs(t *testing.T) {
	for _, id := range []string{"robot-1", "1_robot", "2_lab~bench", "lab/arm #2"} {
		tok := mustNew(t, id, &token.Options{Now: t0})
		if c, err := token.Verify(tok, testKey, testSecret, t0.Add(time.Second)); err != nil || c.SessionID != id {
			t.Errorf("%q: Verify = %+v, %v", id, c, err)
		}
	}
}
