package sdnotify

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/teleop/teleop/clock"
)

// Notifier sends state messages to systemd. The zero value is not usable;
// a nil *Notifier is, and does nothing.
type Notifier struct {
	socket   string        // a path, or "@name" for an abstract socket
	watchdog time.Duration // WatchdogSec; 0: no watchdog
	clk      clock.Clock
	log      *slog.Logger
}

// Options configure New. A nil *Options, and every zero field, means the
// environment and the defaults.
type Options struct {
	// Socket is where messages go: a path, or "@name" for a socket in the
	// abstract namespace. Default: $NOTIFY_SOCKET.
	Socket string
	// Watchdog is the service's WatchdogSec. Default: $WATCHDOG_USEC, when
	// $WATCHDOG_PID is unset or names this process.
	Watchdog time.Duration
	Clock    clock.Clock  // Supervise's timers; default clock.Real
	Logger   *slog.Logger // Supervise reports failed sends here; default: discard
}

// New returns a Notifier for the socket systemd gave this process, or nil
// when there is none (not started by systemd, or not Type=notify).
func New(opts *Options) *Notifier {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Socket == "" {
		o.Socket = os.Getenv("NOTIFY_SOCKET")
	}
	if o.Socket == "" {
		return nil
	}
	if o.Watchdog == 0 {
		o.Watchdog, _ = WatchdogFromEnv()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Notifier{socket: o.Socket, watchdog: o.Watchdog, clk: clock.Or(o.Clock), log: o.Logger}
}

// WatchdogFromEnv reads the watchdog timeout systemd set for this process
// ($WATCHDOG_USEC, ignored when $WATCHDOG_PID names another process).
func WatchdogFromEnv() (time.Duration, bool) {
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0, false
	}
	us, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || us <= 0 {
		return 0, false
	}
	return time.Duration(us) * time.Microsecond, true
}

// WatchdogInterval is the WatchdogSec systemd expects a WATCHDOG=1 within;
// 0 when the service has none (or n is nil).
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog
}

// Notify sends one message made of the given "KEY=value" assignments, e.g.
// Notify("READY=1", "STATUS=joined"). Newlines inside a value would start
// a new assignment, so they are replaced by spaces.
func (n *Notifier) Notify(assignments ...string) error {
	if n == nil || len(assignments) == 0 {
		return nil
	}
	var b strings.Builder
	for _, a := range assignments {
		b.WriteString(strings.ReplaceAll(a, "\n", " "))
		b.WriteByte('\n')
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.socket, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(b.String())); err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.socket, err)
	}
	return nil
}

// Ready tells systemd that start-up is complete (READY=1), with a status
// line unless status is "".
func (n *Notifier) Ready(status string) error { return n.Notify(withStatus("READY=1", status)...) }

// Stopping tells systemd that the service is shutting down (STOPPING=1).
func (n *Notifier) Stopping() error { return n.Notify("STOPPING=1") }

// Status sets the free-form status line systemctl status shows.
func (n *Notifier) Status(status string) error { return n.Notify("STATUS=" + status) }

// Watchdog pings the watchdog (WATCHDOG=1).
func (n *Notifier) Watchdog() error { return n.Notify("WATCHDOG=1") }

func withStatus(a, status string) []string {
	if status == "" {
		return []string{a}
	}
	return []string{a, "STATUS=" + status}
}

// Probe is a service's answer to Supervise's question "how are you?".
type Probe struct {
	// Ready: start-up is complete. READY=1 goes out the first time.
	Ready bool
	// Healthy: the service's own loop works. WATCHDOG=1 goes out only
	// while it is; a probe that blocks stops the pings too, so systemd
	// restarts a service that hangs.
	Healthy bool
	// Status goes out as STATUS= whenever it changes ("" sends nothing).
	Status string
}

// Polling periods of Supervise.
const (
	// ReadyPoll is how often the probe is asked until it reports Ready.
	ReadyPoll = 250 * time.Millisecond
	// StatusPoll is how often it is asked after that, without a watchdog
	// (with one: at half the watchdog interval, if that is shorter).
	StatusPoll = 5 * time.Second
)

// Supervise talks to systemd for a service until ctx ends, then sends
// STOPPING=1 and returns. It calls probe every ReadyPoll until the service
// is ready, then every half watchdog interval (StatusPoll without a
// watchdog), and sends what changed: READY=1 once, STATUS= when the status
// differs, WATCHDOG=1 on every healthy probe. On a nil Notifier it returns
// at once.
func (n *Notifier) Supervise(ctx context.Context, probe func() Probe) {
	if n == nil {
		return
	}
	var (
		ready   bool
		status  string
		lastErr string
	)
	var t clock.Timer
	for {
		p := probe()
		var msg []string
		if p.Ready && !ready {
			ready = true
			msg = append(msg, "READY=1")
		}
		if p.Status != "" && p.Status != status {
			status = p.Status
			msg = append(msg, "STATUS="+status)
		}
		if p.Healthy && n.watchdog > 0 {
			msg = append(msg, "WATCHDOG=1")
		}
		n.send(&lastErr, msg...)

		if t == nil {
			t = n.clk.NewTimer(n.period(ready))
			defer t.Stop()
		} else {
			t.Reset(n.period(ready))
		}
		select {
		case <-ctx.Done():
			n.send(&lastErr, "STOPPING=1", "STATUS=stopping")
			return
		case <-t.C():
		}
	}
}

// period is the time to the next probe.
func (n *Notifier) period(ready bool) time.Duration {
	p := StatusPoll
	if !ready {
		p = ReadyPoll
	}
	if half := n.watchdog / 2; half > 0 && half < p {
		p = half
	}
	return p
}

// send sends msg and logs a failure once, and the recovery after it.
func (n *Notifier) send(lastErr *string, msg ...string) {
	err := n.Notify(msg...)
	switch {
	case err != nil && err.Error() != *lastErr:
		n.log.Warn("cannot notify systemd", "err", err)
		*lastErr = err.Error()
	case err == nil && *lastErr != "" && len(msg) > 0:
		n.log.Info("notifying systemd again")
		*lastErr = ""
	}
}
