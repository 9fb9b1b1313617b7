package relay

import (
	"fmt"

	"github.com/gorilla/websocket"

	"github.com/teleop/teleop/signaling"
)

// handleFrame handles one message from sk's client. Every frame gets exactly
// one answer: a result (signal, forceDisconnect), a pong (ping), a
// disconnected frame (disconnect) or an error frame; except a quiet signal
// that succeeds, which gets none. Answers go out in the order of the
// frames they answer, so a pong confirms every quiet signal before its ping.
func (s *Server) handleFrame(sk *sock, typ int, b []byte) {
	if typ != websocket.TextMessage {
		sk.send(errorFrame(signaling.CodeInvalid, "binary frames are not accepted: send each frame as JSON text"))
		return
	}
	f, err := decodeFrame(b)
	if err != nil {
		msg := err.Error()
		if e, ok := err.(*signaling.Error); ok {
			msg = e.Message
		}
		sk.send(errorFrame(signaling.CodeInvalid, msg))
		return
	}
	switch f.Op {
	case signaling.OpSignal:
		s.handleSignal(sk, f)
	case signaling.OpPing:
		sk.send(pongFrame(f.ID))
	case signaling.OpForceDisconnect:
		s.handleForceDisconnect(sk, f)
	case signaling.OpDisconnect:
		c := sk.c
		s.remove(c, signaling.ReasonClientDisconnected, sk)
		sk.enqueue(item{ev: disconnectedFrame(signaling.ReasonClientDisconnected)})
		sk.shutdown(whyDisconnect)
	default:
		sk.send(errorFrame(signaling.CodeInvalid, fmt.Sprintf("unknown op %q: want signal, ping, forceDisconnect or disconnect", truncate(f.Op, 64))))
	}
}

// checkID validates the id of a send. A missing id cannot be answered with a
// result, so it gets an error frame; ok is false then.
func checkID(sk *sock, f *signaling.Frame) (ok bool) {
	if f.ID == "" {
		sk.send(errorFrame(signaling.CodeInvalid, fmt.Sprintf("%s frame has no id", f.Op)))
		return false
	}
	return true
}

// admitSend applies the result cache and the rate limit to a send. It
// returns false when the send is already answered.
func (s *Server) admitSend(sk *sock, f *signaling.Frame) bool {
	c := sk.c
	c.mu.Lock()
	if r, ok := c.results.get(f.ID); ok {
		c.mu.Unlock()
		if !f.Quiet || r.code != signaling.CodeOK {
			sk.send(resultFrame(f.ID, r.code, r.msg))
		}
		return false
	}
	allowed := c.bucket.take(s.clock.Now().UnixNano(), s.rate, s.burst)
	c.mu.Unlock()
	if !allowed {
		s.metrics.rateLimited.Inc()
		sk.send(resultFrame(f.ID, signaling.CodeRateLimited,
			fmt.Sprintf("over the rate limit of %g signals per second (burst %d)", s.rate, s.burst)))
		return false // not remembered: the same id may be retried later
	}
	return true
}

// answer remembers the outcome of send id and sends its result, unless
// the send was quiet and succeeded.
func (s *Server) answer(sk *sock, id string, code int, msg string, quiet bool) {
	c := sk.c
	c.mu.Lock()
	c.results.put(id, result{code, msg})
	c.mu.Unlock()
	if quiet && code == signaling.CodeOK {
		return
	}
	sk.send(resultFrame(id, code, msg))
}

func (s *Server) handleSignal(sk *sock, f *signaling.Frame) {
	if !checkID(sk, f) || !s.admitSend(sk, f) {
		return
	}
	c := sk.c
	code, msg := signaling.CodeOK, ""
	switch {
	case len(f.ID) > signaling.MaxSignalIDLen:
		code, msg = signaling.CodeInvalid, fmt.Sprintf("id is %d characters, the limit is %d", len(f.ID), signaling.MaxSignalIDLen)
	case !c.role.CanSignal():
		code, msg = signaling.CodeForbidden, fmt.Sprintf("role %s may not send signals", c.role)
	case f.QueuedMs < 0:
		code, msg = signaling.CodeInvalid, "queuedMs must not be negative"
	default:
		if err := signaling.CheckSignal(f.Type, f.Data); err != nil {
			e := err.(*signaling.Error)
			code, msg = e.Code, e.Message
		} else {
			code, msg = s.signal(c.sess, c, f.To, f.Type, f.Data, f.QueuedMs)
			if code == signaling.CodeOK {
				s.metrics.signalsInWS.Inc()
			}
		}
	}
	s.answer(sk, f.ID, code, msg, f.Quiet)
}

func (s *Server) handleForceDisconnect(sk *sock, f *signaling.Frame) {
	if !checkID(sk, f) || !s.admitSend(sk, f) {
		return
	}
	c := sk.c
	code, msg := signaling.CodeOK, ""
	switch {
	case len(f.ID) > signaling.MaxSignalIDLen:
		code, msg = signaling.CodeInvalid, fmt.Sprintf("id is %d characters, the limit is %d", len(f.ID), signaling.MaxSignalIDLen)
	case !c.role.CanForceDisconnect():
		code, msg = signaling.CodeForbidden, fmt.Sprintf("role %s may not force a disconnect (moderator only)", c.role)
	case !validConnectionID(f.ConnectionID):
		code, msg = signaling.CodeInvalid, "connectionId is not a connection ID"
	case !s.forceDisconnect(c.sess.id, f.ConnectionID):
		code, msg = signaling.CodeNotFound, fmt.Sprintf("connection %s is not in this session", f.ConnectionID)
	}
	s.answer(sk, f.ID, code, msg, false)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
