// Package token mints and verifies OpenTok-compatible credentials: session tokens
// (JWT HS256 by default, legacy "T1==" on request), OpenTok-format session IDs, and
// the short-lived project JWTs that authenticate REST calls (X-OPENTOK-AUTH).
// New/Verify speak the exact claim layout of the official server SDKs, so tokens from
// the opentok npm package verify here and ours connect elsewhere; every refusal is a sentinel error.
package token
