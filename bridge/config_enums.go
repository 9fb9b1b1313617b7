package bridge

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// enumNames is the text form of an enum; index 0 is "unset".
type enumNames []string

func (names enumNames) parse(what string, text []byte) (int, error) {
	s := string(text)
	for i, n := range names {
		if i > 0 && n == s {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%s %q is not one of %s", what, s, strings.Join(names[1:], ", "))
}

func (names enumNames) name(i int) string {
	if i >= 0 && i < len(names) {
		return names[i]
	}
	return strconv.Itoa(i)
}

// Kind says how the agent treats a mapped signal.
type Kind uint8

const (
	KindUnset Kind = iota
	// KindSetpoint is continuous motion (drive): coalesced newest-wins,
	// guarded by the deadman, dropped when older than its max age.
	KindSetpoint
	// KindOneshot is a discrete command (lights): queued, retried without
	// running twice, dropped when older than its max age.
	KindOneshot
	// KindStop is an orderly stop of one device or all: honoured from
	// anyone, never stale, never rate limited.
	KindStop
	// KindEstop latches the emergency stop on every device (or one): from
	// any connection, bypassing every queue, rate limit and lease.
	KindEstop
	// KindClear releases a latched e-stop.
	KindClear
	// KindControl is a lease request (acquire, release, transfer); it sends
	// nothing to a device.
	KindControl
)

var kindNames = enumNames{"", "setpoint", "oneshot", "stop", "estop", "clear", "control"}

func (k Kind) String() string               { return kindNames.name(int(k)) }
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }
func (k *Kind) UnmarshalText(text []byte) error {
	i, err := kindNames.parse("kind", text)
	*k = Kind(i)
	return err
}

// Motion reports whether the kind moves the robot (and so needs a deadman).
func (k Kind) Motion() bool { return k == KindSetpoint }

// Protocol is what a device speaks.
type Protocol uint8

const (
	ProtoUnset Protocol = iota
	// ProtoTeleop1 is firmware-protocol.md: seq, checksum, OK/ERR replies.
	ProtoTeleop1
	// ProtoRaw sends configured lines as they are, for existing firmware.
	ProtoRaw
)

var protocolNames = enumNames{"", "teleop/1", "raw"}

func (p Protocol) String() string               { return protocolNames.name(int(p)) }
func (p Protocol) MarshalText() ([]byte, error) { return []byte(p.String()), nil }
func (p *Protocol) UnmarshalText(text []byte) error {
	i, err := protocolNames.parse("protocol", text)
	*p = Protocol(i)
	return err
}

// Format is how a mapping reads a signal's data.
type Format uint8

const (
	FormatUnset Format = iota
	// FormatJSON: a flat JSON object of the declared fields, plus "id".
	FormatJSON
	// FormatCSV: values in the order of the declared fields, separated by
	// Mapping.Separator ("0.5,0.1").
	FormatCSV
	// FormatText: a regular expression whose named groups are the fields.
	FormatText
)

var formatNames = enumNames{"", "json", "csv", "text"}

func (f Format) String() string               { return formatNames.name(int(f)) }
func (f Format) MarshalText() ([]byte, error) { return []byte(f.String()), nil }
func (f *Format) UnmarshalText(text []byte) error {
	i, err := formatNames.parse("format", text)
	*f = Format(i)
	return err
}

// FieldType is the type of a field of a signal's data.
type FieldType uint8

const (
	TypeUnset FieldType = iota
	TypeFloat
	TypeInt
	TypeBool
	TypeEnum
	TypeString
)

var fieldTypeNames = enumNames{"", "float", "int", "bool", "enum", "string"}

func (t FieldType) String() string               { return fieldTypeNames.name(int(t)) }
func (t FieldType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }
func (t *FieldType) UnmarshalText(text []byte) error {
	i, err := fieldTypeNames.parse("type", text)
	*t = FieldType(i)
	return err
}

func (t FieldType) numeric() bool { return t == TypeFloat || t == TypeInt }

// RangePolicy says what happens to a number outside [min, max].
type RangePolicy uint8

const (
	RangeUnset RangePolicy = iota
	// RangeReject rejects the signal (the default).
	RangeReject
	// RangeClamp moves the value to the nearest bound.
	RangeClamp
)

var rangeNames = enumNames{"", "reject", "clamp"}

func (r RangePolicy) String() string               { return rangeNames.name(int(r)) }
func (r RangePolicy) MarshalText() ([]byte, error) { return []byte(r.String()), nil }
func (r *RangePolicy) UnmarshalText(text []byte) error {
	i, err := rangeNames.parse("out_of_range", text)
	*r = RangePolicy(i)
	return err
}

// Coalesce says whether the device layer may replace a waiting command of
// this type by a newer one.
type Coalesce uint8

const (
	CoalesceUnset Coalesce = iota
	// CoalesceLatest keeps only the newest waiting command (setpoints).
	CoalesceLatest
	// CoalesceNone sends every command (one-shots).
	CoalesceNone
)

var coalesceNames = enumNames{"", "latest", "none"}

func (c Coalesce) String() string               { return coalesceNames.name(int(c)) }
func (c Coalesce) MarshalText() ([]byte, error) { return []byte(c.String()), nil }
func (c *Coalesce) UnmarshalText(text []byte) error {
	i, err := coalesceNames.parse("coalesce", text)
	*c = Coalesce(i)
	return err
}

// LeaseMode says whether one operator at a time holds the right to drive.
type LeaseMode uint8

const (
	LeaseUnset LeaseMode = iota
	// LeaseOff: any allowed sender may drive.
	LeaseOff
	// LeaseExclusive: only the lease holder's setpoints and one-shots run;
	// stop and e-stop are honoured from anyone.
	LeaseExclusive
)

var leaseNames = enumNames{"", "off", "exclusive"}

func (l LeaseMode) String() string               { return leaseNames.name(int(l)) }
func (l LeaseMode) MarshalText() ([]byte, error) { return []byte(l.String()), nil }
func (l *LeaseMode) UnmarshalText(text []byte) error {
	i, err := leaseNames.parse("lease", text)
	*l = LeaseMode(i)
	return err
}

// UnknownPolicy says what the agent does with a signal type it has no
// mapping for.
type UnknownPolicy uint8

const (
	UnknownUnset UnknownPolicy = iota
	// UnknownIgnore drops it silently (the default: sessions carry other
	// applications' signals, and the agent's own broadcasts).
	UnknownIgnore
	// UnknownReject acks it "rejected" with code unknown_type.
	UnknownReject
)

var unknownNames = enumNames{"", "ignore", "reject"}

func (u UnknownPolicy) String() string               { return unknownNames.name(int(u)) }
func (u UnknownPolicy) MarshalText() ([]byte, error) { return []byte(u.String()), nil }
func (u *UnknownPolicy) UnmarshalText(text []byte) error {
	i, err := unknownNames.parse("unknown_signals", text)
	*u = UnknownPolicy(i)
	return err
}

// Duration is a time.Duration written as "500ms" in YAML. "0" and "off"
// are zero.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string {
	t := time.Duration(d)
	switch {
	case t == 0:
		return "0s"
	case t%time.Hour == 0:
		return fmt.Sprintf("%dh", t/time.Hour)
	case t%time.Minute == 0:
		return fmt.Sprintf("%dm", t/time.Minute)
	case t%time.Second == 0:
		return fmt.Sprintf("%ds", t/time.Second)
	case t%time.Millisecond == 0:
		return fmt.Sprintf("%dms", t/time.Millisecond)
	}
	return t.String()
}

func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func (d *Duration) UnmarshalText(text []byte) error {
	s := string(text)
	if s == "0" || s == "off" {
		*d = 0
		return nil
	}
	t, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as 500ms or 2s, got %q", s)
	}
	if t < 0 {
		return fmt.Errorf("duration %s is negative", s)
	}
	*d = Duration(t)
	return nil
}

// Rate is a rate limit, "20/s", "300/m" or "5/500ms": at most N signals per
// Per, as a token bucket with a burst of N.
type Rate struct {
	N   int
	Per time.Duration
}

func (r Rate) String() string {
	switch r.Per {
	case time.Second:
		return fmt.Sprintf("%d/s", r.N)
	case time.Minute:
		return fmt.Sprintf("%d/m", r.N)
	}
	return fmt.Sprintf("%d/%s", r.N, Duration(r.Per))
}

func (r Rate) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

func (r *Rate) UnmarshalText(text []byte) error {
	s := string(text)
	n, per, ok := strings.Cut(s, "/")
	bad := fmt.Errorf("want a rate such as 20/s, 300/m or 5/500ms, got %q", s)
	if !ok {
		return bad
	}
	i, err := strconv.Atoi(n)
	if err != nil || i < 1 || i > 100000 {
		return bad
	}
	var d time.Duration
	switch per {
	case "s":
		d = time.Second
	case "m", "min":
		d = time.Minute
	case "h":
		d = time.Hour
	default:
		if d, err = time.ParseDuration(per); err != nil || d <= 0 {
			return bad
		}
	}
	*r = Rate{N: i, Per: d}
	return nil
}

// Risk names an unsafe setting that a configuration may enable only by
// listing it in safety.i_understand_the_risk.
type Risk string

// The risks a configuration can acknowledge.
const (
	RiskNoDeadman           Risk = "no_deadman"              // a setpoint mapping with deadman 0
	RiskLongDeadman         Risk = "long_deadman"            // deadman over 5 s
	RiskNoMaxAge            Risk = "no_max_age"              // max_age 0: stale commands are never dropped
	RiskLongMaxAge          Risk = "long_max_age"            // max_age over 2 s
	RiskNoStopOnSessionLoss Risk = "no_stop_on_session_loss" // the robot keeps going when the agent loses the session
	RiskNoStopOnShutdown    Risk = "no_stop_on_shutdown"     // the robot keeps going when the agent exits
	RiskNoStopLine          Risk = "no_stop_line"            // a raw device with no stop_line cannot be stopped
	RiskRestrictedStop      Risk = "restricted_stop"         // a stop mapping that not everyone may send
	RiskLongDeviceWatchdog  Risk = "long_device_watchdog"    // a device wdog_ms over 1 s
)

var allRisks = []Risk{
	RiskNoDeadman, RiskLongDeadman, RiskNoMaxAge, RiskLongMaxAge, RiskNoStopOnSessionLoss,
	RiskNoStopOnShutdown, RiskRestrictedStop, RiskLongDeviceWatchdog,
}
