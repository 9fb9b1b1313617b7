package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/teleop/teleop/signaling/token"
)

// runTeleop executes the command tree in-process, as main does.
func runTeleop(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCmd(&out, &errOut)
	root.SetArgs(args)
	err = root.ExecuteContext(t.Context())
	return out.String(), errOut.String(), err
}

func TestTokenCmd(t *testing.T) {
	const key, secret = "123456", "cli-secret"
	tests := []struct {
		name      string
		env       map[string]string
		args      []string
		verifyKey string
		want      token.Claims // Nonce, CreateTime and APIKey are not compared
		wantTTL   time.Duration
	}{
		{
			name:      "flags",
			args:      []string{"--session", "robot-1", "--api-key", key, "--api-secret", secret},
			verifyKey: key,
			want:      token.Claims{SessionID: "robot-1", Role: token.Publisher, Format: token.FormatJWT},
			wantTTL:   24 * time.Hour,
		},
		{
			name:      "role data ttl",
			args:      []string{"--session", "robot-1", "--role", "moderator", "--data", "name=alice", "--ttl", "1h", "--api-key", key, "--api-secret", secret},
			verifyKey: key,
			want:      token.Claims{SessionID: "robot-1", Role: token.Moderator, ConnectionData: "name=alice", Format: token.FormatJWT},
			wantTTL:   time.Hour,
		},
		{
			name:      "legacy",
			args:      []string{"--session", "robot-1", "--role", "subscriber", "--legacy", "--api-key", key, "--api-secret", secret},
			verifyKey: key,
			want:      token.Claims{SessionID: "robot-1", Role: token.Subscriber, Format: token.FormatT1},
			wantTTL:   24 * time.Hour,
		},
		{
			name:      "environment",
			env:       map[string]string{"TELEOP_API_KEY": key, "TELEOP_API_SECRET": secret},
			args:      []string{"--session", "lab arm"},
			verifyKey: key,
			want:      token.Claims{SessionID: "lab arm", Role: token.Publisher, Format: token.FormatJWT},
			wantTTL:   24 * time.Hour,
		},
		{
			name:      "flags win over environment",
			env:       map[string]string{"TELEOP_API_KEY": "999", "TELEOP_API_SECRET": "env-secret"},
			args:      []string{"--session", "robot-1", "--api-key", key, "--api-secret", secret},
			verifyKey: key,
			want:      token.Claims{SessionID: "robot-1", Role: token.Publisher, Format: token.FormatJWT},
			wantTTL:   24 * time.Hour,
		},
		{
			name:      "key from flag, secret from environment",
			env:       map[string]string{"TELEOP_API_KEY": "999", "TELEOP_API_SECRET": secret},
			args:      []string{"--session", "robot-1", "--api-key", key},
			verifyKey: key,
			want:      token.Claims{SessionID: "robot-1", Role: token.Publisher, Format: token.FormatJWT},
			wantTTL:   24 * time.Hour,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("TELEOP_API_KEY", tc.env["TELEOP_API_KEY"])
			t.Setenv("TELEOP_API_SECRET", tc.env["TELEOP_API_SECRET"])
			stdout, stderr, err := runTeleop(t, append([]string{"token"}, tc.args...)...)
			if err != nil {
				t.Fatalf("teleop token: %v (stderr %q)", err, stderr)
			}
			if stderr != "" {
				t.Errorf("stderr %q, want nothing", stderr)
			}
			tok, ok := strings.CutSuffix(stdout, "\n")
			if !ok || strings.Contains(tok, "\n") {
				t.Fatalf("stdout %q, want one line", stdout)
			}
			c, err := token.Verify(tok, tc.verifyKey, secret, time.Now())
			if err != nil {
				t.Fatalf("Verify printed token: %v", err)
			}
			if got := c.ExpireTime.Sub(c.CreateTime); got != tc.wantTTL {
				t.Errorf("lifetime %v, want %v", got, tc.wantTTL)
			}
			tc.want.APIKey, tc.want.Nonce, tc.want.CreateTime, tc.want.ExpireTime = c.APIKey, c.Nonce, c.CreateTime, c.ExpireTime
			if *c != tc.want {
				t.Errorf("claims %+v, want %+v", *c, tc.want)
			}
		})
	}
}

func TestTokenCmdNewSession(t *testing.T) {
	t.Setenv("TELEOP_API_KEY", "4711")
	t.Setenv("TELEOP_API_SECRET", "s")
	stdout, stderr, err := runTeleop(t, "token", "--new-session", "--role", "moderator")
	if err != nil {
		t.Fatal(err)
	}
	sid, ok := strings.CutPrefix(strings.TrimSuffix(stderr, "\n"), "session: ")
	if !ok {
		t.Fatalf("stderr %q, want session: <id>", stderr)
	}
	if key, err := token.ParseSessionID(sid); err != nil || key != "4711" {
		t.Errorf("ParseSessionID(%q) = %q, %v", sid, key, err)
	}
	c, err := token.Verify(strings.TrimSpace(stdout), "4711", "s", time.Now())
	if err != nil || c.SessionID != sid || c.Role != token.Moderator {
		t.Errorf("Verify = %+v, %v; want session %s, moderator", c, err, sid)
	}
}

func TestTokenCmdErrors(t *testing.T) {
	creds := []string{"--api-key", "123456", "--api-secret", "s"}
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    string
		wantErr error
	}{
		{"no key or secret", nil, []string{"--session", "s"}, "no api key: pass --api-key or set TELEOP_API_KEY", nil},
		{"no secret", map[string]string{"TELEOP_API_KEY": "1"}, []string{"--session", "s"}, "no api secret: pass --api-secret or set TELEOP_API_SECRET", nil},
		{"empty key flag beats environment", map[string]string{"TELEOP_API_KEY": "1", "TELEOP_API_SECRET": "s"}, []string{"--session", "s", "--api-key", ""}, "no api key", nil},
		{"no session", nil, creds, "no session: pass --session ID, or --new-session to mint one", nil},
		{"session and new session", nil, append([]string{"--session", "s", "--new-session"}, creds...), "exclude each other", nil},
		{"bad role", nil, append([]string{"--session", "s", "--role", "admin"}, creds...), `--role: role "admin" is not one of`, token.ErrRole},
		{"ttl too long", nil, append([]string{"--session", "s", "--ttl", "721h"}, creds...), "longer than the 30 days", token.ErrLifetime},
		{"data too long", nil, append([]string{"--session", "s", "--data", strings.Repeat("x", 1025)}, creds...), "1025 bytes", token.ErrConnectionData},
		{"bad api key", nil, []string{"--session", "s", "--api-key", "a&b", "--api-secret", "s"}, `api key "a&b"`, nil},
		{"session of another key", nil, append([]string{"--session", "1_MX40NTMyODc0Mn5-MTU2NzU5MjY0MzYxMX5IUEpoM0pGNjc1NFhXTitrMUVxWVRzQ01-fg"}, creds...),
			`belongs to api key "45328742"`, token.ErrWrongKey},
		{"argument", nil, append([]string{"--session", "s", "extra"}, creds...), `unknown command "extra"`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("TELEOP_API_KEY", tc.env["TELEOP_API_KEY"])
			t.Setenv("TELEOP_API_SECRET", tc.env["TELEOP_API_SECRET"])
			stdout, _, err := runTeleop(t, append([]string{"token"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v is not %v", err, tc.wantErr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing on error", stdout)
			}
		})
	}
}

func TestTokenCmdProject(t *testing.T) {
	t.Setenv("TELEOP_API_KEY", "123456")
	t.Setenv("TELEOP_API_SECRET", "s3cret")
	stdout, _, err := runTeleop(t, "token", "--project")
	if err != nil {
		t.Fatalf("token --project: %v", err)
	}
	tok := strings.TrimSpace(stdout)
	if err := token.VerifyProjectJWT(tok, "123456", "s3cret", time.Now()); err != nil {
		t.Fatalf("the printed project token does not verify: %v", err)
	}
	if err := token.VerifyProjectJWT(tok, "123456", "other", time.Now()); err == nil {
		t.Fatal("the project token verified with the wrong secret")
	}
	if _, err := token.Verify(tok, "123456", "s3cret", time.Now()); err == nil {
		t.Fatal("a project token was accepted as a session token")
	}
	for _, args := range [][]string{
		{"token", "--project", "--session", "s1"},
		{"token", "--project", "--role", "moderator"},
		{"token", "--project", "--ttl", "10m"},
	} {
		if _, _, err := runTeleop(t, args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
