package token

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

const (
	// DefaultTTL is a session token's lifetime when Options.TTL is zero (as in the SDKs).
	DefaultTTL = 24 * time.Hour
	// MaxTTL is the longest lifetime a session token may have.
	MaxTTL = 30 * 24 * time.Hour
	// MaxConnectionData is the longest connection data, in bytes when minting. When
	// verifying it is counted in UTF-16 code units, as the Node SDK checks it, so every
	// token the official SDK mints verifies and every token New mints does too.
	MaxConnectionData = 1024
	// MaxSessionID is the longest session ID a token may name. OpenTok IDs are ~90 bytes.
	MaxSessionID = 256
	// MaxTokenLen bounds the input Verify will look at; a token with the largest
	// connection data, percent-escaped and base64-encoded, stays below it.
	MaxTokenLen = 16 << 10
	// ClockSkew is how far the minting backend's clock may be ahead of ours when a
	// lifetime limit is checked.
	ClockSkew = time.Minute

	// ScopeSessionConnect is the only scope a session token may carry.
	ScopeSessionConnect = "session.connect"

	// FormatJWT and FormatT1 are the values of Claims.Format.
	FormatJWT = "jwt"
	FormatT1  = "t1"

	// maxUnix bounds time claims (year ~33658) so arithmetic on them cannot overflow.
	maxUnix = 1e12
)

// Options shape a minted session token. The zero value (or nil) is a publisher token
// valid for 24 hours from now, in JWT format.
type Options struct {
	Role           Role          // "" is Publisher
	ConnectionData string        // at most MaxConnectionData bytes; visible to every client
	TTL            time.Duration // 0 is DefaultTTL; whole seconds, at most MaxTTL
	Now            time.Time     // creation time; zero is time.Now()
	Legacy         bool          // mint the legacy "T1==" format instead of a JWT
}

// Claims is what a verified session token grants.
type Claims struct {
	APIKey         string // iss (JWT) or partner_id (T1)
	SessionID      string
	Role           Role
	ConnectionData string
	CreateTime     time.Time // create_time, else iat; zero when the token has neither
	ExpireTime     time.Time // the earlier of exp and expire_time
	Nonce          string    // as written in the token: the Node SDK writes a float, e.g. "0.1341"
	Format         string    // FormatJWT or FormatT1
}

// New mints a session token that lets its holder join sessionID with the given options.
func New(apiKey, apiSecret, sessionID string, opts *Options) (string, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if err := checkKeyAndSecret(apiKey, apiSecret); err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	if err := checkSessionID(sessionID); err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	// As the SDKs do: a session ID that names another project cannot get a token.
	if key, err := ParseSessionID(sessionID); err == nil && key != apiKey {
		return "", fmt.Errorf("mint token: %w", errorf(ErrWrongKey,
			"session %q belongs to api key %q, not %q", sessionID, key, apiKey))
	}
	role, err := ParseRole(string(o.Role))
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	if n := len(o.ConnectionData); n > MaxConnectionData {
		return "", fmt.Errorf("mint token: %w", errorf(ErrConnectionData,
			"connection data is %d bytes, more than the %d allowed", n, MaxConnectionData))
	}
	ttl := o.TTL
	switch {
	case ttl == 0:
		ttl = DefaultTTL
	case ttl < time.Second:
		return "", fmt.Errorf("mint token: ttl %v is shorter than one second", ttl)
	case ttl > MaxTTL:
		return "", fmt.Errorf("mint token: %w", errorf(ErrLifetime, "ttl %v is longer than the 30 days (%v) allowed", ttl, MaxTTL))
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	nonce, err := newNonce()
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	f := fields{
		apiKey:    apiKey,
		sessionID: sessionID,
		role:      role,
		data:      o.ConnectionData,
		create:    now.Unix(),
		expire:    now.Unix() + int64(ttl/time.Second),
		nonce:     nonce,
	}
	if o.Legacy {
		return mintT1(f, apiSecret), nil
	}
	return mintJWT(f, apiSecret)
}

// fields is a session token's content, whatever its format.
type fields struct {
	apiKey, sessionID string
	role              Role
	data              string
	create, expire    int64 // unix seconds
	nonce             string
}

// mintJWT signs f in the layout of the official SDKs (opentok-node generateToken):
// iss, ist, iat, exp, scope, session_id, role, connection_data (only when set),
// initial_layout_class_list, nonce (a number), create_time, expire_time.
func mintJWT(f fields, secret string) (string, error) {
	c := jwt.MapClaims{
		"iss":                       f.apiKey,
		"ist":                       "project",
		"iat":                       f.create,
		"exp":                       f.expire,
		"scope":                     ScopeSessionConnect,
		"session_id":                f.sessionID,
		"role":                      string(f.role),
		"initial_layout_class_list": "",
		"nonce":                     json.Number(f.nonce), // written as a number, as the Node SDK does
		"create_time":               f.create,
		"expire_time":               f.expire,
	}
	if f.data != "" {
		c["connection_data"] = f.data
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
	if err != nil {
		return "", fmt.Errorf("sign jwt: %w", err)
	}
	return s, nil
}

// newNonce returns a random decimal fraction "0.dddddddddddddddd": the Node SDK's
// nonce is Math.random(), a JSON number, and ours looks the same on the wire.
func newNonce() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1e16))
	if err != nil {
		return "", fmt.Errorf("read random nonce: %w", err)
	}
	return fmt.Sprintf("0.%016d", n), nil
}

// Verify checks a session token (JWT or T1) against the server's api key and secret at
// time now (zero is time.Now) and returns what it grants. It refuses, with a sentinel
// error: malformed input (ErrMalformed), an algorithm other than HS256 (ErrAlgorithm),
// a token for another api key, or for a session ID that embeds another api key
// (ErrWrongKey), a bad signature (ErrSignature), a scope other than session.connect
// (ErrScope), an unknown role (ErrRole), oversized connection data (ErrConnectionData),
// an expired token (ErrExpired) and a lifetime beyond 30 days (ErrLifetime).
// Session IDs not in OpenTok format (e.g. "robot-1") are accepted as they are.
func Verify(tok, apiKey, apiSecret string, now time.Time) (*Claims, error) {
	if apiKey == "" || apiSecret == "" {
		return nil, errors.New("verify token: server api key or secret is empty")
	}
	if now.IsZero() {
		now = time.Now()
	}
	var (
		p   *parsed
		err error
	)
	switch {
	case tok == "":
		return nil, errorf(ErrMalformed, "token is empty")
	case len(tok) > MaxTokenLen:
		return nil, errorf(ErrMalformed, "token is %d bytes, more than the %d accepted", len(tok), MaxTokenLen)
	case strings.HasPrefix(tok, t1Prefix):
		p, err = parseT1(tok, apiKey, apiSecret)
	case strings.Count(tok, ".") == 2:
		p, err = parseJWT(tok, apiKey, apiSecret)
	default:
		return nil, errorf(ErrMalformed, "token is neither a t1 token (%q…) nor a jwt (three dot-separated parts)", t1Prefix)
	}
	if err != nil {
		return nil, err
	}
	return p.claims(apiKey, now)
}

// parsed is a token's signed content before the format-independent checks. Optional
// claims carry their presence; times are unix seconds.
type parsed struct {
	format                 string
	iss                    string
	sessionID              string
	role                   string
	data                   string
	nonce                  string
	scope                  optString
	iat, exp               optTime
	createTime, expireTime optTime
}

type optString struct {
	s  string
	ok bool
}

type optTime struct {
	t  int64
	ok bool
}

// claims applies the checks common to both formats to a token whose signature has
// already been verified.
func (p *parsed) claims(apiKey string, now time.Time) (*Claims, error) {
	if p.sessionID == "" {
		return nil, errorf(ErrMalformed, "token has no session_id")
	}
	if err := checkSessionID(p.sessionID); err != nil {
		return nil, errorf(ErrMalformed, "token session_id: %w", err)
	}
	if key, err := ParseSessionID(p.sessionID); err == nil && key != apiKey {
		return nil, errorf(ErrWrongKey, "token is for session %q of api key %q, server has %q", p.sessionID, key, apiKey)
	}
	if p.scope.ok && p.scope.s != ScopeSessionConnect {
		return nil, errorf(ErrScope, "token scope is %q, want %q", p.scope.s, ScopeSessionConnect)
	}
	role, err := ParseRole(p.role)
	if err != nil {
		return nil, fmt.Errorf("token role: %w", err)
	}
	if n := utf16Len(p.data); n > MaxConnectionData {
		return nil, errorf(ErrConnectionData, "token connection_data is %d UTF-16 code units, more than the %d allowed", n, MaxConnectionData)
	}

	// Expiry: exp and expire_time say the same in SDK tokens; if both are present,
	// both must hold, so the earlier one counts.
	var exp optTime
	for _, t := range []optTime{p.exp, p.expireTime} {
		if t.ok && (!exp.ok || t.t < exp.t) {
			exp = t
		}
	}
	if !exp.ok {
		return nil, errorf(ErrMalformed, "token has no expiry (neither exp nor expire_time)")
	}
	create := p.createTime
	if !create.ok {
		create = p.iat
	}
	expire := time.Unix(exp.t, 0).UTC()
	if !now.Before(expire) {
		return nil, errorf(ErrExpired, "token expired at %s (server time %s)", expire.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	c := &Claims{
		APIKey:         p.iss,
		SessionID:      p.sessionID,
		Role:           role,
		ConnectionData: p.data,
		ExpireTime:     expire,
		Nonce:          p.nonce,
		Format:         p.format,
	}
	if create.ok {
		c.CreateTime = time.Unix(create.t, 0).UTC()
		if create.t > exp.t {
			return nil, errorf(ErrMalformed, "token expires at %s, before it was created at %s", expire.Format(time.RFC3339), c.CreateTime.Format(time.RFC3339))
		}
		if d := expire.Sub(c.CreateTime); d > MaxTTL+ClockSkew {
			return nil, errorf(ErrLifetime, "token lifetime %v (created %s, expires %s) is longer than the 30 days allowed",
				d, c.CreateTime.Format(time.RFC3339), expire.Format(time.RFC3339))
		}
	}
	// Also bound what is left, for tokens without a creation time or created "later".
	if d := expire.Sub(now); d > MaxTTL+ClockSkew {
		return nil, errorf(ErrLifetime, "token expires at %s, %v from now, more than the 30 days allowed", expire.Format(time.RFC3339), d.Round(time.Second))
	}
	return c, nil
}

// utf16Len is the length of s in UTF-16 code units, as JavaScript's String.length.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// checkKeyAndSecret refuses credentials we cannot mint with. The api key is written
// unescaped into T1 tokens ("partner_id=KEY&sig=…:") and session IDs ("~KEY~"), so it
// is limited to characters that need no escaping there.
func checkKeyAndSecret(apiKey, apiSecret string) error {
	if err := checkAPIKey(apiKey); err != nil {
		return err
	}
	if apiSecret == "" {
		return errors.New("api secret is empty")
	}
	return nil
}

func checkAPIKey(apiKey string) error {
	if apiKey == "" {
		return errors.New("api key is empty")
	}
	if len(apiKey) > 128 {
		return fmt.Errorf("api key is %d bytes, more than 128", len(apiKey))
	}
	for _, r := range apiKey {
		if !isKeyChar(r) {
			return fmt.Errorf("api key %q: character %q is not allowed (only A-Z a-z 0-9 and - _ . are)", apiKey, r)
		}
	}
	return nil
}

func isKeyChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
}

// checkSessionID accepts any non-empty UTF-8 text without control characters up to
// MaxSessionID bytes: OpenTok IDs and human-chosen names such as "robot-1" alike.
func checkSessionID(id string) error {
	if id == "" {
		return errors.New("session id is empty")
	}
	if len(id) > MaxSessionID {
		return fmt.Errorf("session id is %d bytes, more than the %d allowed", len(id), MaxSessionID)
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("session id %q is not valid UTF-8", id)
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("session id %q contains control character %U", id, r)
		}
	}
	return nil
}
