package main

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/teleop/teleop/bridge"
	"github.com/teleop/teleop/sdnotify"
)

// superviseAgent tells systemd how the agent is doing when it runs under a
// Type=notify unit (configs/systemd/teleop-agent.service), and does nothing
// otherwise: READY=1 once the agent has joined its session (Run opens the
// devices before it joins), WATCHDOG=1 at half WatchdogSec while the agent
// answers, STATUS= lines for systemctl status, and STOPPING=1 as soon as
// ctx ends (SIGTERM). Call the returned function after Run: it waits for
// the last message.
func superviseAgent(ctx context.Context, a *bridge.Agent, log *slog.Logger) (wait func()) {
	n := sdnotify.New(&sdnotify.Options{Logger: log.With("component", "sdnotify")})
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Supervise(ctx, agentProbe(a))
	}()
	return func() {
		cancel()
		<-done
	}
}

// agentProbe answers sdnotify.Supervise for the agent. Healthy means that
// the agent's state could be read: Status takes the agent's lock and every
// device's, so an agent wedged on one of them stops the watchdog pings and
// systemd restarts it. A robot that is unplugged or a relay that is down is
// not unhealthy: the agent is doing its job, reconnecting, and a restart
// would not help; the status line says what is wrong.
func agentProbe(a *bridge.Agent) func() sdnotify.Probe {
	joined := false
	return func() sdnotify.Probe {
		st := a.Status()
		conn := a.Connection()
		if conn != "" {
			joined = true
		}
		var b strings.Builder
		switch {
		case conn != "":
			b.WriteString("in session as " + conn)
		case joined:
			b.WriteString("reconnecting to the session")
		default:
			b.WriteString("joining the session")
		}
		for _, name := range slices.Sorted(maps.Keys(st.Devices)) {
			d := st.Devices[name]
			b.WriteString("; " + name + " " + d.State)
			if d.Error != "" && d.State != "ready" {
				b.WriteString(" (" + d.Error + ")")
			}
		}
		if st.Estop.Latched {
			b.WriteString("; E-STOP latched")
		}
		return sdnotify.Probe{Ready: joined, Healthy: true, Status: b.String()}
	}
}
