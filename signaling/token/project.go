package token

import (
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	// DefaultProjectTTL is the lifetime NewProjectJWT uses when given none (the REST
	// docs recommend 3 minutes; the Node SDK uses 5).
	DefaultProjectTTL = 3 * time.Minute
	// MaxProjectTTL is the longest lifetime of a REST auth token.
	MaxProjectTTL = 5 * time.Minute
)

// NewProjectJWT mints the token a backend sends as X-OPENTOK-AUTH on REST calls:
// HS256 over {iss: apiKey, ist: "project", iat, exp, jti}. ttl zero is
// DefaultProjectTTL; at most MaxProjectTTL. now zero is time.Now.
func NewProjectJWT(apiKey, apiSecret string, now time.Time, ttl time.Duration) (string, error) {
	if err := checkKeyAndSecret(apiKey, apiSecret); err != nil {
		return "", fmt.Errorf("mint rest token: %w", err)
	}
	switch {
	case ttl == 0:
		ttl = DefaultProjectTTL
	case ttl < time.Second:
		return "", fmt.Errorf("mint rest token: ttl %v is shorter than one second", ttl)
	case ttl > MaxProjectTTL:
		return "", fmt.Errorf("mint rest token: %w", errorf(ErrLifetime, "ttl %v is longer than the %v allowed", ttl, MaxProjectTTL))
	}
	if now.IsZero() {
		now = time.Now()
	}
	jti, err := newUUID()
	if err != nil {
		return "", fmt.Errorf("mint rest token: %w", err)
	}
	c := jwt.MapClaims{
		"iss": apiKey,
		"ist": "project",
		"iat": now.Unix(),
		"exp": now.Unix() + int64(ttl/time.Second),
		"jti": jti,
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(apiSecret))
	if err != nil {
		return "", fmt.Errorf("mint rest token: sign: %w", err)
	}
	return s, nil
}

// VerifyProjectJWT checks a REST auth token at time now (zero is time.Now): HS256 signed
// with apiSecret, iss == apiKey (ErrWrongKey), ist == "project" (ErrScope), exp present
// (ErrMalformed) and in the future (ErrExpired) but at most MaxProjectTTL+ClockSkew
// after now and after iat (ErrLifetime), iat not in the future (ErrNotYetValid). jti is
// optional: the Node SDK sends none. A session token is refused (ErrScope) even when
// it is short-lived, so a client's credentials never authorize server calls.
func VerifyProjectJWT(tok, apiKey, apiSecret string, now time.Time) error {
	if apiKey == "" || apiSecret == "" {
		return errors.New("verify rest token: server api key or secret is empty")
	}
	if now.IsZero() {
		now = time.Now()
	}
	switch {
	case tok == "":
		return errorf(ErrMalformed, "rest token is empty")
	case len(tok) > MaxTokenLen:
		return errorf(ErrMalformed, "rest token is %d bytes, more than the %d accepted", len(tok), MaxTokenLen)
	}
	m, err := verifyHS256(tok, apiKey, apiSecret)
	if err != nil {
		return err
	}
	ist, err := claimString(m, "ist")
	if err != nil {
		return err
	}
	if ist.s != "project" {
		if !ist.ok {
			return errorf(ErrScope, "rest token has no ist claim, want \"project\"")
		}
		return errorf(ErrScope, "rest token ist is %q, want \"project\"", ist.s)
	}
	if _, ok := m["scope"]; ok {
		return errorf(ErrScope, "rest token carries a scope claim: it is a session token, not a project token")
	}
	if _, ok := m["session_id"]; ok {
		return errorf(ErrScope, "rest token carries a session_id claim: it is a session token, not a project token")
	}
	exp, err := claimTime(m, "exp")
	if err != nil {
		return err
	}
	if !exp.ok {
		return errorf(ErrMalformed, "rest token has no exp claim")
	}
	iat, err := claimTime(m, "iat")
	if err != nil {
		return err
	}
	expire := time.Unix(exp.t, 0).UTC()
	if !now.Before(expire) {
		return errorf(ErrExpired, "rest token expired at %s (server time %s)", expire.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if d := expire.Sub(now); d > MaxProjectTTL+ClockSkew {
		return errorf(ErrLifetime, "rest token expires at %s, %v from now, more than the %v allowed", expire.Format(time.RFC3339), d.Round(time.Second), MaxProjectTTL)
	}
	if iat.ok {
		issued := time.Unix(iat.t, 0).UTC()
		if issued.After(now.Add(ClockSkew)) {
			return errorf(ErrNotYetValid, "rest token issued at %s, in the future (server time %s)", issued.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
		if d := expire.Sub(issued); d > MaxProjectTTL+ClockSkew {
			return errorf(ErrLifetime, "rest token lifetime %v (iat %s, exp %s) is longer than the %v allowed", d, issued.Format(time.RFC3339), expire.Format(time.RFC3339), MaxProjectTTL)
		}
	}
	return nil
}

// newUUID returns a random (version 4) UUID, the jti format the SDKs use.
func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("read random jti: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
