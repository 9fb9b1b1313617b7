package signaling_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/teleop/teleop/signaling"
	"github.com/teleop/teleop/signaling/relay"
	"github.com/teleop/teleop/signaling/token"
)

// exampleRelay starts a relay on loopback, as `teleop server` runs one,
// and returns its base URL and a function that stops it.
func exampleRelay() (url string, stop func()) {
	rs, err := relay.New(&relay.Options{APIKey: "123456", APISecret: "secret"})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(rs)
	return srv.URL, func() { rs.Close(); srv.Close() }
}

func ExampleDial() {
	url, stop := exampleRelay()
	defer stop()
	ctx := context.Background()

	// A backend mints tokens with the project's API key and secret.
	tok, _ := token.New("123456", "secret", "robot-1", &token.Options{ConnectionData: "name=robot"})
	s, err := signaling.Dial(ctx, url, tok, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	fmt.Println(s.SessionID(), s.Role(), s.Connection().Data, len(s.Connections()))

	// A refused token is an *Error with code 401 and the relay's reason;
	// Dial does not retry it.
	_, err = signaling.Dial(ctx, url, "not-a-token", nil)
	var se *signaling.Error
	fmt.Println(errors.As(err, &se), se.Code)
	// Output:
	// robot-1 publisher name=robot 1
	// true 401
}

func ExampleSession_Signal() {
	url, stop := exampleRelay()
	defer stop()
	ctx := context.Background()
	tok := func(name string) string {
		t, _ := token.New("123456", "secret", "robot-1", &token.Options{ConnectionData: "name=" + name})
		return t
	}

	robot, _ := signaling.Dial(ctx, url, tok("robot"), nil)
	defer robot.Close()
	// The robot acknowledges every drive command to its sender.
	robot.OnSignalType("drive", func(s signaling.Signal) {
		robot.Signal(ctx, signaling.Signal{Type: "ack", Data: s.Data, To: s.From})
	})

	operator, _ := signaling.Dial(ctx, url, tok("operator"), nil)
	defer operator.Close()
	acks := make(chan signaling.Signal, 1)
	operator.OnSignalType("ack", func(s signaling.Signal) { acks <- s })

	// Signal returns the relay's completion: nil once the relay accepted
	// the signal for delivery.
	err := operator.Signal(ctx, signaling.Signal{Type: "drive", Data: `{"id":17,"linear":0.4}`, To: robot.ID()})
	fmt.Println("drive:", err)
	ack := <-acks
	fmt.Println("ack:", ack.Data, ack.From == robot.ID())

	// A refusal is an *Error with the relay's code.
	err = operator.Signal(ctx, signaling.Signal{Type: "drive", Data: strings.Repeat("x", 9000)})
	fmt.Println(err, errors.Is(err, &signaling.Error{Code: signaling.CodeTooLarge}))
	// Output:
	// drive: <nil>
	// ack: {"id":17,"linear":0.4} true
	// signaling error 413: data is 9000 bytes, the limit is 8192 true
}

func ExampleSession_OnSignalType() {
	url, stop := exampleRelay()
	defer stop()
	ctx := context.Background()
	robotTok, _ := token.New("123456", "secret", "robot-1", nil)
	opTok, _ := token.New("123456", "secret", "robot-1", nil)

	// NewSession, handlers, then Connect: no event can slip past the
	// handlers. They run one at a time on the session's dispatcher, in the
	// order the signals were sent.
	robot := signaling.NewSession(nil)
	done := make(chan struct{})
	robot.OnSignalType("drive", func(s signaling.Signal) { fmt.Println("drive", s.Data) })
	robot.OnSignalType("stop", func(s signaling.Signal) { fmt.Println("stop", s.Data) })
	robot.OnSignal(func(s signaling.Signal) {
		if s.Type == "stop" {
			close(done)
		}
	})
	if err := robot.Connect(ctx, url, robotTok); err != nil {
		fmt.Println(err)
		return
	}
	defer robot.Close()

	operator, _ := signaling.Dial(ctx, url, opTok, nil)
	defer operator.Close()
	for _, s := range []signaling.Signal{
		{Type: "drive", Data: `{"id":1,"linear":0.2}`},
		{Type: "telemetry", Data: `{"battery":12.1}`}, // no handler for its type
		{Type: "drive", Data: `{"id":2,"linear":0.3}`},
		{Type: "stop", Data: `{"id":3}`},
	} {
		s.To = robot.ID()
		operator.Signal(ctx, s)
	}
	<-done
	// Output:
	// drive {"id":1,"linear":0.2}
	// drive {"id":2,"linear":0.3}
	// stop {"id":3}
}
