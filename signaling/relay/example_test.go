package relay_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/gorilla/websocket"

	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/relay"
	"github.com/teleop/teleop/signaling/token"
)

// A relay is an http.Handler: mount it on any server (here httptest's;
// `teleop server` uses an http.Server with timeouts), with a console or
// anything else at the paths it does not serve.
func ExampleNew() {
	r, err := relay.New(&relay.Options{
		APIKey:    "12345678",
		APISecret: "secret",
		Fallback:  http.NotFoundHandler(), // e.g. the web console at /
	})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(r)
	defer srv.Close()
	defer r.Close() // first: closes the WebSockets, waits for their goroutines

	tok, _ := token.New("12345678", "secret", "robot-1", &token.Options{ConnectionData: "name=alice"})
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/v1/connect?"+url.Values{"token": {tok}}.Encode(), nil)
	if err != nil {
		panic(err)
	}
	defer ws.Close()
	var welcome signaling.Frame
	_ = ws.ReadJSON(&welcome)
	fmt.Println(welcome.Op, welcome.SessionID, welcome.Connection.Data, welcome.Role)

	_ = ws.WriteJSON(signaling.Frame{Op: signaling.OpSignal, ID: "1", Type: "chat", Data: "hello"})
	for i := 0; i < 2; i++ { // the broadcast comes back to its sender too, then the result
		var f signaling.Frame
		_ = ws.ReadJSON(&f)
		fmt.Println(f.Op, f.Type, f.Data, f.Code)
	}
	// Output:
	// welcome robot-1 name=alice publisher
	// signal chat hello 0
	// result   200
}
