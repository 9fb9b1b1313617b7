package token

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"

	"github.com/golang-jwt/jwt/v5"
)

// parseJWT verifies a session JWT and collects its claims. The SDKs differ in small
// ways, so claims are read liberally: iss and nonce may be strings or numbers, times
// may be integers, floats or digit strings.
func parseJWT(tok, apiKey, apiSecret string) (*parsed, error) {
	m, err := verifyHS256(tok, apiKey, apiSecret)
	if err != nil {
		return nil, err
	}
	p := &parsed{format: FormatJWT, iss: apiKey}
	scope, err := claimString(m, "scope")
	if err != nil {
		return nil, err
	}
	if !scope.ok {
		return nil, errorf(ErrScope, "token has no scope claim, want %q", ScopeSessionConnect)
	}
	p.scope = scope
	if ist, err := claimString(m, "ist"); err != nil {
		return nil, err
	} else if ist.ok && ist.s != "project" {
		return nil, errorf(ErrScope, "token ist is %q, want \"project\"", ist.s)
	}
	for _, s := range []struct {
		name string
		dst  *string
	}{
		{"session_id", &p.sessionID},
		{"role", &p.role},
		{"connection_data", &p.data},
		{"nonce", &p.nonce},
	} {
		v, err := claimString(m, s.name)
		if err != nil {
			return nil, err
		}
		*s.dst = v.s
	}
	for _, t := range []struct {
		name string
		dst  *optTime
	}{
		{"iat", &p.iat},
		{"exp", &p.exp},
		{"create_time", &p.createTime},
		{"expire_time", &p.expireTime},
	} {
		if *t.dst, err = claimTime(m, t.name); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// verifyHS256 checks everything about a JWT that does not depend on what it is for:
// its shape, that it is HS256, that it was issued for apiKey and that apiSecret signed
// it. The issuer is compared before the signature so that a token from another
// project is reported as such rather than as a bad signature.
func verifyHS256(tok, apiKey, apiSecret string) (jwt.MapClaims, error) {
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithJSONNumber(),
		// Times are checked by the callers against an injected clock, with messages
		// that say which claim failed.
		jwt.WithoutClaimsValidation(),
	)
	unverified, _, err := parser.ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		if errors.Is(err, jwt.ErrTokenUnverifiable) && unverified != nil {
			return nil, errorf(ErrAlgorithm, "token algorithm %v is not accepted, want HS256", unverified.Header["alg"])
		}
		return nil, errorf(ErrMalformed, "token is not a valid jwt: %w", err)
	}
	if alg := unverified.Method.Alg(); alg != jwt.SigningMethodHS256.Alg() {
		return nil, errorf(ErrAlgorithm, "token algorithm %q is not accepted, want HS256", alg)
	}
	iss, err := claimString(unverified.Claims.(jwt.MapClaims), "iss")
	if err != nil {
		return nil, err
	}
	if !iss.ok || iss.s == "" {
		return nil, errorf(ErrMalformed, "token has no iss claim (the api key)")
	}
	if iss.s != apiKey {
		return nil, errorf(ErrWrongKey, "token signed for api key %q, server has %q", iss.s, apiKey)
	}
	verified, err := parser.ParseWithClaims(tok, jwt.MapClaims{}, func(*jwt.Token) (any, error) {
		return []byte(apiSecret), nil
	})
	if err != nil {
		if errors.Is(err, jwt.ErrTokenSignatureInvalid) {
			return nil, errorf(ErrSignature, "token signature does not match the api secret of api key %q", apiKey)
		}
		return nil, errorf(ErrMalformed, "token is not a valid jwt: %w", err)
	}
	return verified.Claims.(jwt.MapClaims), nil
}

// claimString reads a string claim; a JSON number is taken as its literal text
// (the Node SDK's nonce is a float, and iss is sometimes a number).
func claimString(m jwt.MapClaims, name string) (optString, error) {
	v, ok := m[name]
	if !ok {
		return optString{}, nil
	}
	switch v := v.(type) {
	case string:
		return optString{v, true}, nil
	case json.Number:
		return optString{string(v), true}, nil
	}
	return optString{}, errorf(ErrMalformed, "token claim %q is %s, want a string", name, jsonKind(m[name]))
}

// claimTime reads a time claim in unix seconds: an integer, a float (truncated) or a
// string of digits.
func claimTime(m jwt.MapClaims, name string) (optTime, error) {
	v, ok := m[name]
	if !ok {
		return optTime{}, nil
	}
	var text string
	switch v := v.(type) {
	case json.Number:
		text = string(v)
	case string:
		text = v
	default:
		return optTime{}, errorf(ErrMalformed, "token claim %q is %s, want a unix time", name, jsonKind(v))
	}
	t, err := parseUnix(text)
	if err != nil {
		return optTime{}, errorf(ErrMalformed, "token claim %q: %w", name, err)
	}
	return optTime{t, true}, nil
}

// parseUnix parses unix seconds written as an integer or a float.
func parseUnix(s string) (int64, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > maxUnix {
			return 0, errors.New("unix time " + s + " is out of range")
		}
		return n, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxUnix {
		return 0, errors.New("unix time " + strconv.Quote(s) + " is not a number in range")
	}
	return int64(f), nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return "an unexpected value"
}
