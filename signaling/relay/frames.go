package relay

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/teleop/teleop/signaling"
)

// evKind says how the writer turns an event into a frame.
type evKind uint8

const (
	evRaw       evKind = iota // body is the whole frame (result, pong, error, welcome…)
	evSignal                  // {"op":"signal","seq":N<body>[,"ageMs":N]}
	evCreated                 // {"op":"connectionCreated","seq":N<body>}
	evDestroyed               // {"op":"connectionDestroyed","seq":N<body>}
)

// An event is one frame for one or more receivers. Sequenced events are
// shared by every receiver of a broadcast and hold no per-receiver state; the
// receiver's seq travels beside it in an item, and the age of a signal is
// computed by the writer when it writes it. Immutable after construction.
type event struct {
	kind     evKind
	body     []byte // evRaw: the frame; others: the fields after "seq", without the closing brace
	recv     int64  // signals: clock time (Unix ns) when the relay received it
	queuedMs int64  // signals: how long the sender held it before sending
}

// size is what an event counts against a replay buffer's byte limit.
func (e *event) size() int { return len(e.body) + 48 }

// item is one queued frame for one socket.
type item struct {
	seq uint64 // 0 for evRaw
	ev  *event
}

var opPrefix = [...]string{
	evSignal:    `{"op":"signal","seq":`,
	evCreated:   `{"op":"connectionCreated","seq":`,
	evDestroyed: `{"op":"connectionDestroyed","seq":`,
}

// appendFrame appends the frame for it to b, as written at time now (Unix ns).
func appendFrame(b []byte, it item, now int64) []byte {
	e := it.ev
	if e.kind == evRaw {
		return append(b, e.body...)
	}
	b = append(b, opPrefix[e.kind]...)
	b = strconv.AppendUint(b, it.seq, 10)
	b = append(b, e.body...)
	if e.kind == evSignal {
		held := (now - e.recv) / 1e6
		if held < 0 {
			held = 0
		}
		if age := e.queuedMs + held; age > 0 {
			b = append(b, `,"ageMs":`...)
			b = strconv.AppendInt(b, age, 10)
		}
	}
	return append(b, '}')
}

// newSignalEvent builds the shared part of a delivered signal. from is nil
// for a signal sent over the REST API; to is "" for a broadcast.
func newSignalEvent(typ, data string, from *conn, to string, recv, queuedMs int64) *event {
	b := make([]byte, 0, 32+len(typ)+len(data)+len(data)/8+96)
	if typ != "" {
		b = append(b, `,"type":`...)
		b = appendJSONString(b, typ)
	}
	if data != "" {
		b = append(b, `,"data":`...)
		b = appendJSONString(b, data)
	}
	if from != nil {
		b = append(b, `,"from":`...)
		b = appendJSONString(b, from.id)
	}
	if to != "" {
		b = append(b, `,"to":`...)
		b = appendJSONString(b, to)
	}
	return &event{kind: evSignal, body: b, recv: recv, queuedMs: queuedMs}
}

// newPresenceEvent builds connectionCreated (reason "") or connectionDestroyed.
func newPresenceEvent(c *conn, reason string) *event {
	b := make([]byte, 0, len(c.info)+48)
	b = append(b, `,"connection":`...)
	b = append(b, c.info...)
	kind := evCreated
	if reason != "" {
		kind = evDestroyed
		b = append(b, `,"reason":`...)
		b = appendJSONString(b, reason)
	}
	return &event{kind: kind, body: b}
}

// appendConnection appends a Connection object as the protocol spells it.
func appendConnection(b []byte, id string, creationTime int64, data string) []byte {
	b = append(b, `{"connectionId":`...)
	b = appendJSONString(b, id)
	b = append(b, `,"creationTime":`...)
	b = strconv.AppendInt(b, creationTime, 10)
	b = append(b, `,"data":`...)
	b = appendJSONString(b, data)
	return append(b, '}')
}

// resultFrame is {"op":"result","id":…,"code":…[,"message":…]}.
func resultFrame(id string, code int, msg string) *event {
	b := make([]byte, 0, 40+len(id)+len(msg))
	b = append(b, `{"op":"result","id":`...)
	b = appendJSONString(b, id)
	b = append(b, `,"code":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	if msg != "" && code != signaling.CodeOK {
		b = append(b, `,"message":`...)
		b = appendJSONString(b, msg)
	}
	return &event{kind: evRaw, body: append(b, '}')}
}

// errorFrame is {"op":"error","code":…,"message":…}.
func errorFrame(code int, msg string) *event {
	b := make([]byte, 0, 40+len(msg))
	b = append(b, `{"op":"error","code":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, msg)
	return &event{kind: evRaw, body: append(b, '}')}
}

// pongFrame answers a ping op.
func pongFrame(id string) *event {
	b := make([]byte, 0, 24+len(id))
	b = append(b, `{"op":"pong"`...)
	if id != "" {
		b = append(b, `,"id":`...)
		b = appendJSONString(b, id)
	}
	return &event{kind: evRaw, body: append(b, '}')}
}

// disconnectedFrame tells a connection it is being removed.
func disconnectedFrame(reason string) *event {
	b := append([]byte(`{"op":"disconnected","reason":`), appendJSONString(nil, reason)...)
	return &event{kind: evRaw, body: append(b, '}')}
}

// jsonFrame encodes a rare frame (welcome) with encoding/json.
func jsonFrame(f *signaling.Frame) *event {
	b, err := json.Marshal(f)
	if err != nil {
		// A Frame holds only strings, numbers and slices of them.
		panic("relay: encode frame: " + err.Error())
	}
	return &event{kind: evRaw, body: b}
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. It escapes what JSON requires
// (quote, backslash, control characters) plus U+2028/U+2029 as encoding/json
// does, and replaces invalid UTF-8 with U+FFFD, so its output always decodes
// back to s when s is valid UTF-8.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if i = plainPrefix(s, i); i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf { // a quote, a backslash or a control character
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += n
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += n
			start = i
			continue
		}
		i += n
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
