package relay

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/token"
)

// maxRESTBody bounds a REST request body: a signal with maximal type and
// data, fully escaped, fits.
const maxRESTBody = signaling.MaxFrameBytes

// restAuth checks a REST request's project JWT (X-OPENTOK-AUTH, or
// Authorization: Bearer) and, when the path names one, its api key. It
// answers 403 itself and returns false when the request may not proceed.
func (s *Server) restAuth(w http.ResponseWriter, r *http.Request) bool {
	if key := r.PathValue("apiKey"); key != "" && key != s.key {
		s.metrics.authFailures.WithLabelValues("rest").Inc()
		writeJSONError(w, http.StatusForbidden, fmt.Sprintf("api key %q is not this relay's project", key))
		return false
	}
	tok := r.Header.Get("X-OPENTOK-AUTH")
	if tok == "" {
		if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			tok = strings.TrimSpace(h[7:])
		}
	}
	if tok == "" {
		s.metrics.authFailures.WithLabelValues("rest").Inc()
		writeJSONError(w, http.StatusForbidden, "missing credentials: send a project JWT in X-OPENTOK-AUTH or Authorization: Bearer")
		return false
	}
	if err := token.VerifyProjectJWT(tok, s.key, s.secret, s.clock.Now()); err != nil {
		s.metrics.authFailures.WithLabelValues("rest").Inc()
		writeJSONError(w, http.StatusForbidden, "you are not authorized: "+err.Error())
		return false
	}
	return true
}

// serveSessionCreate is POST /session/create (OpenTok's shape): a form body
// (location, p2p.preference, archiveMode are accepted; only location is
// used) and a JSON array with the new session.
func (s *Server) serveSessionCreate(w http.ResponseWriter, r *http.Request) {
	if !s.restAuth(w, r) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxSessionCreateBodySize)
	if err := r.ParseForm(); err != nil {
		writeJSONError(w, http.StatusBadRequest, "parse form body: "+err.Error())
		return
	}
	now := s.clock.Now()
	id, err := token.NewSessionID(s.key, r.PostForm.Get("location"), now, rand.Reader)
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	type created struct {
		SessionID      string `json:"session_id"`
		ProjectID      string `json:"project_id"`
		PartnerID      string `json:"partner_id"`
		CreateDt       string `json:"create_dt"`
		MediaServerURL string `json:"media_server_url"`
	}
	writeJSON(w, http.StatusOK, []created{{
		SessionID: id,
		ProjectID: s.key,
		PartnerID: s.key,
		CreateDt:  now.UTC().Format("Mon Jan 02 15:04:05 MST 2006"),
	}})
}

// restSignal is the body of a REST signal.
type restSignal struct {
	Type *string `json:"type"`
	Data *string `json:"data"`
}

// serveSignal is POST …/session/{sessionId}/signal and
// POST …/session/{sessionId}/connection/{connectionId}/signal: 204, or 400,
// 403, 404, 413 with {"code","message"}.
func (s *Server) serveSignal(w http.ResponseWriter, r *http.Request) {
	if !s.restAuth(w, r) {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRESTBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeJSONError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is larger than %d bytes", maxRESTBody))
			return
		}
		writeJSONError(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	var sig restSignal
	if err := json.Unmarshal(body, &sig); err != nil {
		writeJSONError(w, http.StatusBadRequest, `body is not a JSON object {"type":…,"data":…}: `+err.Error())
		return
	}
	typ, data := signaling.Deref(sig.Type), signaling.Deref(sig.Data)
	if err := signaling.CheckSignal(typ, data); err != nil {
		e := err.(*signaling.Error)
		writeJSONError(w, e.Code, e.Message)
		return
	}
	sessionID, to := r.PathValue("sessionId"), r.PathValue("connectionId")
	if to != "" && !validConnectionID(to) {
		writeJSONError(w, http.StatusNotFound, fmt.Sprintf("connection %s is not connected to the session", to))
		return
	}
	var code int
	var msg string
	if sess := s.session(sessionID, false); sess != nil {
		code, msg = s.signal(sess, nil, to, typ, data, 0)
	} else if s.cl != nil {
		// Not heard of here yet; another node may have it.
		code, msg = s.cl.signalUnheard(sessionID, clusterSignal(nil, to, typ, data, 0))
	} else {
		code, msg = signaling.CodeNotFound, fmt.Sprintf("session %s has no connections", sessionID)
	}
	if code != signaling.CodeOK {
		writeJSONError(w, code, msg)
		return
	}
	s.metrics.signalsIn.WithLabelValues("rest").Inc()
	w.WriteHeader(http.StatusNoContent)
}

// serveForceDisconnect is DELETE …/session/{sessionId}/connection/{connectionId}.
func (s *Server) serveForceDisconnect(w http.ResponseWriter, r *http.Request) {
	if !s.restAuth(w, r) {
		return
	}
	sessionID, id := r.PathValue("sessionId"), r.PathValue("connectionId")
	if !s.forceDisconnect(sessionID, id) {
		writeJSONError(w, http.StatusNotFound, fmt.Sprintf("connection %s is not connected to session %s", id, sessionID))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
