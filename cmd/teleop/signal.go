package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/teleop/teleop/signaling"
)

// newSignalCmd builds `teleop signal`: send one signal and, with
// --wait-ack, wait for the agent's acknowledgment of it.
func newSignalCmd() *cobra.Command {
	var (
		typ, data, to string
		waitAck       time.Duration
	)
	cmd := &cobra.Command{
		Use:   "signal",
		Short: "Send one signal to a session (and optionally wait for its ack)",
		Long: `Join the session, send one signal, and leave. It prints nothing on success
(-v reports the relay's answer on stderr) and fails with the relay's reason
when the relay refuses the signal, e.g.
  signal refused: 413 data is 9000 bytes, the limit is 8192

With --wait-ack D the data must be a JSON object with an "id". Before sending,
the command listens for "ack" signals; it prints the data of the first ack
whose "id" equals the sent one as one JSON line, or fails after D.`,
		Example: `  teleop signal --type drive --data '{"id":17,"linear":0.4,"angular":0}' --to c1f0… --wait-ack 2s
  teleop signal --type estop`,
		Args: cobra.NoArgs,
	}
	sf := addSessionFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&typ, "type", "", "signal type (A-Z a-z 0-9 - _ ~, at most 128)")
	f.StringVar(&data, "data", "", "signal data (at most 8192 bytes)")
	f.StringVar(&to, "to", "", "connection ID to send to (default: every connection)")
	f.DurationVar(&waitAck, "wait-ack", 0, `wait this long for an "ack" signal with the data's "id" and print it`)

	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		var id any
		if waitAck > 0 {
			var err error
			if id, err = dataID(data); err != nil {
				return fmt.Errorf("--wait-ack: %w", err)
			}
		}
		s := signaling.NewSession(sf.options(cmd))
		acks := make(chan string, 1)
		if waitAck > 0 {
			s.OnSignalType("ack", func(sig signaling.Signal) {
				if got, err := dataID(sig.Data); err == nil && sameID(got, id) {
					select {
					case acks <- sig.Data:
					default: // a duplicate; the first one is printed
					}
				}
			})
		}
		if err := sf.connect(cmd, s); err != nil {
			return err
		}
		defer s.Close()

		err := s.Signal(ctx, signaling.Signal{Type: typ, Data: data, To: to})
		if se := (*signaling.Error)(nil); errors.As(err, &se) {
			return fmt.Errorf("signal refused: %d %s", se.Code, se.Message)
		} else if err != nil {
			return fmt.Errorf("signal: %w", err)
		}
		if sf.verbose {
			dest := to
			if dest == "" {
				dest = "all"
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "signal %q to %s: 200 accepted by the relay (from %s)\n", typ, dest, s.ID())
		}
		if waitAck <= 0 {
			return nil
		}

		t := time.NewTimer(waitAck)
		defer t.Stop()
		select {
		case ack := <-acks:
			var line bytes.Buffer
			if err := json.Compact(&line, []byte(ack)); err != nil {
				return err
			}
			line.WriteByte('\n')
			_, err := cmd.OutOrStdout().Write(line.Bytes())
			return err
		case <-t.C:
			return fmt.Errorf("no ack for id %s within %v", idText(id), waitAck)
		case <-s.Done():
			return fmt.Errorf("session ended while waiting for the ack: %w", s.Err())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return cmd
}

// dataID returns the "id" of data, a JSON object: a json.Number or a string.
func dataID(data string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(data))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, errors.New(`the data must be a JSON object with an "id"`)
	}
	switch id := obj["id"].(type) {
	case json.Number, string:
		return id, nil
	case nil:
		return nil, errors.New(`the data has no "id"`)
	default:
		return nil, fmt.Errorf(`the data's "id" is a %T, not a number or string`, id)
	}
}

// sameID compares two ids from dataID: numbers by value (17 == 17.0),
// strings exactly; a number never equals a string.
func sameID(a, b any) bool {
	switch x := a.(type) {
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		if x == y {
			return true
		}
		fx, err1 := x.Float64()
		fy, err2 := y.Float64()
		return err1 == nil && err2 == nil && fx == fy
	case string:
		y, ok := b.(string)
		return ok && x == y
	}
	return false
}

func idText(id any) string {
	b, _ := json.Marshal(id)
	return string(b)
}
