package relay

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/teleop/teleop/clock"
	"github.com/teleop/teleop/signaling/token"
)

// FuzzClusterEvent: whatever another node (or anything on the subject)
// publishes, applying it never panics, and a local connection only ever
// gets events that encode.
func FuzzClusterEvent(f *testing.F) {
	for _, m := range []cmsg{
		{K: "c", S: "fz", N: "other~1", ID: "c1", Created: 1, Data: "role=robot", Role: "publisher"},
		{K: "s", S: "fz", N: "other~1", ID: "c1", Type: "drive", Data: `{"linear":1}`},
		{K: "s", S: "fz", N: "other~1", To: "$LOCAL", Type: "x"},
		{K: "m", S: "fz", N: "other~1", ID: "$LOCAL"},
		{K: "x", S: "fz", N: "other~1", ID: "$LOCAL"},
		{K: "d", S: "fz", N: "other~1", ID: "c1", Reason: "clientDisconnected"},
		{K: "d", S: "fz", N: "other~1", ID: "$LOCAL", Reason: "networkDisconnected"},
	} {
		b, _ := json.Marshal(m)
		f.Add(b)
	}
	f.Add([]byte(`{"k":"c","s":"","n":""}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := New(&Options{APIKey: "k", APISecret: "s", Clock: clock.NewFake(), Registry: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		cl := &cluster{s: s, log: s.log, self: "me~1", subj: "t.s.", ready: make(chan struct{}), nodes: map[string]time.Time{}, dead: map[string]bool{}, stop: make(chan struct{})}
		close(cl.ready)
		s.cl = cl
		local := &sock{srv: s, wake: make(chan struct{}, 1), readerDone: make(chan struct{})}
		c, err := s.join(local, &token.Claims{SessionID: "fz", Role: token.Moderator})
		if err != nil {
			t.Fatal(err)
		}
		b = []byte(strings.ReplaceAll(string(b), "$LOCAL", c.id))
		cl.onEvent(&nats.Msg{Data: b})
		cl.onEvent(&nats.Msg{Data: b}) // twice: duplicates are harmless
		for _, it := range local.q {
			_ = appendFrame(nil, it, 0)
		}
	})
}

// FuzzParseClusterKey: a resume key from a client never panics the parser,
// and what it accepts is a connection ID and a non-empty session.
func FuzzParseClusterKey(f *testing.F) {
	k, _ := clusterKey("0f8e7a2c-1d3b-4c5a-9e8f-7a6b5c4d3e2f", "1_MX4xMjM0NTY3OH5-")
	f.Add(k)
	f.Add("a.b.c")
	f.Add("..")
	f.Add("x")
	f.Fuzz(func(t *testing.T, key string) {
		id, sess, _, ok := parseClusterKey(key)
		if ok && (!validConnectionID(id) || sess == "") {
			t.Fatalf("accepted %q: id %q session %q", key, id, sess)
		}
	})
}
