package token_test

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"crypto/hmac"
	"crypto/sha1"

	"github.com/golang-jwt/jwt/v5"

	"github.com/teleop/teleop/signaling/token"
)

const (
	testKey    = "123456"
	testSecret = "0123456789abcdef0123456789abcdef01234567"
)

// t0 is the creation time of every token in these tests; nothing reads the wall clock.
var t0 = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

// opentokSessionID has the shape of a session ID issued by OpenTok: it decodes to
// "1~45328742~~1567592643611~HPJh3JF6754XWN+k1EqYTsCM~~".
const opentokSessionID = "1_MX40NTMyODc0Mn5-MTU2NzU5MjY0MzYxMX5IUEpoM0pGNjc1NFhXTitrMUVxWVRzQ01-fg"

func mustNew(t *testing.T, sessionID string, o *token.Options) string {
	t.Helper()
	tok, err := token.New(testKey, testSecret, sessionID, o)
	if err != nil {
		t.Fatalf("New(%q, %+v): %v", sessionID, o, err)
	}
	return tok
}

func ourSessionID(t *testing.T, apiKey string) string {
	t.Helper()
	id, err := token.NewSessionID(apiKey, "", t0, nil)
	if err != nil {
		t.Fatalf("NewSessionID: %v", err)
	}
	return id
}

// signJWT signs arbitrary claims, to build tokens New would never mint.
func signJWT(t *testing.T, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

// sdkClaims are the claims opentok-node 2.23.2 generateToken writes, verbatim in kind:
// nonce is a float, connection_data present only when set.
func sdkClaims(sessionID string) jwt.MapClaims {
	return jwt.MapClaims{
		"iss":                       testKey,
		"ist":                       "project",
		"iat":                       t0.Unix(),
		"exp":                       t0.Add(24 * time.Hour).Unix(),
		"session_id":                sessionID,
		"create_time":               t0.Unix(),
		"nonce":                     0.1341592653589793,
		"role":                      "publisher",
		"expire_time":               t0.Add(24 * time.Hour).Unix(),
		"initial_layout_class_list": "",
		"scope":                     "session.connect",
	}
}

func with(m jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// t1 builds a legacy token around raw data D, signed with secret.
func t1(apiKey, secret, data string) string {
	h := hmac.New(sha1.New, []byte(secret))
	h.Write([]byte(data))
	raw := "partner_id=" + apiKey + "&sig=" + hex.EncodeToString(h.Sum(nil)) + ":" + data
	return "T1==" + base64.StdEncoding.EncodeToString([]byte(raw))
}

func TestRoundTrip(t *testing.T) {
	opentokID := ourSessionID(t, testKey)
	data := `name=bar&x=y:z é 🤖 +%20 "quoted" ~`
	tests := []struct {
		name      string
		sessionID string
		opts      *token.Options
		wantRole  token.Role
		wantTTL   time.Duration
	}{
		{"nil options", "robot-1", nil, token.Publisher, token.DefaultTTL},
		{"publisher jwt", opentokID, &token.Options{Role: token.Publisher}, token.Publisher, token.DefaultTTL},
		{"subscriber jwt", opentokID, &token.Options{Role: token.Subscriber}, token.Subscriber, token.DefaultTTL},
		{"moderator jwt with data", opentokID, &token.Options{Role: token.Moderator, ConnectionData: data}, token.Moderator, token.DefaultTTL},
		{"publisheronly jwt", "robot-1", &token.Options{Role: token.PublisherOnly}, token.PublisherOnly, token.DefaultTTL},
		{"one hour jwt", "robot-1", &token.Options{TTL: time.Hour}, token.Publisher, time.Hour},
		{"thirty days jwt", "robot-1", &token.Options{TTL: token.MaxTTL}, token.Publisher, token.MaxTTL},
		{"max data jwt", "robot-1", &token.Options{ConnectionData: strings.Repeat("é", token.MaxConnectionData/2)}, token.Publisher, token.DefaultTTL},
		{"human session id with spaces", "salle d'opération 1", nil, token.Publisher, token.DefaultTTL},
		{"opentok-shaped session id of this key", "1_MX4xMjM0NTZ-fjE1Njc1OTI2NDM2MTF-SFBKaDNKRjY3NTRYV04razFFcVlUc0NNfn4", nil, token.Publisher, token.DefaultTTL},
		{"publisher t1", opentokID, &token.Options{Legacy: true}, token.Publisher, token.DefaultTTL},
		{"subscriber t1", opentokID, &token.Options{Legacy: true, Role: token.Subscriber}, token.Subscriber, token.DefaultTTL},
		{"moderator t1 with data", opentokID, &token.Options{Legacy: true, Role: token.Moderator, ConnectionData: data}, token.Moderator, token.DefaultTTL},
		{"publisheronly t1 one hour", "robot-1", &token.Options{Legacy: true, Role: token.PublisherOnly, TTL: time.Hour}, token.PublisherOnly, time.Hour},
		{"max data t1", "robot 1", &token.Options{Legacy: true, ConnectionData: strings.Repeat("&", token.MaxConnectionData)}, token.Publisher, token.DefaultTTL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := token.Options{}
			if tc.opts != nil {
				o = *tc.opts
			}
			o.Now = t0
			tok := mustNew(t, tc.sessionID, &o)
			c, err := token.Verify(tok, testKey, testSecret, t0.Add(time.Second))
			if err != nil {
				t.Fatalf("Verify: %v\ntoken: %s", err, tok)
			}
			wantFormat := token.FormatJWT
			if o.Legacy {
				wantFormat = token.FormatT1
				if !strings.HasPrefix(tok, "T1==") {
					t.Errorf("legacy token %q does not start with T1==", tok)
				}
			}
			want := token.Claims{
				APIKey:         testKey,
				SessionID:      tc.sessionID,
				Role:           tc.wantRole,
				ConnectionData: o.ConnectionData,
				CreateTime:     t0,
				ExpireTime:     t0.Add(tc.wantTTL),
				Nonce:          c.Nonce,
				Format:         wantFormat,
			}
			if *c != want {
				t.Errorf("claims:\n got %+v\nwant %+v", *c, want)
			}
			if !strings.HasPrefix(c.Nonce, "0.") || len(c.Nonce) != 18 {
				t.Errorf("nonce %q is not a 16-digit fraction like the Node SDK's", c.Nonce)
			}
			// Still valid one second before expiry.
			if _, err := token.Verify(tok, testKey, testSecret, t0.Add(tc.wantTTL-time.Second)); err != nil {
				t.Errorf("Verify just before expiry: %v", err)
			}
		})
	}
}

// TestJWTLayout pins the claim names and types to what the official SDKs write.
func TestJWTLayout(t *testing.T) {
	tok := mustNew(t, "robot-1", &token.Options{Now: t0, Role: token.Moderator})
	m := jwt.MapClaims{}
	tk, _, err := jwt.NewParser().ParseUnverified(tok, m)
	if err != nil {
		t.Fatal(err)
	}
	if tk.Header["alg"] != "HS256" || tk.Header["typ"] != "JWT" {
		t.Errorf("header %v, want alg HS256, typ JWT", tk.Header)
	}
	want := map[string]any{
		"iss": testKey, "ist": "project", "scope": "session.connect", "session_id": "robot-1",
		"role": "moderator", "initial_layout_class_list": "",
		"iat": float64(t0.Unix()), "create_time": float64(t0.Unix()),
		"exp": float64(t0.Add(24 * time.Hour).Unix()), "expire_time": float64(t0.Add(24 * time.Hour).Unix()),
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("claim %s = %#v, want %#v", k, m[k], v)
		}
	}
	if _, ok := m["nonce"].(float64); !ok {
		t.Errorf("nonce %#v is not a JSON number", m["nonce"])
	}
	if _, ok := m["connection_data"]; ok {
		t.Errorf("connection_data present without data: %#v", m["connection_data"])
	}
	if len(m) != len(want)+1 {
		t.Errorf("claims %v: want exactly %d", m, len(want)+1)
	}
}

func TestT1Layout(t *testing.T) {
	tok := mustNew(t, "robot 1", &token.Options{Now: t0, Legacy: true, ConnectionData: "name=bar"})
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(tok, "T1=="))
	if err != nil {
		t.Fatal(err)
	}
	head, d, _ := strings.Cut(string(raw), ":")
	if !strings.HasPrefix(head, "partner_id="+testKey+"&sig=") || len(head) != len("partner_id="+testKey+"&sig=")+40 {
		t.Errorf("head %q, want partner_id=%s&sig=<40 hex>", head, testKey)
	}
	// The Node SDK's order and escaping (querystring.stringify).
	wantPrefix := "session_id=robot%201&create_time=1777629600&nonce=0."
	wantSuffix := "&role=publisher&expire_time=1777716000&connection_data=name%3Dbar&initial_layout_class_list=&scope=session.connect"
	if !strings.HasPrefix(d, wantPrefix) || !strings.HasSuffix(d, wantSuffix) {
		t.Errorf("data %q\nwant %s<nonce>%s", d, wantPrefix, wantSuffix)
	}
}

func TestVerifyRefuses(t *testing.T) {
	jwtTok := mustNew(t, "robot-1", &token.Options{Now: t0, TTL: time.Hour})
	t1Tok := mustNew(t, "robot-1", &token.Options{Now: t0, TTL: time.Hour, Legacy: true})
	otherKeySession := ourSessionID(t, "999")
	now := t0.Add(time.Minute)
	hs := jwt.SigningMethodHS256
	sec := []byte(testSecret)

	tests := []struct {
		name    string
		tok     string
		key     string
		now     time.Time
		want    error
		wantMsg string
	}{
		{"expired jwt", jwtTok, testKey, t0.Add(2 * time.Hour), token.ErrExpired,
			"token expired at 2026-05-01T11:00:00Z (server time 2026-05-01T12:00:00Z)"},
		{"expired jwt at the exact second", jwtTok, testKey, t0.Add(time.Hour), token.ErrExpired, "token expired at 2026-05-01T11:00:00Z"},
		{"expired t1", t1Tok, testKey, t0.Add(2 * time.Hour), token.ErrExpired, "token expired at 2026-05-01T11:00:00Z"},
		{"jwt wrong secret", mustSignWith(t, "robot-1", "another-secret", false), testKey, now, token.ErrSignature, "token signature does not match"},
		{"t1 wrong secret", mustSignWith(t, "robot-1", "another-secret", true), testKey, now, token.ErrSignature, "token signature does not match"},
		{"jwt wrong key", jwtTok, "999", now, token.ErrWrongKey, `token signed for api key "123456", server has "999"`},
		{"t1 wrong key", t1Tok, "999", now, token.ErrWrongKey, `token signed for api key "123456", server has "999"`},
		{"jwt tampered payload", tamperJWT(t, jwtTok, `"publisher"`, `"moderator"`), testKey, now, token.ErrSignature, "signature"},
		{"jwt tampered signature", jwtTok[:len(jwtTok)-2] + flip(jwtTok[len(jwtTok)-2:]), testKey, now, token.ErrSignature, "signature"},
		{"t1 tampered data", tamperT1(t, t1Tok, "role=publisher", "role=moderator"), testKey, now, token.ErrSignature, "signature"},
		// T1 signs only the data after ':', so partner_id is bound to the key by the
		// secret alone; a changed partner_id is refused as another project's token.
		{"t1 tampered partner", tamperT1(t, t1Tok, "partner_id="+testKey, "partner_id=999"), testKey, now, token.ErrWrongKey, `api key "999", server has "123456"`},
		{"t1 odd-length sig", tamperT1(t, t1Tok, ":", "0:"), testKey, now, token.ErrMalformed, "not hex"},
		{"alg none", noneToken(t, sdkClaims("robot-1")), testKey, now, token.ErrAlgorithm, `token algorithm "none" is not accepted, want HS256`},
		{"alg none with signature", noneToken(t, sdkClaims("robot-1")) + "c2ln", testKey, now, token.ErrAlgorithm, `"none"`},
		{"alg HS512", signJWT(t, jwt.SigningMethodHS512, sec, sdkClaims("robot-1")), testKey, now, token.ErrAlgorithm, `"HS512"`},
		{"alg HS384", signJWT(t, jwt.SigningMethodHS384, sec, sdkClaims("robot-1")), testKey, now, token.ErrAlgorithm, `"HS384"`},
		{"alg unknown", rawJWT(`{"alg":"XX256","typ":"JWT"}`, `{"iss":"123456"}`, "sig"), testKey, now, token.ErrAlgorithm, "XX256"},
		{"alg missing", rawJWT(`{"typ":"JWT"}`, `{"iss":"123456"}`, "sig"), testKey, now, token.ErrAlgorithm, "want HS256"},
		{"empty", "", testKey, now, token.ErrMalformed, "token is empty"},
		{"garbage", "hello", testKey, now, token.ErrMalformed, "neither a t1 token"},
		{"too long", strings.Repeat("a", token.MaxTokenLen+1), testKey, now, token.ErrMalformed, "bytes, more than"},
		{"jwt bad base64", "a.b.c", testKey, now, token.ErrMalformed, "not a valid jwt"},
		{"jwt claims not object", rawJWT(`{"alg":"HS256"}`, `[1]`, "x"), testKey, now, token.ErrMalformed, "not a valid jwt"},
		{"t1 bad base64", "T1==!!!", testKey, now, token.ErrMalformed, "not base64"},
		{"t1 no colon", "T1==" + base64.StdEncoding.EncodeToString([]byte("partner_id=1&sig=00")), testKey, now, token.ErrMalformed, "no ':'"},
		{"t1 no partner", "T1==" + base64.StdEncoding.EncodeToString([]byte("sig=00:a=b")), testKey, now, token.ErrMalformed, "lacks partner_id"},
		{"jwt no iss", signJWT(t, hs, sec, with(sdkClaims("robot-1"), "iss", nil)), testKey, now, token.ErrMalformed, "no iss"},
		{"jwt iss is object", signJWT(t, hs, sec, with(sdkClaims("robot-1"), "iss", map[string]any{})), testKey, now, token.ErrMalformed, `claim "iss" is an object`},
		{"jwt no scope", signJWT(t, hs, sec, with(sdkClaims("robot-1"), "scope", nil)), testKey, now, token.ErrScope, "no scope"},
		{"jwt wrong scope", signJWT(t, hs, sec, with(sdkClaims("robot-1"), "scope", "account.admin")), testKey, now, token.ErrScope, `scope is "account.admin"`},
		{"jwt wrong ist", signJWT(t, hs, sec, with(sdkClaims("robot-1"), "ist", "account")), testKey, now, token.ErrScope, `ist is "account"`},
		{"t1 wrong scope", t1(testKey, testSecret, "session_id=s&expire_time=1777633200&scope=x"), testKey, now, token.ErrScope, `scope is "x"`},
		{"jwt unknown role", signJWT(t, hs, sec, with(sdkClaims("robot-1"), "role", "admin")), testKey, now, token.ErrRole, `role "admin" is not one of`},
		{"jwt role wrong case", signJWT(t, hs, sec, with(sdkClaims("robot-1"), "role", "Moderator")), testKey, now, token.ErrRole, `"Moderator"`},
		{"t1 unknown role", t1(testKey, testSecret, "session_id=s&expire_time=1777633200&role=root"), testKey, now, token.ErrRole, `"root"`},
		{"jwt no session", signJWT(t, hs, sec, with(sdkClaims("robot-1"), "session_id", nil)), testKey, now, token.ErrMalformed, "no session_id"},
		{"jwt session control char", signJWT(t, hs, sec, with(sdkClaims("robot-1"), "session_id", "a\nb")), testKey, now, token.ErrMalformed, "control character"},
		{"jwt session of another key", signJWT(t, hs, sec, with(sdkClaims(otherKeySession))), testKey, now, token.ErrWrongKey,
			`of api key "999", server has "123456"`},
		{"t1 session of another key", t1(testKey, testSecret, "session_id="+otherKeySession+"&expire_time=1777633200"), testKey, now, token.ErrWrongKey, `api key "999"`},
		{"jwt session of opentok project", signJWT(t, hs, sec, with(sdkClaims(opentokSessionID))), testKey, now, token.ErrWrongKey, `api key "45328742"`},
		{"jwt data too long", signJWT(t, hs, sec, with(sdkClaims("robot-1"), "connection_data", strings.Repeat("x", 1025))), testKey, now, token.ErrConnectionData,
			"1025 UTF-16 code units"},
		{"jwt no expiry", signJWT(t, hs, sec, with(sdkClaims("robot-1"), "exp", nil, "expire_time", nil)), testKey, now, token.ErrMalformed, "no expiry"},
		{"jwt exp later but expire_time passed", signJWT(t, hs, sec, with(sdkClaims("robot-1"), "expire_time", t0.Unix()+30)), testKey, now, token.ErrExpired,
			"expired at 2026-05-01T10:00:30Z"},
		{"jwt expire_time later but exp passed", signJWT(t, hs, sec, with(sdkClaims("robot-1"), "exp", t0.Unix()+30)), testKey, now, token.ErrExpired, "10:00:30Z"},
		{"jwt only exp, passed", signJWT(t, hs, sec, with(sdkClaims("robot-1"), "expire_time", nil, "exp", t0.Unix())), testKey, now, token.ErrExpired, "10:00:00Z"},
		{"jwt exp not a number", signJWT(t, hs, sec, with(sdkClaims("robot-1"), "exp", "soon")), testKey, now, token.ErrMalformed, `claim "exp"`},
		{"jwt exp negative", signJWT(t, hs, sec, with(sdkClaims("robot-1"), "exp", -5)), testKey, now, token.ErrMalformed, "out of range"},
		{"jwt exp huge", signJWT(t, hs, sec, with(sdkClaims("robot-1"), "exp", 1e300)), testKey, now, token.ErrMalformed, "not a number in range"},
		{"jwt lifetime 31 days", signJWT(t, hs, sec, with(sdkClaims("robot-1"), "exp", t0.Add(31*24*time.Hour).Unix(), "expire_time", t0.Add(31*24*time.Hour).Unix())),
			testKey, now, token.ErrLifetime, "longer than the 30 days"},
		{"jwt expires 31 days from now, no create time", signJWT(t, hs, sec, jwt.MapClaims{
			"iss": testKey, "scope": "session.connect", "session_id": "s", "exp": now.Add(31 * 24 * time.Hour).Unix()}),
			testKey, now, token.ErrLifetime, "more than the 30 days"},
		{"jwt created after it expires", signJWT(t, hs, sec, with(sdkClaims("robot-1"), "create_time", t0.Add(25*time.Hour).Unix())), testKey, now, token.ErrMalformed,
			"before it was created"},
		{"t1 duplicate field", t1(testKey, testSecret, "session_id=s&expire_time=1777633200&role=publisher&role=moderator"), testKey, now, token.ErrMalformed, `"role" appears 2 times`},
		{"t1 bad time", t1(testKey, testSecret, "session_id=s&expire_time=tomorrow"), testKey, now, token.ErrMalformed, `"expire_time"`},
		{"t1 bad escape", t1(testKey, testSecret, "session_id=%zz&expire_time=1777633200"), testKey, now, token.ErrMalformed, "t1 token data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := token.Verify(tc.tok, tc.key, testSecret, tc.now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %+v, %v; want %v", c, err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not say %q", err, tc.wantMsg)
			}
			t.Logf("%v", err)
		})
	}
}

// TestVerifyLiberal: inputs the official SDKs produce, or plausibly could, that New
// never writes.
func TestVerifyLiberal(t *testing.T) {
	hs := jwt.SigningMethodHS256
	sec := []byte(testSecret)
	now := t0.Add(time.Minute)
	tests := []struct {
		name string
		tok  string
		want token.Claims
	}{
		{"node sdk claims", signJWT(t, hs, sec, sdkClaims("robot-1")), token.Claims{
			APIKey: testKey, SessionID: "robot-1", Role: token.Publisher, Nonce: "0.1341592653589793",
			CreateTime: t0, ExpireTime: t0.Add(24 * time.Hour), Format: token.FormatJWT}},
		{"iss as a number", signJWT(t, hs, sec, with(sdkClaims("robot-1"), "iss", 123456)), token.Claims{
			APIKey: testKey, SessionID: "robot-1", Role: token.Publisher, Nonce: "0.1341592653589793",
			CreateTime: t0, ExpireTime: t0.Add(24 * time.Hour), Format: token.FormatJWT}},
		{"nonce as a string, no ist, role absent", signJWT(t, hs, sec, with(sdkClaims("robot-1"), "nonce", "abc", "ist", nil, "role", nil)), token.Claims{
			APIKey: testKey, SessionID: "robot-1", Role: token.Publisher, Nonce: "abc",
			CreateTime: t0, ExpireTime: t0.Add(24 * time.Hour), Format: token.FormatJWT}},
		{"only exp and iat, float times", signJWT(t, hs, sec, with(sdkClaims("robot-1"), "expire_time", nil, "create_time", nil,
			"exp", float64(t0.Unix())+3600.9, "iat", float64(t0.Unix())+0.5)), token.Claims{
			APIKey: testKey, SessionID: "robot-1", Role: token.Publisher, Nonce: "0.1341592653589793",
			CreateTime: t0, ExpireTime: t0.Add(time.Hour), Format: token.FormatJWT}},
		{"times as digit strings", signJWT(t, hs, sec, with(sdkClaims("robot-1"), "expire_time", "1777633200", "exp", nil)), token.Claims{
			APIKey: testKey, SessionID: "robot-1", Role: token.Publisher, Nonce: "0.1341592653589793",
			CreateTime: t0, ExpireTime: t0.Add(time.Hour), Format: token.FormatJWT}},
		{"1000 two-byte characters of data", signJWT(t, hs, sec, with(sdkClaims("robot-1"), "connection_data", strings.Repeat("é", 1000))), token.Claims{
			APIKey: testKey, SessionID: "robot-1", Role: token.Publisher, Nonce: "0.1341592653589793", ConnectionData: strings.Repeat("é", 1000),
			CreateTime: t0, ExpireTime: t0.Add(24 * time.Hour), Format: token.FormatJWT}},
		{"t1 without scope, create time or nonce", t1(testKey, testSecret, "session_id=robot%201&expire_time=1777633200&role=subscriber&connection_data=a+b"), token.Claims{
			APIKey: testKey, SessionID: "robot 1", Role: token.Subscriber, ConnectionData: "a b",
			ExpireTime: t0.Add(time.Hour), Format: token.FormatT1}},
		{"t1 without base64 padding", strings.TrimRight(t1(testKey, testSecret, "session_id=s&expire_time=1777633200"), "="), token.Claims{
			APIKey: testKey, SessionID: "s", Role: token.Publisher, ExpireTime: t0.Add(time.Hour), Format: token.FormatT1}},
		{"t1 upper-case hex signature", upperSig(t, t1(testKey, testSecret, "session_id=s&expire_time=1777633200")), token.Claims{
			APIKey: testKey, SessionID: "s", Role: token.Publisher, ExpireTime: t0.Add(time.Hour), Format: token.FormatT1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := token.Verify(tc.tok, testKey, testSecret, now)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if *c != tc.want {
				t.Errorf("claims:\n got %+v\nwant %+v", *c, tc.want)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	otherKeySession := ourSessionID(t, "999")
	tests := []struct {
		name       string
		key, sec   string
		sessionID  string
		opts       *token.Options
		want       error // nil: only the message is checked
		wantSubstr string
	}{
		{"empty key", "", testSecret, "s", nil, nil, "api key is empty"},
		{"key with ampersand", "a&b", testSecret, "s", nil, nil, `character '&'`},
		{"key with tilde", "a~b", testSecret, "s", nil, nil, `character '~'`},
		{"empty secret", testKey, "", "s", nil, nil, "api secret is empty"},
		{"empty session", testKey, testSecret, "", nil, nil, "session id is empty"},
		{"session too long", testKey, testSecret, strings.Repeat("s", token.MaxSessionID+1), nil, nil, "more than the 256 allowed"},
		{"session with newline", testKey, testSecret, "a\nb", nil, nil, "control character"},
		{"session not utf-8", testKey, testSecret, "a\xffb", nil, nil, "not valid UTF-8"},
		{"session of another key", testKey, testSecret, otherKeySession, nil, token.ErrWrongKey, `belongs to api key "999", not "123456"`},
		{"bad role", testKey, testSecret, "s", &token.Options{Role: "admin"}, token.ErrRole, `role "admin"`},
		{"data too long", testKey, testSecret, "s", &token.Options{ConnectionData: strings.Repeat("é", 513)}, token.ErrConnectionData, "1026 bytes, more than the 1024"},
		{"ttl too long", testKey, testSecret, "s", &token.Options{TTL: token.MaxTTL + time.Second}, token.ErrLifetime, "longer than the 30 days"},
		{"ttl negative", testKey, testSecret, "s", &token.Options{TTL: -time.Hour}, nil, "shorter than one second"},
		{"ttl sub-second", testKey, testSecret, "s", &token.Options{TTL: 500 * time.Millisecond}, nil, "shorter than one second"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := token.New(tc.key, tc.sec, tc.sessionID, tc.opts)
			if err == nil {
				t.Fatalf("New = %q, want an error", tok)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v is not %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.wantSubstr) || !strings.HasPrefix(err.Error(), "mint token: ") {
				t.Errorf("error %q does not say mint token: …%s", err, tc.wantSubstr)
			}
		})
	}
}

func TestRoles(t *testing.T) {
	tests := []struct {
		in                 string
		want               token.Role
		signal, disconnect bool
	}{
		{"", token.Publisher, true, false},
		{"publisher", token.Publisher, true, false},
		{"subscriber", token.Subscriber, true, false},
		{"moderator", token.Moderator, true, true},
		{"publisheronly", token.PublisherOnly, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			r, err := token.ParseRole(tc.in)
			if err != nil || r != tc.want {
				t.Fatalf("ParseRole(%q) = %q, %v; want %q", tc.in, r, err, tc.want)
			}
			if r.CanSignal() != tc.signal || r.CanForceDisconnect() != tc.disconnect {
				t.Errorf("%s: CanSignal %v CanForceDisconnect %v, want %v %v", r, r.CanSignal(), r.CanForceDisconnect(), tc.signal, tc.disconnect)
			}
		})
	}
	for _, bad := range []string{"admin", "Publisher", " publisher", "publisher-only"} {
		if r, err := token.ParseRole(bad); !errors.Is(err, token.ErrRole) {
			t.Errorf("ParseRole(%q) = %q, %v; want ErrRole", bad, r, err)
		}
	}
	if token.Role("admin").CanSignal() {
		t.Error("an unknown role may signal")
	}
}

func mustSignWith(t *testing.T, sessionID, secret string, legacy bool) string {
	t.Helper()
	tok, err := token.New(testKey, secret, sessionID, &token.Options{Now: t0, Legacy: legacy})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tamperJWT replaces old with new in the decoded payload and re-encodes it, keeping
// the original header and signature.
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

func upperSig(t *testing.T, tok string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(tok, "T1=="))
	if err != nil {
		t.Fatal(err)
	}
	pre, rest, _ := strings.Cut(string(raw), "sig=")
	sig, d, _ := strings.Cut(rest, ":")
	return "T1==" + base64.StdEncoding.EncodeToString([]byte(pre+"sig="+strings.ToUpper(sig)+":"+d))
}

func noneToken(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	return signJWT(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, c)
}

func rawJWT(header, claims, sig string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(claims)) + "." + enc([]byte(sig))
}

// flip changes the last base64url characters so the signature differs.
func flip(s string) string {
	b := []byte(s)
	for i := range b {
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
	}
	return string(b)
}
