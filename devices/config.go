package devices

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/teleop/teleop/clock"
	"github.com/teleop/teleop/devices/proto"
)

// Protocol is how the host talks to a device.
type Protocol string

const (
	// ProtocolTeleop is firmware-protocol.md v1: seqs, checksums, replies,
	// handshake, realtime bytes.
	ProtocolTeleop Protocol = "teleop/1"
	// ProtocolRaw sends configured lines as-is to firmware that knows
	// nothing of teleop (§10).
	ProtocolRaw Protocol = "raw"
)

// Config is one serial device, mirroring its YAML. The zero value of every
// field but Port means "the default".
type Config struct {
	// Name labels the device in logs and status; defaults to Port.
	Name string `yaml:"name"`
	// Port selects the device, re-resolved on every (re)connect:
	//   /dev/ttyACM0                      a device node
	//   /dev/serial/by-id/usb-…, /dev/robot  a symlink (udev, sim)
	//   usb:2341:0043[:SERIAL]            a USB VID:PID and optional serial number
	Port string `yaml:"port"`
	// Baud defaults to 115200; the line is always 8N1.
	Baud     int      `yaml:"baud"`
	Protocol Protocol `yaml:"protocol"`

	// WatchdogMs is the device watchdog applied at every handshake
	// (SET wdog_ms=), 50–5000; default 300.
	WatchdogMs int `yaml:"wdog_ms"`
	// TelemetryHz is applied as SET tlm_hz=, 0–50; nil means 10.
	TelemetryHz *int `yaml:"tlm_hz"`
	// Settings are further SET key=value pairs applied after every
	// handshake (device-specific, e.g. max_lin: "0.8").
	Settings map[string]string `yaml:"settings"`

	// BootWait is how long to wait for HELLO after opening (boards that
	// reset on open); default 2.5s.
	BootWait time.Duration `yaml:"boot_wait"`
	// CommandTimeout is the reply timeout per try; default 250ms.
	CommandTimeout time.Duration `yaml:"command_timeout"`
	// Retries is how often a one-shot command is resent with the same seq
	// after a timeout; default 3. Setpoints are never resent.
	Retries int `yaml:"retries"`
	// SilenceTimeout declares the link dead when nothing valid arrives for
	// this long (the host probes with '?' at half of it); default 1s.
	SilenceTimeout time.Duration `yaml:"silence_timeout"`
	// WriteTimeout fails the link when one write blocks this long (the
	// device stopped reading); default 500ms.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// BackoffMin and BackoffMax bound the reconnect backoff, which doubles
	// from min to max with jitter; defaults 250ms and 2s.
	BackoffMin time.Duration `yaml:"backoff_min"`
	BackoffMax time.Duration `yaml:"backoff_max"`

	// StopOnClose: Close (and the end of Open's context) sends STOP (raw:
	// the stop line) before closing the port, if the link is up; nil means
	// true. false leaves the robot with its last command: a teleop/1
	// firmware's watchdog still stops it wdog_ms later if it was moving.
	StopOnClose *bool `yaml:"stop_on_close"`

	// Raw configures ProtocolRaw.
	Raw RawConfig `yaml:"raw"`
}

// RawConfig is the raw protocol (§10).
type RawConfig struct {
	// OK and Error are regular expressions matched against device lines.
	// With OK set, each command waits for the first line matching OK
	// (ok) or Error (error), or times out; without it, commands are
	// reported sent.
	OK    string `yaml:"ok"`
	Error string `yaml:"error"`
	// Stop is the line Stop sends (and Close, on the way out). Required.
	Stop string `yaml:"stop"`
	// EStop is the line EStop sends three times; default Stop.
	EStop string `yaml:"estop"`
	// Clear is the line Clear sends; optional.
	Clear string `yaml:"clear"`
	// MaxLine is the longest line the firmware takes, with its '\n';
	// default 64.
	MaxLine int `yaml:"max_line"`
}

// Options are the parts of a Device that are not configuration. A nil
// *Options means all defaults.
type Options struct {
	Logger *slog.Logger // default: discard
	Clock  clock.Clock  // default: clock.Real

	// Callbacks run on the device's own goroutines and must not block;
	// they must not call Close. OnState is called for every state change,
	// in order (intermediate states may be coalesced).
	OnState     func(State)
	OnTelemetry func(Telemetry)
	OnEvent     func(Event)
	// OnLine sees every line the device sends, before parsing (for raw
	// devices, consoles and debugging).
	OnLine func(line string)
}

// Defaults.
const (
	DefaultBaud           = 115200
	DefaultWatchdogMs     = 300
	DefaultTelemetryHz    = 10
	DefaultBootWait       = 2500 * time.Millisecond
	DefaultCommandTimeout = 250 * time.Millisecond
	DefaultRetries        = 3
	DefaultSilenceTimeout = time.Second
	DefaultWriteTimeout   = 500 * time.Millisecond
	DefaultBackoffMin     = 250 * time.Millisecond
	DefaultBackoffMax     = 2 * time.Second

	handshakeTries   = 3
	handshakeTimeout = 300 * time.Millisecond
)

// settings the handshake owns; Config.Settings may not repeat them.
var ownSettings = []string{"strict", "wdog_ms", "tlm_hz"}

// Validate reports every problem with c.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.Port == "" {
		bad("port: required (a path, a /dev/serial/by-id link, or usb:VID:PID[:serial])")
	} else if _, err := ParseSelector(c.Port); err != nil {
		bad("port: %w", err)
	}
	if c.Baud < 0 {
		bad("baud: %d is negative", c.Baud)
	}
	switch c.Protocol {
	case "", ProtocolTeleop, ProtocolRaw:
	default:
		bad("protocol: %q is neither %q nor %q", c.Protocol, ProtocolTeleop, ProtocolRaw)
	}
	if c.WatchdogMs != 0 && (c.WatchdogMs < 50 || c.WatchdogMs > 5000) {
		bad("wdog_ms: %d outside 50–5000", c.WatchdogMs)
	}
	if c.TelemetryHz != nil && (*c.TelemetryHz < 0 || *c.TelemetryHz > 50) {
		bad("tlm_hz: %d outside 0–50", *c.TelemetryHz)
	}
	for _, k := range slices.Sorted(maps.Keys(c.Settings)) {
		if slices.Contains(ownSettings, k) {
			bad("settings: %s is set by the handshake; use the %s field", k, k)
			continue
		}
		if _, err := proto.AppendCommand(nil, 1, "SET", proto.KV(k, proto.Word(c.Settings[k]))); err != nil {
			bad("settings: %s=%q: %w", k, c.Settings[k], err)
		}
	}
	for name, d := range map[string]time.Duration{
		"boot_wait": c.BootWait, "command_timeout": c.CommandTimeout, "silence_timeout": c.SilenceTimeout,
		"write_timeout": c.WriteTimeout, "backoff_min": c.BackoffMin, "backoff_max": c.BackoffMax,
	} {
		if d < 0 {
			bad("%s: %v is negative", name, d)
		}
	}
	if c.Retries < 0 {
		bad("retries: %d is negative", c.Retries)
	}
	if c.BackoffMin > 0 && c.BackoffMax > 0 && c.BackoffMax < c.BackoffMin {
		bad("backoff_max %v is below backoff_min %v", c.BackoffMax, c.BackoffMin)
	}
	if c.Protocol == ProtocolRaw {
		if c.Raw.Stop == "" {
			bad("raw.stop: required in raw protocol (EStop sends it three times)")
		}
		if c.Raw.MaxLine != 0 && (c.Raw.MaxLine < 8 || c.Raw.MaxLine > 256) {
			bad("raw.max_line: %d outside 8–256", c.Raw.MaxLine)
		}
		maxLine := cmp.Or(c.Raw.MaxLine, proto.MaxCommandLine)
		for name, line := range map[string]string{"raw.stop": c.Raw.Stop, "raw.estop": c.Raw.EStop, "raw.clear": c.Raw.Clear} {
			if err := checkRawLine(line, maxLine); line != "" && err != nil {
				bad("%s: %w", name, err)
			}
		}
		for name, re := range map[string]string{"raw.ok": c.Raw.OK, "raw.error": c.Raw.Error} {
			if _, err := regexp.Compile(re); err != nil {
				bad("%s: %w", name, err)
			}
		}
		if c.Raw.Error != "" && c.Raw.OK == "" {
			bad("raw.error needs raw.ok")
		}
	} else if c.Raw != (RawConfig{}) {
		bad("raw: only for protocol %q", ProtocolRaw)
	}
	return errors.Join(errs...)
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Name == "" {
		c.Name = c.Port
	}
	if c.Baud == 0 {
		c.Baud = DefaultBaud
	}
	if c.Protocol == "" {
		c.Protocol = ProtocolTeleop
	}
	if c.WatchdogMs == 0 {
		c.WatchdogMs = DefaultWatchdogMs
	}
	if c.TelemetryHz == nil {
		hz := DefaultTelemetryHz
		c.TelemetryHz = &hz
	}
	if c.Retries == 0 {
		c.Retries = DefaultRetries
	}
	if c.StopOnClose == nil {
		stop := true
		c.StopOnClose = &stop
	}
	def(&c.BootWait, DefaultBootWait)
	def(&c.CommandTimeout, DefaultCommandTimeout)
	def(&c.SilenceTimeout, DefaultSilenceTimeout)
	def(&c.WriteTimeout, DefaultWriteTimeout)
	def(&c.BackoffMin, DefaultBackoffMin)
	def(&c.BackoffMax, DefaultBackoffMax)
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = c.BackoffMin
	}
	if c.Protocol == ProtocolRaw {
		c.Raw.EStop = cmp.Or(c.Raw.EStop, c.Raw.Stop)
		c.Raw.MaxLine = cmp.Or(c.Raw.MaxLine, proto.MaxCommandLine)
	}
	return c
}

// setArgs are the SET commands of the handshake: the first carries strict,
// wdog_ms and tlm_hz (§6 step 5); further settings follow, packed into as
// few 64-byte lines as fit.
func (c *Config) setArgs() [][]proto.Arg {
	out := [][]proto.Arg{{
		proto.KV("strict", proto.Int(1)),
		proto.KV("wdog_ms", proto.Int(c.WatchdogMs)),
		proto.KV("tlm_hz", proto.Int(*c.TelemetryHz)),
	}}
	var cur []proto.Arg
	for _, k := range slices.Sorted(maps.Keys(c.Settings)) {
		a := proto.KV(k, proto.Word(c.Settings[k]))
		if _, err := proto.AppendCommand(nil, 65535, "SET", append(slices.Clip(cur), a)...); err != nil && len(cur) > 0 {
			out = append(out, cur)
			cur = nil
		}
		cur = append(cur, a)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// checkRawLine refuses what may never reach a serial line: control
// characters (no newline injection), bytes outside 7-bit ASCII, and lines
// longer than maxLine with their '\n'.
func checkRawLine(s string, maxLine int) error {
	if s == "" {
		return errors.New("empty line")
	}
	if len(s)+1 > maxLine {
		return fmt.Errorf("%d bytes with its newline, limit %d", len(s)+1, maxLine)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7F {
			return fmt.Errorf("byte 0x%02x at %d is not printable ASCII", c, i)
		}
	}
	return nil
}

// Selector is a parsed Config.Port.
type Selector struct {
	Path string // a device node or a symlink to one
	// USB: match by USB IDs (lower-case hex) and, if set, serial number.
	VID, PID, Serial string
}

// ParseSelector parses a port selector: a path, or usb:VID:PID[:serial].
func ParseSelector(s string) (Selector, error) {
	rest, ok := strings.CutPrefix(s, "usb:")
	if !ok {
		if s == "" {
			return Selector{}, errors.New("empty port")
		}
		return Selector{Path: s}, nil
	}
	parts := strings.SplitN(rest, ":", 3)
	if len(parts) < 2 || !isHex4(parts[0]) || !isHex4(parts[1]) {
		return Selector{}, fmt.Errorf("%q: want usb:VID:PID[:serial] with 4-digit hex IDs", s)
	}
	sel := Selector{VID: strings.ToLower(parts[0]), PID: strings.ToLower(parts[1])}
	if len(parts) == 3 {
		if parts[2] == "" {
			return Selector{}, fmt.Errorf("%q: empty serial number", s)
		}
		sel.Serial = parts[2]
	}
	return sel, nil
}

func (s Selector) String() string {
	if s.Path != "" {
		return s.Path
	}
	if s.Serial != "" {
		return "usb:" + s.VID + ":" + s.PID + ":" + s.Serial
	}
	return "usb:" + s.VID + ":" + s.PID
}

func isHex4(s string) bool {
	if len(s) != 4 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}
