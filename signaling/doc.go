// Package signaling is the session protocol of teleop: typed string signals
// between the connections of a session, with the semantics of the Vonage
// Video (OpenTok) signaling API. wire.go holds the frames, limits, codes and
// validation shared by the relay (package relay) and the Go client in this
// package (Dial, Session.Signal, handlers, reconnection with resume).
// docs/signaling-protocol.md is the normative description of the wire.
package signaling
