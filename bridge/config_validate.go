package bridge

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Validate checks the safety section on its own; the unsafe values that
// need an acknowledged risk are judged by Config.Validate, which knows the
// mappings.
func (s *Safety) Validate() error {
	var p problems
	types := map[string]string{}
	for _, t := range []struct{ path, v string }{
		{"stop_type", s.StopType}, {"estop_type", s.EstopType}, {"clear_type", s.ClearType}, {"control_type", s.ControlType},
	} {
		if !signalTypeRE.MatchString(t.v) {
			p.add(t.path, "%q is not a signal type (1-128 of A-Z a-z 0-9 - _ ~)", t.v)
			continue
		}
		if other, dup := types[t.v]; dup {
			p.add(t.path, "%q is also %s", t.v, other)
		}
		types[t.v] = t.path
	}
	if s.Lease == LeaseExclusive && (s.LeaseIdle == nil || s.LeaseIdle.D() < 100*time.Millisecond) {
		p.add("lease_idle", "an exclusive lease needs lease_idle of at least 100ms")
	}
	seen := map[Risk]bool{}
	for i, r := range s.IUnderstandTheRisk {
		path := fmt.Sprintf("i_understand_the_risk[%d]", i)
		if !slices.Contains(allRisks, r) {
			names := make([]string, len(allRisks))
			for i, r := range allRisks {
				names[i] = string(r)
			}
			p.add(path, "unknown risk %q%s; the risks are %s", r, suggest(string(r), names), strings.Join(names, ", "))
		}
		if seen[r] {
			p.add(path, "%s listed twice", r)
		}
		seen[r] = true
	}
	return p.err()
}

// Validate checks an allow list.
func (a *Allow) Validate() error {
	var p problems
	if len(a.Roles) == 0 && len(a.Data) == 0 && !a.API {
		p.add("", "allows nobody: give roles, data or api: true (or remove allow to let everyone send)")
	}
	for i, r := range a.Roles {
		if r == "" || !printable(r) || strings.ContainsAny(r, ",&= ") {
			p.add(fmt.Sprintf("roles[%d]", i), "%q is not a role name", r)
		}
	}
	for i, d := range a.Data {
		if _, err := regexp.Compile(d); err != nil {
			p.add(fmt.Sprintf("data[%d]", i), "bad regular expression: %v", err)
		}
	}
	return p.err()
}

// Validate checks the access section.
func (a *Access) Validate() error {
	var p problems
	if a.RoleKey == "" || !printable(a.RoleKey) || strings.ContainsAny(a.RoleKey, ",&= ") {
		p.add("role_key", "%q is not a key of connection data", a.RoleKey)
	}
	if a.Allow != nil {
		p.merge("allow", a.Allow.Validate())
	}
	return p.err()
}

// Validate checks the outputs section.
func (o *Outputs) Validate() error {
	var p problems
	seen := map[string]string{}
	for _, t := range []struct{ path, v string }{{"ack_type", o.AckType}, {"telemetry_type", o.TelemetryType}, {"status_type", o.StatusType}} {
		if !signalTypeRE.MatchString(t.v) {
			p.add(t.path, "%q is not a signal type (1-128 of A-Z a-z 0-9 - _ ~)", t.v)
		} else if other, dup := seen[t.v]; dup {
			p.add(t.path, "%q is also %s", t.v, other)
		}
		seen[t.v] = t.path
	}
	if o.TelemetryInterval != nil && o.TelemetryInterval.D() != 0 && o.TelemetryInterval.D() < 20*time.Millisecond {
		p.add("telemetry_interval", "want 0 (every TLM line) or at least 20ms, got %s", *o.TelemetryInterval)
	}
	return p.err()
}

// Validate checks a field's schema.
func (f *Field) Validate() error {
	var p problems
	if !fieldNameRE.MatchString(f.Name) {
		p.add("", "field names are letters, digits and _, starting with a letter or _ (they are used as .name in templates)")
	}
	if f.Name == "id" {
		p.add("", "\"id\" is reserved: it is the operator's command id, echoed in acks")
	}
	not := func(cond bool, name, why string) {
		if cond {
			p.add(name, "only applies to %s fields", why)
		}
	}
	not(!f.Type.numeric() && (f.Min != nil), "min", "float and int")
	not(!f.Type.numeric() && (f.Max != nil), "max", "float and int")
	not(!f.Type.numeric() && f.OutOfRange != RangeUnset, "out_of_range", "float and int")
	not(f.Type != TypeEnum && len(f.Values) > 0, "values", "enum")
	not(f.Type != TypeString && f.Pattern != "", "pattern", "string")
	not(f.Type != TypeString && f.MaxLen != 0, "max_len", "string")
	if f.Required && f.Default != nil {
		p.add("default", "a required field has no default")
	}
	if !f.Required && f.Default == nil && f.Type != TypeUnset {
		p.add("", "give a default, or required: true")
	}
	switch f.Type {
	case TypeUnset:
		p.add("type", "required: float, int, bool, enum or string")
	case TypeFloat, TypeInt:
		if f.Min == nil {
			p.add("min", "required for %s fields", f.Type)
		}
		if f.Max == nil {
			p.add("max", "required for %s fields", f.Type)
		}
		if f.Min == nil || f.Max == nil {
			break
		}
		lo, hi := *f.Min, *f.Max
		if math.Abs(lo) > maxAbsBound || math.Abs(hi) > maxAbsBound {
			p.add("", "min and max must be within ±1e9")
			break
		}
		if lo > hi {
			p.add("", "min %s > max %s", fmtNum(lo), fmtNum(hi))
			break
		}
		if f.Type == TypeInt && (lo != math.Trunc(lo) || hi != math.Trunc(hi)) {
			p.add("", "min and max of an int field must be integers")
		}
		if f.Type == TypeFloat && (!fitsWire(lo) || !fitsWire(hi)) {
			p.add("", "min and max of a float field have at most 4 decimals (the firmware's number format)")
		}
		if f.Default != nil {
			v, err := f.parseText(*f.Default)
			switch {
			case err != "":
				p.add("default", "%s", err)
			case v.f < lo || v.f > hi:
				p.add("default", "%s is out of range [%s, %s]", *f.Default, fmtNum(lo), fmtNum(hi))
			}
		}
	case TypeBool:
		if f.Default != nil && *f.Default != "true" && *f.Default != "false" {
			p.add("default", "want true or false, got %q", *f.Default)
		}
	case TypeEnum:
		if len(f.Values) == 0 {
			p.add("values", "an enum needs values")
		}
		for i, v := range f.Values {
			if !enumValueRE.MatchString(v) {
				p.add(fmt.Sprintf("values[%d]", i), "%q: enum values are 1-32 of A-Z a-z 0-9 _ . : + / = -", v)
			}
			if slices.Index(f.Values, v) != i {
				p.add(fmt.Sprintf("values[%d]", i), "%q listed twice", v)
			}
		}
		if f.Default != nil && !slices.Contains(f.Values, *f.Default) {
			p.add("default", "%q is not one of the values", *f.Default)
		}
	case TypeString:
		if f.MaxLen < 1 || f.MaxLen > maxStringLen {
			p.add("max_len", "want 1 to %d, got %d", maxStringLen, f.MaxLen)
		}
		if f.Pattern == "" {
			p.add("pattern", "a string field needs a pattern (operators' text reaches the serial line only through one)")
			break
		}
		re, err := compileFullMatch(f.Pattern)
		if err != nil {
			p.add("pattern", "%v", err)
			break
		}
		if err := checkPatternAlphabet(f.Pattern); err != nil {
			p.add("pattern", "%v", err)
		}
		if f.Default != nil && (!re.MatchString(*f.Default) || len(*f.Default) > f.MaxLen) {
			p.add("default", "%q does not match the pattern or is longer than max_len", *f.Default)
		}
	}
	return p.err()
}

// fitsWire reports whether x has at most 4 decimals.
func fitsWire(x float64) bool {
	s := strconv.FormatFloat(x, 'f', -1, 64)
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return len(s)-i-1 <= 4
	}
	return true
}

func fmtNum(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

// Validate checks a mapping on its own; references to devices and the
// safety section are checked by Config.Validate.
func (m *Mapping) Validate() error {
	var p problems
	if !signalTypeRE.MatchString(m.Type) {
		p.add("", "%q is not a signal type (1-128 of A-Z a-z 0-9 - _ ~)", m.Type)
	}
	if m.Kind == KindUnset {
		p.add("kind", "required: setpoint, oneshot, stop, estop, clear or control")
		return p.err()
	}
	hasCommand := m.Kind == KindSetpoint || m.Kind == KindOneshot
	if hasCommand {
		if m.Command == "" {
			p.add("command", "required for kind %s", m.Kind)
		} else if len(m.Command) > maxTemplateLen {
			p.add("command", "is %d bytes; the limit is %d", len(m.Command), maxTemplateLen)
		}
	} else {
		if m.Command != "" {
			p.add("command", "kind %s has no command: the device's own line is used (%s)", m.Kind, builtinLine(m.Kind))
		}
		if len(m.Fields) > 0 {
			p.add("fields", "kind %s reads only the data's \"id\"", m.Kind)
		}
		if m.Format != FormatJSON {
			p.add("format", "kind %s reads JSON data (or none)", m.Kind)
		}
	}
	if m.Kind == KindControl && m.Device != "" {
		p.add("device", "kind control acts on the lease, not on a device")
	}
	if m.Kind != KindSetpoint {
		if m.Deadman != nil && !m.deadmanFromSafety {
			p.add("deadman", "only applies to kind setpoint")
		}
		if m.Coalesce == CoalesceLatest {
			p.add("coalesce", "latest only applies to kind setpoint (it would drop one-shot commands)")
		}
	}
	if m.Kind == KindStop || m.Kind == KindEstop {
		if m.RateLimit != nil {
			p.add("rate_limit", "kind %s is never rate limited", m.Kind)
		}
		if m.MaxAge != nil {
			p.add("max_age", "kind %s is never dropped as stale (a late stop is still a stop)", m.Kind)
		}
	}
	if m.Kind == KindEstop && m.Allow != nil {
		p.add("allow", "e-stop is accepted from every connection; it cannot be restricted")
	}
	if m.Allow != nil && !m.allowFromAccess {
		p.merge("allow", m.Allow.Validate())
	}
	if m.RateLimit != nil && m.RateLimit.Per < time.Millisecond {
		p.add("rate_limit", "period too short")
	}
	if len(m.Fields) > maxFields {
		p.add("fields", "%d fields; the limit is %d", len(m.Fields), maxFields)
	}
	for _, f := range m.Fields {
		p.merge("fields."+f.Name, f.Validate())
	}
	switch m.Format {
	case FormatJSON:
		if m.Separator != "" {
			p.add("separator", "only applies to format csv")
		}
		if m.Pattern != "" {
			p.add("pattern", "only applies to format text")
		}
	case FormatCSV:
		if m.Pattern != "" {
			p.add("pattern", "only applies to format text")
		}
		if len(m.Separator) != 1 || m.Separator[0] < 0x20 || m.Separator[0] > 0x7E ||
			(m.Separator[0] >= '0' && m.Separator[0] <= '9') || m.Separator == "." || m.Separator == "-" {
			p.add("separator", "want one printable character that is not a digit, '.' or '-', got %q", m.Separator)
		}
		if len(m.Fields) == 0 {
			p.add("fields", "format csv needs fields, in the order of the values")
		}
	case FormatText:
		if m.Separator != "" {
			p.add("separator", "only applies to format csv")
		}
		m.validateTextPattern(&p)
	}
	return p.err()
}

func (m *Mapping) validateTextPattern(p *problems) {
	if m.Pattern == "" {
		p.add("pattern", "format text needs a pattern with a named group per field, e.g. ^(?P<linear>[-0-9.]+),(?P<angular>[-0-9.]+)$")
		return
	}
	re, err := compileFullMatch(m.Pattern)
	if err != nil {
		p.add("pattern", "%v", err)
		return
	}
	groups := map[string]bool{}
	for _, g := range re.SubexpNames() {
		if g == "" {
			continue
		}
		groups[g] = true
		if m.field(g) == nil {
			p.add("pattern", "group %q is not a field", g)
		}
	}
	for _, f := range m.Fields {
		if !groups[f.Name] {
			p.add("fields."+f.Name, "is not a named group of the pattern (write (?P<%s>…))", f.Name)
		}
	}
}

func (m *Mapping) field(name string) *Field {
	for _, f := range m.Fields {
		if f.Name == name {
			return f
		}
	}
	return nil
}

func builtinLine(k Kind) string {
	switch k {
	case KindStop:
		return "STOP for teleop/1, stop_line for raw"
	case KindEstop:
		return "the ! byte for teleop/1, estop_line for raw"
	case KindClear:
		return "CLEAR for teleop/1, clear_line for raw"
	}
	return "none"
}

// Validate checks the whole configuration, including what no part can
// check alone: mappings name existing devices, templates render valid lines
// for their device, safety types map to the right kinds, and unsafe values
// are acknowledged in safety.i_understand_the_risk. It expects defaults to
// have been applied (Parse and Load do that).
func (c *Config) Validate() error {
	var p problems
	if c.Version != 1 {
		p.add("version", "this agent reads version 1, got %d", c.Version)
	}
	p.merge("session", c.Session.Validate())
	if len(c.Devices) == 0 {
		p.add("devices", "at least one device is required")
	}
	for _, d := range c.Devices {
		p.merge("devices."+d.Name, d.Validate())
	}
	p.merge("safety", c.Safety.Validate())
	p.merge("access", c.Access.Validate())
	p.merge("outputs", c.Outputs.Validate())
	if !slices.ContainsFunc(c.Mappings, func(m *Mapping) bool { return !m.Implicit }) {
		p.add("mappings", "no mappings: the agent would do nothing but stop")
	}
	risks := riskLedger{acked: c.Safety.IUnderstandTheRisk, used: map[Risk]bool{}}
	reserved := map[string]string{
		c.Outputs.AckType: "outputs.ack_type", c.Outputs.TelemetryType: "outputs.telemetry_type", c.Outputs.StatusType: "outputs.status_type",
	}
	safetyKinds := map[string]struct {
		kind Kind
		path string
	}{
		c.Safety.StopType: {KindStop, "safety.stop_type"}, c.Safety.EstopType: {KindEstop, "safety.estop_type"},
		c.Safety.ClearType: {KindClear, "safety.clear_type"}, c.Safety.ControlType: {KindControl, "safety.control_type"},
	}
	for _, m := range c.Mappings {
		path := "mappings." + m.Type
		p.merge(path, m.Validate())
		if what, ok := reserved[m.Type]; ok {
			p.add(path, "%q is the agent's own signal (%s)", m.Type, what)
		}
		if sk, ok := safetyKinds[m.Type]; ok && m.Kind != KindUnset && m.Kind != sk.kind {
			p.add(path+".kind", "%q is %s, so its kind must be %s", m.Type, sk.path, sk.kind)
		}
		if m.Kind == KindControl && c.Safety.Lease != LeaseExclusive {
			p.add(path, "kind control needs safety.lease: exclusive")
		}
		c.validateMappingDevice(m, path, &p)
		c.mappingRisks(m, path, &p, &risks)
	}
	c.configRisks(&p, &risks)
	dedupe(&p)
	for _, r := range c.Safety.IUnderstandTheRisk {
		if slices.Contains(allRisks, r) && !risks.used[r] {
			i := slices.Index(c.Safety.IUnderstandTheRisk, r)
			p.add(fmt.Sprintf("safety.i_understand_the_risk[%d]", i), "%s is acknowledged but nothing in this file needs it; remove it", r)
		}
	}
	return p.err()
}

// Device returns the device named name, or nil.
func (c *Config) Device(name string) *Device {
	for _, d := range c.Devices {
		if d.Name == name {
			return d
		}
	}
	return nil
}

// Mapping returns the mapping of a signal type, or nil.
func (c *Config) Mapping(typ string) *Mapping {
	for _, m := range c.Mappings {
		if m.Type == typ {
			return m
		}
	}
	return nil
}

func (c *Config) deviceNames() []string {
	names := make([]string, len(c.Devices))
	for i, d := range c.Devices {
		names[i] = d.Name
	}
	return names
}

func (c *Config) validateMappingDevice(m *Mapping, path string, p *problems) {
	switch m.Kind {
	case KindControl, KindUnset:
		return
	case KindStop, KindEstop, KindClear:
		if m.Device != "" && c.Device(m.Device) == nil {
			p.add(path+".device", "no device %q%s (devices: %s)", m.Device, suggest(m.Device, c.deviceNames()), strings.Join(c.deviceNames(), ", "))
		}
		return
	}
	if m.Device == "" {
		p.add(path+".device", "required when there is more than one device (devices: %s)", strings.Join(c.deviceNames(), ", "))
		return
	}
	d := c.Device(m.Device)
	if d == nil {
		p.add(path+".device", "no device %q%s (devices: %s)", m.Device, suggest(m.Device, c.deviceNames()), strings.Join(c.deviceNames(), ", "))
		return
	}
	if m.Command == "" || m.Validate() != nil {
		return // the template is checked once the schema is sound
	}
	if _, err := compileMapping(m, d); err != nil {
		p.merge(path+".command", err)
	}
}

// riskLedger tracks which acknowledged risks the file actually needs.
type riskLedger struct {
	acked []Risk
	used  map[Risk]bool
}

// need records an unsafe value at path: fine when acknowledged, an error
// otherwise.
func (r *riskLedger) need(p *problems, risk Risk, path, format string, args ...any) {
	r.used[risk] = true
	if slices.Contains(r.acked, risk) {
		return
	}
	p.add(path, "%s is unsafe; to allow it anyway add %q to safety.i_understand_the_risk", fmt.Sprintf(format, args...), risk)
}

func (c *Config) mappingRisks(m *Mapping, path string, p *problems, r *riskLedger) {
	if m.Kind == KindSetpoint && m.Deadman != nil {
		dp, what := path+".deadman", fmt.Sprintf(" for setpoint %q", m.Type)
		if m.deadmanFromSafety {
			dp, what = "safety.deadman", ""
		}
		if d := m.Deadman.D(); d == 0 {
			r.need(p, RiskNoDeadman, dp, "deadman 0%s (the robot keeps its last command when the operator goes quiet)", what)
		} else if d > deadmanLimit {
			r.need(p, RiskLongDeadman, dp, "deadman %s%s (over %s)", *m.Deadman, what, Duration(deadmanLimit))
		}
	}
	if m.MaxAge != nil {
		ap, what := path+".max_age", fmt.Sprintf(" for %q", m.Type)
		if m.maxAgeFromSafety {
			ap, what = "safety.max_age", ""
		}
		if a := m.MaxAge.D(); a == 0 {
			r.need(p, RiskNoMaxAge, ap, "max_age 0%s (stale commands would run late)", what)
		} else if a > maxAgeLimit {
			r.need(p, RiskLongMaxAge, ap, "max_age %s%s (over %s)", *m.MaxAge, what, Duration(maxAgeLimit))
		}
	}
	if m.Kind == KindStop && m.Allow != nil {
		r.need(p, RiskRestrictedStop, path+".allow", "restricting who may stop the robot")
	}
}

func (c *Config) configRisks(p *problems, r *riskLedger) {
	if c.Safety.StopOnSessionLoss != nil && !*c.Safety.StopOnSessionLoss {
		r.need(p, RiskNoStopOnSessionLoss, "safety.stop_on_session_loss", "false")
	}
	if c.Safety.StopOnShutdown != nil && !*c.Safety.StopOnShutdown {
		r.need(p, RiskNoStopOnShutdown, "safety.stop_on_shutdown", "false")
	}
	for _, d := range c.Devices {
		path := "devices." + d.Name
		if v, ok := d.Settings.Get("wdog_ms"); ok {
			if ms, err := strconv.Atoi(v); err == nil && ms > wdogLimitMs {
				r.need(p, RiskLongDeviceWatchdog, path+".settings.wdog_ms", "wdog_ms %d (the device runs on for over %dms if the agent dies)", ms, wdogLimitMs)
			}
		}
	}
}

// dedupe drops repeated identical errors (a safety default inherited by
// several mappings is reported once).
func dedupe(p *problems) {
	seen := map[string]bool{}
	out := p.list[:0]
	for _, e := range p.list {
		k := e.Path + "\x00" + e.Msg
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, e)
	}
	p.list = out
}
