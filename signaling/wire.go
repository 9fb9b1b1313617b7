package signaling

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Limits of the signaling API. They are those of the Vonage Video (OpenTok)
// signaling API; docs/signaling-protocol.md is the normative text.
const (
	MaxTypeLen        = 128  // characters of A-Z a-z 0-9 - _ ~
	MaxDataBytes      = 8192 // bytes of UTF-8
	MaxSignalIDLen    = 64   // client-chosen id of a send
	MaxConnectionData = 1024 // bytes, as the official SDKs enforce

	// MaxFrameBytes bounds one client → relay WebSocket message. A signal
	// frame with maximal type and data, all escaped, fits. Relay → client
	// frames (a welcome with many connections) can be larger.
	MaxFrameBytes = 64 << 10

	// MaxRememberedSends is how many recent send ids the relay remembers per
	// connection to answer a resent id without delivering twice; a client
	// keeps at most this many sends awaiting a result.
	MaxRememberedSends = 256
)

// Ops name the frames of the session protocol.
const (
	// client → relay
	OpSignal          = "signal"
	OpPing            = "ping"
	OpDisconnect      = "disconnect"
	OpForceDisconnect = "forceDisconnect"

	// relay → client
	OpWelcome             = "welcome"
	OpResult              = "result"
	OpPong                = "pong"
	OpConnectionCreated   = "connectionCreated"
	OpConnectionDestroyed = "connectionDestroyed"
	OpError               = "error"
	OpDisconnected        = "disconnected"
	// OpSignal is also the relay → client frame of a delivered signal.
)

// Codes are the completion codes of a send. They are OpenTok's.
const (
	CodeOK              = 200
	CodeInvalid         = 400 // a property is invalid, or the frame is malformed
	CodeUnauthorized    = 401 // the token was refused (connect only)
	CodeForbidden       = 403 // the sender's role may not do this
	CodeNotFound        = 404 // the `to` connection is not in the session
	CodeTooLarge        = 413 // type longer than 128 or data larger than 8 KB
	CodeRateLimited     = 429 // over the per-connection signal rate
	CodeNotConnected    = 500 // the client is not connected (raised by clients)
	CodeSessionFull     = 503 // connect only: the session is at its connection limit
	CodeUnexpectedReply = 2001
)

// Reasons a connection leaves a session (connectionDestroyed.reason,
// disconnected.reason).
const (
	ReasonClientDisconnected  = "clientDisconnected"
	ReasonForceDisconnected   = "forceDisconnected"
	ReasonNetworkDisconnected = "networkDisconnected"
)

// WebSocket close codes the relay uses. 4000-4999 are application codes;
// a client must not reconnect after one marked permanent.
const (
	CloseProtocolError   = 4400 // a frame the relay cannot accept at all (binary)
	CloseTokenRefused    = 4401 // permanent: the token was refused; the reason says why
	CloseForbidden       = 4403 // permanent: the role may not connect
	CloseForceDisconnect = 4410 // permanent: a moderator or the REST API removed this connection
	CloseSessionFull     = 4429 // the session is at its connection limit; retry later
	CloseSuperseded      = 4409 // permanent for this socket: the connection resumed on another socket
	ClosePingTimeout     = 4408 // no pong within the ping timeout (the client rarely sees it)
	CloseSlowConsumer    = 4008 // the client did not read fast enough; resume to catch up
)

// PermanentClose reports whether a client must not reconnect after the
// relay closed its socket with code.
func PermanentClose(code int) bool {
	switch code {
	case CloseTokenRefused, CloseForbidden, CloseForceDisconnect, CloseSuperseded:
		return true
	}
	return false
}

// Connection describes one member of a session as every client sees it.
type Connection struct {
	ConnectionID string `json:"connectionId"`
	CreationTime int64  `json:"creationTime"` // Unix milliseconds
	Data         string `json:"data"`         // the token's connection data
}

// Frame is any frame of the session protocol in either direction. Which
// fields are present depends on Op; see docs/signaling-protocol.md.
// An absent type or data, JSON null and "" all mean the empty string.
type Frame struct {
	Op string `json:"op"`

	// signal (both directions), result, ping/pong, forceDisconnect
	ID   string `json:"id,omitempty"`
	Type string `json:"type,omitempty"`
	Data string `json:"data,omitempty"`
	To   string `json:"to,omitempty"`

	// client → relay signal: how long the client held the signal before
	// this send (reconnect queue), so receivers can judge its age.
	QueuedMs int64 `json:"queuedMs,omitempty"`
	// client → relay signal: answer with a result only when the code is
	// not 200 (a ping after it confirms the rest; see Session.Post).
	Quiet bool `json:"quiet,omitempty"`

	// relay → client signal
	From  *string `json:"from,omitempty"` // connection ID; absent or null when sent over REST
	AgeMs int64   `json:"ageMs,omitempty"`

	// every relay → client event (signal, connectionCreated,
	// connectionDestroyed) carries the connection's delivery sequence.
	Seq uint64 `json:"seq,omitempty"`

	// result, error
	Code    int    `json:"code,omitempty"`
	Message string `json:"message,omitempty"`

	// connectionCreated / connectionDestroyed / disconnected / forceDisconnect
	Connection   *Connection `json:"connection,omitempty"`
	Reason       string      `json:"reason,omitempty"`
	ConnectionID string      `json:"connectionId,omitempty"`

	// welcome
	SessionID   string       `json:"sessionId,omitempty"`
	Role        string       `json:"role,omitempty"`
	Connections []Connection `json:"connections,omitempty"`
	ResumeKey   string       `json:"resumeKey,omitempty"`
	Resumed     bool         `json:"resumed,omitempty"`
	Missed      uint64       `json:"missed,omitempty"`
	// The connection resumed on another node of a cluster, whose replay
	// buffer was not handed over: events after last may have been lost
	// and their number is unknown (docs/cluster.md).
	MissedUnknown bool    `json:"missedUnknown,omitempty"`
	Limits        *Limits `json:"limits,omitempty"`
}

// Limits is what the relay tells a client in its welcome.
type Limits struct {
	MaxTypeLen     int     `json:"maxTypeLength"`
	MaxDataBytes   int     `json:"maxDataBytes"`
	RatePerSec     float64 `json:"ratePerSecond"`
	RateBurst      int     `json:"rateBurst"`
	PingIntervalMs int64   `json:"pingIntervalMs"`
	GraceMs        int64   `json:"graceMs"`
	ReplayFrames   int     `json:"replayFrames"`
}

// Str returns a pointer to s, for Frame.From.
func Str(s string) *string { return &s }

// Deref returns *p, or "" for nil.
func Deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// Error is a failed send or connect: the relay's code and reason.
type Error struct {
	Code    int
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("signaling error %d", e.Code)
	}
	return fmt.Sprintf("signaling error %d: %s", e.Code, e.Message)
}

// Is lets errors.Is match on the code: errors.Is(err, &Error{Code: 429}).
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code
}

// ValidType reports whether t is a valid signal type: at most 128 characters,
// each of A-Z a-z 0-9 - _ ~. The empty type is valid.
func ValidType(t string) bool {
	if len(t) > MaxTypeLen {
		return false
	}
	for i := 0; i < len(t); i++ {
		if !typeChar[t[i]] {
			return false
		}
	}
	return true
}

var typeChar = func() (tab [256]bool) {
	for c := '0'; c <= '9'; c++ {
		tab[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		tab[c] = true
		tab[c-'a'+'A'] = true
	}
	tab['-'], tab['_'], tab['~'] = true, true, true
	return tab
}()

// CheckSignal validates a signal's type and data as the relay does and
// returns nil or an *Error with the code the relay would answer.
func CheckSignal(typ, data string) error {
	if len(typ) > MaxTypeLen {
		return &Error{Code: CodeTooLarge, Message: fmt.Sprintf("type is %d characters, the limit is %d", len(typ), MaxTypeLen)}
	}
	if !ValidType(typ) {
		return &Error{Code: CodeInvalid, Message: "type may contain only A-Z a-z 0-9 - _ ~"}
	}
	if len(data) > MaxDataBytes {
		return &Error{Code: CodeTooLarge, Message: fmt.Sprintf("data is %d bytes, the limit is %d", len(data), MaxDataBytes)}
	}
	if !utf8.ValidString(data) {
		return &Error{Code: CodeInvalid, Message: "data is not valid UTF-8"}
	}
	return nil
}

// DecodeFrame parses one text frame. It accepts only a JSON object with a
// string "op"; it does not judge whether the op is known or its fields are
// right for it (the relay and the client do).
func DecodeFrame(b []byte) (*Frame, error) {
	if len(b) > MaxFrameBytes {
		return nil, &Error{Code: CodeTooLarge, Message: fmt.Sprintf("frame is %d bytes, the limit is %d", len(b), MaxFrameBytes)}
	}
	var f Frame
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, &Error{Code: CodeInvalid, Message: "malformed frame: " + err.Error()}
	}
	if f.Op == "" {
		return nil, &Error{Code: CodeInvalid, Message: `frame has no "op"`}
	}
	return &f, nil
}
