package token

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"strconv"
	"strings"
)

// t1Prefix starts every legacy token.
const t1Prefix = "T1=="

// mintT1 writes the legacy format the SDKs still offer (opentok-token):
//
//	"T1==" + base64("partner_id=<apiKey>&sig=<hex HMAC-SHA1(secret, D)>:" + D)
//
// with D the URL-encoded fields in the Node SDK's order.
func mintT1(f fields, secret string) string {
	var d strings.Builder
	add := func(k, v string) {
		if d.Len() > 0 {
			d.WriteByte('&')
		}
		d.WriteString(k)
		d.WriteByte('=')
		d.WriteString(queryEscape(v))
	}
	add("session_id", f.sessionID)
	add("create_time", strconv.FormatInt(f.create, 10))
	add("nonce", f.nonce)
	add("role", string(f.role))
	add("expire_time", strconv.FormatInt(f.expire, 10))
	if f.data != "" {
		add("connection_data", f.data)
	}
	add("initial_layout_class_list", "")
	add("scope", ScopeSessionConnect)
	data := d.String()
	raw := "partner_id=" + f.apiKey + "&sig=" + hex.EncodeToString(signT1(secret, data)) + ":" + data
	return t1Prefix + base64.StdEncoding.EncodeToString([]byte(raw))
}

// queryEscape escapes like Node's querystring (space as %20); url.ParseQuery reads both.
func queryEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

func signT1(secret, data string) []byte {
	h := hmac.New(sha1.New, []byte(secret))
	h.Write([]byte(data))
	return h.Sum(nil)
}

// parseT1 verifies a legacy token and collects its fields. As with JWTs, the api key
// (partner_id) is compared before the signature so the error says which is wrong.
func parseT1(tok, apiKey, apiSecret string) (*parsed, error) {
	b64 := tok[len(t1Prefix):]
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		// Be liberal: some encoders drop the padding.
		var err2 error
		if raw, err2 = base64.RawStdEncoding.DecodeString(b64); err2 != nil {
			return nil, errorf(ErrMalformed, "t1 token is not base64 after %q: %w", t1Prefix, err)
		}
	}
	head, data, ok := strings.Cut(string(raw), ":")
	if !ok {
		return nil, errorf(ErrMalformed, "t1 token has no ':' between its signature and its data")
	}
	hv, err := url.ParseQuery(head)
	if err != nil {
		return nil, errorf(ErrMalformed, "t1 token signature part %q: %w", head, err)
	}
	partner, sig := hv.Get("partner_id"), hv.Get("sig")
	if partner == "" || sig == "" {
		return nil, errorf(ErrMalformed, "t1 token lacks partner_id or sig before ':'")
	}
	if partner != apiKey {
		return nil, errorf(ErrWrongKey, "token signed for api key %q, server has %q", partner, apiKey)
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return nil, errorf(ErrMalformed, "t1 token sig is not hex: %w", err)
	}
	if !hmac.Equal(got, signT1(apiSecret, data)) {
		return nil, errorf(ErrSignature, "token signature does not match the api secret of api key %q", apiKey)
	}

	v, err := url.ParseQuery(data)
	if err != nil {
		return nil, errorf(ErrMalformed, "t1 token data: %w", err)
	}
	for k, vs := range v {
		if len(vs) > 1 {
			return nil, errorf(ErrMalformed, "t1 token field %q appears %d times", k, len(vs))
		}
	}
	p := &parsed{
		format:    FormatT1,
		iss:       partner,
		sessionID: v.Get("session_id"),
		role:      v.Get("role"),
		data:      v.Get("connection_data"),
		nonce:     v.Get("nonce"),
	}
	// Tokens minted before scopes existed have none; those with one must be right.
	if v.Has("scope") {
		p.scope = optString{v.Get("scope"), true}
	}
	for _, t := range []struct {
		name string
		dst  *optTime
	}{
		{"create_time", &p.createTime},
		{"expire_time", &p.expireTime},
	} {
		if !v.Has(t.name) {
			continue
		}
		n, err := parseUnix(v.Get(t.name))
		if err != nil {
			return nil, errorf(ErrMalformed, "t1 token field %q: %w", t.name, err)
		}
		*t.dst = optTime{n, true}
	}
	return p, nil
}
