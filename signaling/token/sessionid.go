package token

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// NewSessionID mints a session ID in OpenTok's format,
//
//	"1_" + base64url("1~<apiKey>~<location>~<create time, unix ms>~<random>~")
//
// without padding, which the official SDKs decode to check that a session belongs to
// their api key before minting a token for it. location may be empty (OpenTok puts
// an IPv4 hint there). now zero is time.Now; rnd nil is crypto/rand.
func NewSessionID(apiKey, location string, now time.Time, rnd io.Reader) (string, error) {
	if err := checkAPIKey(apiKey); err != nil {
		return "", fmt.Errorf("new session id: %w", err)
	}
	if strings.ContainsAny(location, "~") || len(location) > 64 {
		return "", fmt.Errorf("new session id: location %q must be at most 64 bytes without '~'", location)
	}
	if now.IsZero() {
		now = time.Now()
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	b := make([]byte, 18)
	if _, err := io.ReadFull(rnd, b); err != nil {
		return "", fmt.Errorf("new session id: read random: %w", err)
	}
	// Standard base64 never contains '~', so the random part cannot break the fields.
	payload := "1~" + apiKey + "~" + location + "~" + strconv.FormatInt(now.UnixMilli(), 10) + "~" +
		base64.StdEncoding.EncodeToString(b) + "~"
	return "1_" + base64.RawURLEncoding.EncodeToString([]byte(payload)), nil
}

// ParseSessionID returns the api key embedded in an OpenTok-format session ID, decoded
// the way the official SDKs do it: drop the "N_" prefix, map '-'→'+' and '_'→'/',
// base64-decode (padding optional), split on '~' and take the second field. An ID
// that does not decode to at least "x~key~location~time" with a printable key is not
// in OpenTok format; the error wraps ErrSessionID.
func ParseSessionID(id string) (apiKey string, err error) {
	if len(id) < 3 || id[0] < '0' || id[0] > '9' || id[1] != '_' {
		return "", errorf(ErrSessionID, "session id %q does not start with a digit and '_'", id)
	}
	s := strings.NewReplacer("-", "+", "_", "/").Replace(id[2:])
	b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return "", errorf(ErrSessionID, "session id %q is not base64 after its prefix: %w", id, err)
	}
	fields := strings.Split(string(b), "~")
	if len(fields) < 4 {
		return "", errorf(ErrSessionID, "session id %q decodes to %d '~'-separated fields, want at least 4", id, len(fields))
	}
	key := fields[1]
	if key == "" {
		return "", errorf(ErrSessionID, "session id %q has an empty api key field", id)
	}
	for i := 0; i < len(key); i++ {
		if key[i] <= ' ' || key[i] > '~' {
			return "", errorf(ErrSessionID, "session id %q: api key field %q is not printable ASCII", id, key)
		}
	}
	return key, nil
}
