package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/spf13/cobra"

	"github.com/teleop/teleop/signaling"
)

// Lines printed by `teleop listen`, one JSON object each; "event" comes first.
type (
	connectedLine struct {
		Event       string                 `json:"event"` // connected
		SessionID   string                 `json:"sessionId"`
		Connection  signaling.Connection   `json:"connection"`
		Connections []signaling.Connection `json:"connections"`
	}
	signalLine struct {
		Event string `json:"event"` // signal
		Type  string `json:"type"`
		Data  string `json:"data"`
		From  string `json:"from"` // "" when sent through the REST API
		To    string `json:"to"`   // "" when sent to all
		Seq   uint64 `json:"seq"`
		AgeMs int64  `json:"ageMs"`
	}
	connectionLine struct {
		Event      string               `json:"event"` // connectionCreated, connectionDestroyed
		Connection signaling.Connection `json:"connection"`
		Reason     string               `json:"reason,omitempty"`
	}
	reconnectLine struct {
		Event      string                `json:"event"` // reconnecting, reconnected, disconnected
		Error      string                `json:"error,omitempty"`
		Resumed    *bool                 `json:"resumed,omitempty"`
		Missed     uint64                `json:"missed,omitempty"`
		Connection *signaling.Connection `json:"connection,omitempty"`
	}
)

// newListenCmd builds `teleop listen`: join a session and print what
// arrives as JSON lines until interrupted.
func newListenCmd() *cobra.Command {
	var types []string
	cmd := &cobra.Command{
		Use:   "listen",
		Short: "Join a session and print its signals and connection events as JSON lines",
		Long: `Join a session and print, one JSON object per line, what this connection
receives: signals ({"event":"signal","type":…,"data":…,"from":…,"to":…,"seq":…,"ageMs":…}),
connections joining and leaving, and reconnects. The first line is
{"event":"connected",…} with this connection and everyone present.
It runs until interrupted (exit 0) or until the relay ends the session (exit 1).`,
		Example: `  teleop listen --token "$(teleop token --session robot-1)"
  TELEOP_TOKEN=… teleop listen --type ack --type telemetry`,
		Args: cobra.NoArgs,
	}
	sf := addSessionFlags(cmd)
	cmd.Flags().StringSliceVar(&types, "type", nil, "print only signals of these types (repeatable); connection events are always printed")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var mu sync.Mutex
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetEscapeHTML(false)
		ready := make(chan struct{}) // the connected line goes first
		emit := func(v any) {
			<-ready
			mu.Lock()
			defer mu.Unlock()
			enc.Encode(v)
		}

		s := signaling.NewSession(sf.options(cmd))
		s.OnSignal(func(sig signaling.Signal) {
			if len(types) > 0 && !slices.Contains(types, sig.Type) {
				return
			}
			emit(signalLine{"signal", sig.Type, sig.Data, sig.From, sig.To, sig.Seq, sig.Age.Milliseconds()})
		})
		s.OnConnectionCreated(func(c signaling.Connection) {
			emit(connectionLine{Event: "connectionCreated", Connection: c})
		})
		s.OnConnectionDestroyed(func(c signaling.Connection, reason string) {
			emit(connectionLine{Event: "connectionDestroyed", Connection: c, Reason: reason})
		})
		s.OnReconnecting(func(err error) {
			emit(reconnectLine{Event: "reconnecting", Error: err.Error()})
		})
		s.OnReconnected(func(r signaling.Reconnected) {
			emit(reconnectLine{Event: "reconnected", Resumed: &r.Resumed, Missed: r.Missed, Connection: &r.Connection})
		})
		s.OnDisconnected(func(err error) {
			l := reconnectLine{Event: "disconnected"}
			if err != nil {
				l.Error = err.Error()
			}
			emit(l)
		})
		if err := sf.connect(cmd, s); err != nil {
			close(ready)
			return err
		}
		defer s.Close()
		mu.Lock()
		err := enc.Encode(connectedLine{"connected", s.SessionID(), s.Connection(), s.Connections()})
		mu.Unlock()
		close(ready)
		if err != nil {
			return err
		}

		select {
		case <-cmd.Context().Done():
			return nil
		case <-s.Done():
			return fmt.Errorf("session ended: %w", s.Err())
		}
	}
	return cmd
}
