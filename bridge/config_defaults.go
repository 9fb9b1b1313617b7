package bridge

import "time"

// Defaults of the configuration. ApplyDefaults is the only place they are
// applied; docs/configuration.md lists the same values.
const (
	DefaultServer            = "http://127.0.0.1:7420" // teleop server's default listen address
	DefaultRole              = "publisher"             // minted token's role
	DefaultTokenTTL          = time.Hour               // minted token's lifetime
	DefaultBaud              = 115200                  // firmware-protocol.md §1
	DefaultReplyTimeout      = 250 * time.Millisecond  // firmware-protocol.md §7.2
	DefaultWdogMs            = "300"                   // teleop/1 wdog_ms when not given (as devices.DefaultWatchdogMs)
	DefaultTlmHz             = "10"                    // teleop/1 tlm_hz when not given
	DefaultRawMaxLine        = 64                      // raw: bytes with the line ending
	DefaultDeadman           = 500 * time.Millisecond  // the ROS convention (cmd_vel_timeout)
	DefaultMaxAge            = 300 * time.Millisecond  // older motion commands are dropped
	DefaultLeaseIdle         = 10 * time.Second
	DefaultTelemetryInterval = 200 * time.Millisecond // at most 5 telemetry signals a second
	DefaultStringMaxLen      = 32
)

// ApplyDefaults fills in every setting the file left out. It is idempotent.
// Mappings for the safety signal types (stop, estop, clear, and control when
// the lease is exclusive) are added when the file does not declare them.
func (c *Config) ApplyDefaults() {
	if c.Version == 0 {
		c.Version = 1
	}

	s := &c.Session
	setString(&s.Server, DefaultServer)
	if s.APIKey != "" {
		setString(&s.Role, DefaultRole)
		setDuration(&s.TokenTTL, DefaultTokenTTL)
	}

	for _, d := range c.Devices {
		if d.Baud == 0 {
			d.Baud = DefaultBaud
		}
		if d.Protocol == ProtoUnset {
			d.Protocol = ProtoTeleop1
		}
		setDuration(&d.ReplyTimeout, DefaultReplyTimeout)
		switch d.Protocol {
		case ProtoTeleop1:
			if _, ok := d.Settings.Get("wdog_ms"); !ok {
				d.Settings = append(Settings{{"wdog_ms", DefaultWdogMs}}, d.Settings...)
			}
			if _, ok := d.Settings.Get("tlm_hz"); !ok {
				d.Settings = append(d.Settings, Setting{"tlm_hz", DefaultTlmHz})
			}
		case ProtoRaw:
			if d.MaxLine == 0 {
				d.MaxLine = DefaultRawMaxLine
			}
			setString(&d.EstopLine, d.StopLine)
		}
	}

	sf := &c.Safety
	setDuration(&sf.Deadman, DefaultDeadman)
	setDuration(&sf.MaxAge, DefaultMaxAge)
	setBool(&sf.StopOnSessionLoss, true)
	setBool(&sf.StopOnShutdown, true)
	setString(&sf.StopType, "stop")
	setString(&sf.EstopType, "estop")
	setString(&sf.ClearType, "clear")
	setString(&sf.ControlType, "control")
	if sf.Lease == LeaseUnset {
		sf.Lease = LeaseOff
	}
	setDuration(&sf.LeaseIdle, DefaultLeaseIdle)

	setString(&c.Access.RoleKey, "role")
	if c.UnknownSignals == UnknownUnset {
		c.UnknownSignals = UnknownIgnore
	}
	o := &c.Outputs
	setString(&o.AckType, "ack")
	setString(&o.TelemetryType, "telemetry")
	setString(&o.StatusType, "status")
	setDuration(&o.TelemetryInterval, DefaultTelemetryInterval)

	// The safety signals always exist.
	implicit := []struct {
		typ  string
		kind Kind
	}{{sf.StopType, KindStop}, {sf.EstopType, KindEstop}, {sf.ClearType, KindClear}}
	if sf.Lease == LeaseExclusive {
		implicit = append(implicit, struct {
			typ  string
			kind Kind
		}{sf.ControlType, KindControl})
	}
	for _, im := range implicit {
		if m := c.Mapping(im.typ); m != nil {
			if m.Kind == KindUnset {
				m.Kind = im.kind
			}
			continue
		}
		c.Mappings = append(c.Mappings, &Mapping{Type: im.typ, Kind: im.kind, Implicit: true})
	}

	for _, m := range c.Mappings {
		if m.Format == FormatUnset {
			m.Format = FormatJSON
		}
		if m.Format == FormatCSV && m.Separator == "" {
			m.Separator = ","
		}
		switch m.Kind {
		case KindSetpoint, KindOneshot:
			if m.Device == "" && len(c.Devices) == 1 {
				m.Device = c.Devices[0].Name
			}
		}
		if m.Coalesce == CoalesceUnset {
			m.Coalesce = CoalesceNone
			if m.Kind == KindSetpoint {
				m.Coalesce = CoalesceLatest
			}
		}
		if m.Kind == KindSetpoint && m.Deadman == nil {
			d := *sf.Deadman
			m.Deadman, m.deadmanFromSafety = &d, true
		}
		if m.Kind != KindStop && m.Kind != KindEstop && m.Kind != KindUnset && m.MaxAge == nil {
			a := *sf.MaxAge
			m.MaxAge, m.maxAgeFromSafety = &a, true
		}
		switch m.Kind {
		case KindSetpoint, KindOneshot, KindClear, KindControl:
			if m.Allow == nil && c.Access.Allow != nil {
				m.Allow, m.allowFromAccess = c.Access.Allow, true
			}
		}
		setBool(&m.Ack, true)
		for _, f := range m.Fields {
			if f.Type.numeric() && f.OutOfRange == RangeUnset {
				f.OutOfRange = RangeReject
			}
			if f.Type == TypeString && f.MaxLen == 0 {
				f.MaxLen = DefaultStringMaxLen
			}
		}
	}
}

func setString(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func setDuration(p **Duration, v time.Duration) {
	if *p == nil {
		d := Duration(v)
		*p = &d
	}
}

func setBool(p **bool, v bool) {
	if *p == nil {
		*p = &v
	}
}
