// Package sdnotify tells systemd how a service is doing (sd_notify(3), the
// Type=notify protocol) without linking libsystemd: each message is one
// datagram of "KEY=value" lines to the unix socket named by $NOTIFY_SOCKET.
//
// New reads the environment; outside systemd it returns nil, and every
// method of a nil *Notifier does nothing. Ready, Stopping, Status and
// Watchdog send one message each; Supervise runs the whole conversation
// for a long-lived service from a probe it calls: READY=1 once, STATUS=
// lines, WATCHDOG=1 at half of WatchdogSec while the probe says healthy,
// and STOPPING=1 when its context ends.
package sdnotify
