package token

import (
	"errors"
	"fmt"
)

// Reasons a token, a session ID or a minting request is refused. Errors returned by
// this package carry one of these (test with errors.Is) and a sentence saying exactly
// what was wrong, e.g. `token expired at 2026-05-01T10:00:00Z (server time …)`.
var (
	ErrMalformed      = errors.New("malformed token")
	ErrAlgorithm      = errors.New("token signing algorithm not accepted")
	ErrSignature      = errors.New("token signature does not match")
	ErrWrongKey       = errors.New("token is for another api key")
	ErrExpired        = errors.New("token expired")
	ErrNotYetValid    = errors.New("token not yet valid")
	ErrLifetime       = errors.New("token lifetime too long")
	ErrScope          = errors.New("token scope not accepted")
	ErrRole           = errors.New("invalid role")
	ErrConnectionData = errors.New("connection data too long")
	ErrSessionID      = errors.New("not an opentok session id")
)

// detailError is a refusal: Error() is the detailed sentence, errors.Is matches the
// sentinel kind, and a cause given with %w stays reachable too.
type detailError struct {
	kind error
	err  error
}

func (e *detailError) Error() string   { return e.err.Error() }
func (e *detailError) Unwrap() []error { return []error{e.kind, e.err} }

// errorf builds a refusal of the given kind; format follows fmt.Errorf (so %w works).
func errorf(kind error, format string, args ...any) error {
	return &detailError{kind: kind, err: fmt.Errorf(format, args...)}
}
