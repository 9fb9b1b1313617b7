// Package relay is the signaling relay: sessions of connections that exchange
// typed string signals with the semantics of the Vonage Video (OpenTok)
// signaling API, over the session protocol of docs/signaling-protocol.md, plus
// OpenTok's REST API for backends (docs/rest-api.md).
//
// A Server is an http.Handler and a Close method; it never owns a listener
// (`teleop server` wraps it in an http.Server, tests mount it on httptest).
// Each WebSocket is a sock with one reader (the HTTP handler's goroutine) and
// exactly one writer goroutine; a conn is a session membership that outlives
// its sock for the grace period; delivery appends to the receiver's replay
// ring and its sock's bounded queue and never blocks.
//
// Lock order: session.mu → conn.mu → sock.mu; Server.mu and Server.keysMu are
// leaves (never held while taking another lock).
package relay
