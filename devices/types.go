package devices

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/teleop/teleop/devices/proto"
)

// State is the state of a Device as the host knows it.
type State uint8

const (
	// StateConnecting: finding and opening the port, or handshaking.
	StateConnecting State = iota
	// StateReady: handshake done, the device reports RDY.
	StateReady
	// StateFailsafe: the device's watchdog expired (EVT WDOG, TLM st=FS);
	// the next setpoint leaves it.
	StateFailsafe
	// StateEStopped: the e-stop is latched, by EStop or reported by the
	// device, until the device confirms CLEAR.
	StateEStopped
	// StateDisconnected: the link is down; waiting to reconnect.
	StateDisconnected
	// StateClosed: Close was called; final.
	StateClosed
)

var stateNames = [...]string{
	StateConnecting:   "connecting",
	StateReady:        "ready",
	StateFailsafe:     "failsafe",
	StateEStopped:     "estopped",
	StateDisconnected: "disconnected",
	StateClosed:       "closed",
}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "state" + strconv.Itoa(int(s))
}

// Up reports whether commands can be sent in this state.
func (s State) Up() bool { return s == StateReady || s == StateFailsafe || s == StateEStopped }

// Status is the outcome of a command.
type Status uint8

const (
	// StatusOK: the device answered OK (or a raw reply matched the OK pattern).
	StatusOK Status = iota + 1
	// StatusError: the device answered ERR; Result.Code and Text say why.
	StatusError
	// StatusTimeout: no reply within the timeout (after the retries of a
	// one-shot command), or a later command was answered first so this
	// setpoint's reply will never come.
	StatusTimeout
	// StatusSent: raw protocol without reply patterns: written, unconfirmed.
	StatusSent
	// StatusSuperseded: a newer setpoint (or Stop, or EStop) replaced this
	// setpoint before it was sent. It never reached the device.
	StatusSuperseded
)

var statusNames = [...]string{
	StatusOK:         "ok",
	StatusError:      "error",
	StatusTimeout:    "timeout",
	StatusSent:       "sent",
	StatusSuperseded: "superseded",
}

func (s Status) String() string {
	if s > 0 && int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "status" + strconv.Itoa(int(s))
}

// Command is one command for the device. In the teleop/1 protocol it is a
// verb and typed arguments (the seq and checksum are added when it is sent);
// in the raw protocol it is Line, sent as-is.
type Command struct {
	Verb    string        // teleop/1: PING, OUT, SET, VEL, HB, …
	Args    []proto.Arg   // teleop/1
	Line    string        // raw: the line without its newline
	Timeout time.Duration // per try; 0 means Config.CommandTimeout
}

// Cmd is a teleop/1 command: Cmd("VEL", proto.Float(0.4, 3), proto.Float(0, 3)).
func Cmd(verb string, args ...proto.Arg) Command { return Command{Verb: verb, Args: args} }

// RawCmd is a raw-protocol command line.
func RawCmd(line string) Command { return Command{Line: line} }

func (c Command) String() string {
	if c.Line != "" {
		return strconv.Quote(c.Line)
	}
	s := c.Verb
	for _, a := range c.Args {
		s += " " + a.String()
	}
	return s
}

// Result is the outcome of a command the device was asked to run.
type Result struct {
	Status Status
	Seq    uint16            // teleop/1: the seq it was sent with (0 if never sent)
	Code   proto.ErrorCode   // StatusError: the device's error code (0 in raw mode)
	Text   string            // StatusError: the device's text; raw: the reply line
	Fields map[string]string // StatusOK: the reply's key=value pairs, if any
	// RTT is the device round trip: from the last transmission to the reply.
	RTT time.Duration
	// Tries is how many times the line was written (1 unless retried).
	Tries int
}

// Err returns nil for ok and sent, and an error describing anything else,
// for callers that only want to know whether the command took effect.
func (r Result) Err() error {
	switch r.Status {
	case StatusOK, StatusSent:
		return nil
	case StatusError:
		return &DeviceError{Code: r.Code, Text: r.Text}
	}
	return fmt.Errorf("command %s", r.Status)
}

// DeviceError is an ERR reply as an error.
type DeviceError struct {
	Code proto.ErrorCode
	Text string
}

func (e *DeviceError) Error() string {
	if e.Code == 0 {
		return "device error: " + e.Text
	}
	return fmt.Sprintf("device error %d (%s): %s", int(e.Code), e.Code, e.Text)
}

// Errors of Device methods. Commands that fail with one of these did not
// get a reply; whether they ran is unknown for ErrDeviceReset and
// ErrLinkDown, and they did not run for the others.
var (
	ErrClosed      = errors.New("device closed")
	ErrNotReady    = errors.New("device not ready")
	ErrDeviceReset = errors.New("device reset")
	ErrLinkDown    = errors.New("link down")
	ErrEStopped    = errors.New("e-stop latched")
	ErrWrongKind   = errors.New("wrong kind of command")
)

// Telemetry is one TLM line.
type Telemetry struct {
	TimeMs   uint32            // device millis since boot
	State    string            // st: RDY, FS, ES
	Fields   map[string]string // every key=value, st included
	Received time.Time         // host clock
}

// Float returns Fields[key] as a number.
func (t Telemetry) Float(key string) (float64, bool) {
	v, ok := t.Fields[key]
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(v, 64)
	return f, err == nil
}

// Event is one EVT line.
type Event struct {
	Name     string // ESTOP, CLEARED, WDOG, OVERFLOW, FAULT, …
	Fields   map[string]string
	Received time.Time
}
