package web_test

import (
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/teleop/teleop/internal/natstest"
	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/relay"
	"github.com/teleop/teleop/signaling/token"
	"github.com/teleop/teleop/web"
)

// TestConsoleAcrossClusterNodes: the console, loaded from and connected to
// one node of a relay cluster, drives and e-stops a robot connected to
// another node, and sees the robot's answers, unchanged.
func TestConsoleAcrossClusterNodes(t *testing.T) {
	nats := natstest.ForTest(t)
	node := func(name string) *httptest.Server {
		rl, err := relay.New(&relay.Options{
			APIKey: apiKey, APISecret: apiSecret, Fallback: web.Handler(nil),
			Cluster: &relay.ClusterOptions{URLs: nats.URL(), NodeName: name},
		})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(rl)
		t.Cleanup(func() {
			rl.Close()
			srv.Close()
		})
		return srv
	}
	n1, n2 := node("n1"), node("n2")
	// The browser goes through the proxy to n1; the Go peers join n2.
	h := &harness{t: t, srv: n2, proxy: newDropProxy(t, n1.Listener.Addr().String()), session: "console-cluster"}
	robot := h.peer("robot", robotData, token.Publisher)

	b := browser(t)
	p := open(t, b, "desktop", h.consoleURL(h.token(operatorData, token.Publisher)), desktop)
	p.connected()
	p.until("robot on the other node listed", `document.getElementById('target').value !== ''`)

	p.keyDown(keyW)
	got := robot.waitUntil("drives across nodes", func(s []signaling.Signal) bool { return len(ofType(s, "drive")) >= 3 })
	p.keyUp(keyW)
	d := ofType(got, "drive")[0]
	if d.To != robot.id() {
		t.Errorf("drive sent to %q, want the robot %q", d.To, robot.id())
	}
	// The robot's ack crosses back and shows as the latest ack.
	v := decode(t, d)
	robot.send("ack", `{"id":`+strconv.FormatInt(v.ID, 10)+`,"type":"drive","status":"ok","device_ms":1}`, d.From)
	p.until("ack shown", `document.getElementById('ack-counts').textContent.startsWith('1 /')`)

	p.click("#estop")
	robot.waitUntil("the e-stop across nodes", func(s []signaling.Signal) bool { return len(ofType(s, "estop")) == 1 })
	p.until("e-stop banner", `!document.getElementById('banner-estop').hidden`)
}
