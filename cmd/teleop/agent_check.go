package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/teleop/teleop/bridge"
	"github.com/teleop/teleop/devices"
	"github.com/teleop/teleop/devices/proto"
)

// agentCheck is `teleop agent --check --config FILE`: it loads the file as
// the agent does, except that ${VAR}s left unset stand in as placeholders
// (the session's token is not needed to check the hardware), prints every
// problem, then runs runAgentCheck.
func agentCheck(ctx context.Context, path string, stdout, stderr io.Writer) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	cfg, err := bridge.Parse(path, data, bridge.AllowUnset(os.LookupEnv))
	if err != nil {
		var es bridge.Errors
		if errors.As(err, &es) {
			for _, e := range es {
				fmt.Fprintln(stderr, e)
			}
			return fmt.Errorf("%s: %d %s", path, len(es), plural(len(es), "problem", "problems"))
		}
		return err
	}
	fmt.Fprintf(stdout, "%s: ok\n", path)
	return runAgentCheck(ctx, cfg, stdout)
}

// runAgentCheck is a dry run of cfg against the hardware, without joining
// the session: for each device in turn it resolves the port, opens it,
// handshakes (teleop/1: HELLO, VER, the settings), reads the settings back,
// prints what the device reports and closes it again, which sends STOP. It
// fails when any device could not be brought up.
func runAgentCheck(ctx context.Context, cfg *bridge.Config, out io.Writer) error {
	failed := 0
	for _, d := range cfg.Devices {
		if err := checkDevice(ctx, d, out); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fmt.Fprintf(out, "device %s: FAILED: %v\n", d.Name, err)
			failed++
		}
	}
	n := len(cfg.Devices)
	if failed > 0 {
		return fmt.Errorf("agent check: %d of %d %s failed", failed, n, plural(n, "device", "devices"))
	}
	fmt.Fprintf(out, "agent check: %d %s ok\n", n, plural(n, "device", "devices"))
	return nil
}

// checkDeviceWait bounds how long a device may take to come up after its
// boot wait: the handshake's VER tries and SET commands.
const checkDeviceWait = 10 * time.Second

func checkDevice(ctx context.Context, d *bridge.Device, out io.Writer) error {
	dc := d.DevicesConfig()
	sel, err := devices.ParseSelector(dc.Port)
	if err != nil {
		return err
	}
	path, err := devices.Resolve(sel)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "device %s: %s", d.Name, dc.Port)
	if path != dc.Port {
		fmt.Fprintf(out, " → %s", path)
	}
	fmt.Fprintf(out, ", %d baud, %s\n", d.Baud, d.Protocol)

	caught := &lastProblem{}
	states := make(chan devices.State, 64)
	tlm := make(chan devices.Telemetry, 1)
	start := time.Now()
	dev, err := devices.Open(ctx, dc, &devices.Options{
		Logger: slog.New(caught),
		OnState: func(s devices.State) {
			select {
			case states <- s:
			default: // the loop below reads State() anyway
			}
		},
		OnTelemetry: func(t devices.Telemetry) {
			select {
			case tlm <- t:
			default:
			}
		},
	})
	if err != nil {
		return err
	}
	defer dev.Close()

	deadline := time.NewTimer(dev.Config().BootWait + checkDeviceWait)
	defer deadline.Stop()
	var st devices.State
	for up := false; !up; {
		select {
		case st = <-states:
		case <-deadline.C:
			return fmt.Errorf("not ready after %v (%s)%s", time.Since(start).Round(time.Millisecond), dev.State(), caught.suffix())
		case <-ctx.Done():
			return ctx.Err()
		}
		switch {
		case st.Up():
			up = true
		case st == devices.StateDisconnected || st == devices.StateClosed:
			return caught.err()
		}
	}
	took := time.Since(start).Round(time.Millisecond)

	if d.Protocol != bridge.ProtoTeleop1 {
		fmt.Fprintf(out, "device %s: port open in %v (raw protocol: no handshake; replies are not checked)\n", d.Name, took)
		return nil
	}
	h, _ := dev.Hello()
	fmt.Fprintf(out, "device %s: ready in %v: fw=%s board=%s proto=%d.%d rx=%d caps=%s\n",
		d.Name, took, h.FW, h.Board, h.Major, h.Minor, h.RX, strings.Join(h.Caps, ","))
	fmt.Fprintf(out, "device %s: applied %s\n", d.Name, d.SettingsLine())
	var got []string
	for _, s := range d.Settings {
		res, err := dev.Do(ctx, devices.Cmd("GET", proto.Word(s.Key)))
		switch {
		case err != nil:
			got = append(got, s.Key+"=? ("+err.Error()+")")
		case res.Status != devices.StatusOK:
			got = append(got, s.Key+"=? ("+res.Err().Error()+")")
		default:
			got = append(got, s.Key+"="+res.Fields[s.Key])
		}
	}
	if len(got) > 0 {
		fmt.Fprintf(out, "device %s: reports %s\n", d.Name, strings.Join(got, " "))
	}
	select {
	case t := <-tlm:
		fmt.Fprintf(out, "device %s: telemetry %s\n", d.Name, formatFields(t.Fields))
	case <-time.After(time.Second):
		fmt.Fprintf(out, "device %s: no telemetry within 1s\n", d.Name)
	case <-ctx.Done():
		return ctx.Err()
	}
	switch st := dev.State(); st {
	case devices.StateEStopped:
		fmt.Fprintf(out, "device %s: e-stop latched (the device reports it): clear it before driving\n", d.Name)
	case devices.StateReady:
	default:
		fmt.Fprintf(out, "device %s: state %s\n", d.Name, st)
	}
	return nil
}

// formatFields prints telemetry fields with st first, the rest as sent.
func formatFields(f map[string]string) string {
	var b strings.Builder
	if st, ok := f["st"]; ok {
		b.WriteString("st=" + st)
	}
	for _, k := range slices.Sorted(maps.Keys(f)) {
		if k == "st" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k + "=" + f[k])
	}
	return b.String()
}

// lastProblem is a slog.Handler that keeps the device layer's latest
// warning or error with its "err": why a port did not open or a handshake
// failed, which the device only logs (it retries on its own).
type lastProblem struct {
	mu  sync.Mutex
	msg string
}

func (h *lastProblem) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h *lastProblem) Handle(_ context.Context, r slog.Record) error {
	msg, _, _ := strings.Cut(r.Message, ";") // "cannot open the port; retrying"
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			msg += ": " + a.Value.String()
		}
		return true
	})
	h.mu.Lock()
	h.msg = msg
	h.mu.Unlock()
	return nil
}

func (h *lastProblem) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *lastProblem) WithGroup(string) slog.Handler      { return h }

func (h *lastProblem) err() error {
	h.mu.Lock()
	msg := h.msg
	h.mu.Unlock()
	if msg == "" {
		msg = "the link went down"
	}
	if strings.Contains(msg, "permission denied") {
		msg += " (is the user in the dialout group? sudo usermod -aG dialout $USER, then log in again)"
	}
	return errors.New(msg)
}

func (h *lastProblem) suffix() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.msg == "" {
		return ""
	}
	return ": " + h.msg
}
