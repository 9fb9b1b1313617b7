package bridge

import (
	"bytes"
	"encoding"
	"fmt"
	"reflect"
	"strings"
	"text/tabwriter"

	"gopkg.in/yaml.v3"
)

// Summary is a short human description of a valid configuration: where
// the agent connects, its devices, its safety settings and what every
// signal type maps to. `teleop config check` prints it.
func (c *Config) Summary() string {
	var b strings.Builder
	s := c.Session
	creds := "token"
	switch {
	case s.TokenFile != "":
		creds = "token file " + s.TokenFile
	case s.APIKey != "":
		creds = fmt.Sprintf("minted (api key %s, role %s, ttl %s)", s.APIKey, s.Role, *s.TokenTTL)
	}
	fmt.Fprintf(&b, "session   %s", s.Server)
	if s.SessionID != "" {
		fmt.Fprintf(&b, " session %s", s.SessionID)
	}
	fmt.Fprintf(&b, ", credentials: %s\n", creds)
	for _, d := range c.Devices {
		fmt.Fprintf(&b, "device    %s: %s %d baud, %s", d.Name, d.PortSpec(), d.Baud, d.Protocol)
		if d.Protocol == ProtoTeleop1 {
			fmt.Fprintf(&b, ", after handshake: %s", d.SettingsLine())
		} else {
			acks := "acks \"sent\""
			if d.OKPattern != "" {
				acks = "acks by reply"
			}
			fmt.Fprintf(&b, ", stop %q, %s", d.StopLine, acks)
		}
		b.WriteString("\n")
	}
	sf := c.Safety
	fmt.Fprintf(&b, "safety    deadman %s, max_age %s, stop on session loss %t, on shutdown %t, lease %s",
		*sf.Deadman, *sf.MaxAge, *sf.StopOnSessionLoss, *sf.StopOnShutdown, sf.Lease)
	if sf.Lease == LeaseExclusive {
		fmt.Fprintf(&b, " (idle %s)", *sf.LeaseIdle)
	}
	fmt.Fprintf(&b, ", unknown signals: %s\n", c.UnknownSignals)
	if len(sf.IUnderstandTheRisk) > 0 {
		r := make([]string, len(sf.IUnderstandTheRisk))
		for i, x := range sf.IUnderstandTheRisk {
			r[i] = string(x)
		}
		fmt.Fprintf(&b, "RISKS ACKNOWLEDGED: %s\n", strings.Join(r, ", "))
	}
	b.WriteString("mappings\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  TYPE\tKIND\tDEVICE\tDATA\tFROM\tMAX_AGE\tDEADMAN\tACK\tCOMMAND")
	for _, m := range c.Mappings {
		dev := m.Device
		if dev == "" {
			dev = "(all)"
			if m.Kind == KindControl {
				dev = "(lease)"
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Type, m.Kind, dev, m.dataSummary(), m.fromSummary(),
			optDuration(m.MaxAge), optDuration(m.Deadman), m.ackSummary(), c.commandSummary(m))
	}
	tw.Flush()
	return b.String()
}

func optDuration(d *Duration) string {
	if d == nil {
		return "-"
	}
	return d.String()
}

func (m *Mapping) dataSummary() string {
	names := make([]string, len(m.Fields))
	for i, f := range m.Fields {
		names[i] = f.Name
	}
	switch m.Format {
	case FormatCSV:
		return "csv " + strings.Join(names, m.Separator)
	case FormatText:
		return "text " + strings.Join(names, ",")
	}
	if m.Kind == KindControl {
		return "json action,to"
	}
	if len(names) == 0 {
		return "json (id only)"
	}
	return "json " + strings.Join(names, ",")
}

func (m *Mapping) fromSummary() string {
	s := "anyone"
	if m.Allow != nil {
		var parts []string
		if len(m.Allow.Roles) > 0 {
			parts = append(parts, "roles "+strings.Join(m.Allow.Roles, ","))
		}
		if len(m.Allow.Data) > 0 {
			parts = append(parts, fmt.Sprintf("%d data patterns", len(m.Allow.Data)))
		}
		if m.Allow.API {
			parts = append(parts, "api")
		}
		s = strings.Join(parts, "+")
	}
	if m.RateLimit != nil {
		s += " " + m.RateLimit.String()
	}
	return s
}

func (m *Mapping) ackSummary() string {
	if m.Ack != nil && !*m.Ack {
		return "errors"
	}
	return "yes"
}

func (c *Config) commandSummary(m *Mapping) string {
	devs := c.Devices
	if m.Device != "" {
		devs = []*Device{c.Device(m.Device)}
	}
	var parts []string
	line := func(d *Device) string {
		switch m.Kind {
		case KindStop:
			return d.StopCommand()
		case KindEstop:
			if d.Protocol == ProtoTeleop1 {
				return "! ×3"
			}
			return d.EstopCommand() + " ×3"
		case KindClear:
			if l := d.ClearCommand(); l != "" {
				return l
			}
			return "(agent latch only)"
		}
		return ""
	}
	switch m.Kind {
	case KindSetpoint, KindOneshot:
		return m.Command
	case KindControl:
		return "(lease request)"
	}
	for _, d := range devs {
		if d == nil {
			continue
		}
		if len(devs) > 1 {
			parts = append(parts, d.Name+": "+line(d))
		} else {
			parts = append(parts, line(d))
		}
	}
	return strings.Join(parts, "; ")
}

// Normalized is the configuration as the agent runs it, as YAML: every
// default filled in, the implicit safety mappings added, secrets redacted.
// Its golden files show exactly what each example config means.
func (c *Config) Normalized() []byte {
	n := encodeNode(reflect.ValueOf(c).Elem(), reflect.StructField{})
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		panic("bridge: encode normalized config: " + err.Error()) // the tree is built here; a failure is a bug
	}
	return buf.Bytes()
}

var textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()

// encodeNode builds the YAML of v; nil means "leave it out".
func encodeNode(v reflect.Value, sf reflect.StructField) *yaml.Node {
	opts := sf.Tag.Get("yaml")
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	} else if v.IsZero() && v.Kind() != reflect.Struct {
		return nil
	}
	if sf.Tag.Get("secret") == "true" {
		return scalar("<redacted>", "!!str")
	}
	if v.Type().Implements(textMarshalerType) && v.Kind() != reflect.Struct || v.Type() == reflect.TypeFor[Rate]() {
		t, _ := v.Interface().(encoding.TextMarshaler).MarshalText()
		return scalar(string(t), "!!str")
	}
	switch v.Kind() {
	case reflect.String:
		if strings.HasSuffix(opts, ",plain") {
			return scalar(v.String(), "")
		}
		return scalar(v.String(), "!!str")
	case reflect.Bool:
		return scalar(fmt.Sprint(v.Bool()), "")
	case reflect.Int, reflect.Int64:
		return scalar(fmt.Sprint(v.Int()), "")
	case reflect.Float64:
		return scalar(fmtNum(v.Float()), "")
	case reflect.Struct:
		m := &yaml.Node{Kind: yaml.MappingNode}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" || !f.IsExported() {
				continue
			}
			if c := encodeNode(v.Field(i), f); c != nil {
				m.Content = append(m.Content, scalar(name, "!!str"), c)
			}
		}
		if len(m.Content) == 0 && sf.Name != "" {
			return nil
		}
		return m
	case reflect.Slice:
		if v.Type() == reflect.TypeFor[Settings]() {
			m := &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
			for _, s := range v.Interface().(Settings) {
				m.Content = append(m.Content, scalar(s.Key, "!!str"), scalar(s.Value, ""))
			}
			return m
		}
		if v.Type().Elem().Implements(keyedType) {
			m := &yaml.Node{Kind: yaml.MappingNode}
			for i := 0; i < v.Len(); i++ {
				e := v.Index(i)
				c := encodeNode(e, reflect.StructField{})
				if c == nil {
					c = &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
				}
				k := scalar(keyOf(e.Interface()), "!!str")
				if mp, ok := e.Interface().(*Mapping); ok && mp.Implicit {
					k.HeadComment = "implicit: added because the file does not declare it"
				}
				if _, ok := e.Interface().(*Field); ok {
					c.Style = yaml.FlowStyle
				}
				m.Content = append(m.Content, k, c)
			}
			return m
		}
		s := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for i := 0; i < v.Len(); i++ {
			if c := encodeNode(v.Index(i), reflect.StructField{}); c != nil {
				s.Content = append(s.Content, c)
			}
		}
		return s
	}
	panic("bridge: cannot encode " + v.Type().String())
}

func keyOf(x any) string {
	switch e := x.(type) {
	case *Device:
		return e.Name
	case *Mapping:
		return e.Type
	case *Field:
		return e.Name
	}
	return ""
}

func scalar(v, tag string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Value: v, Tag: tag}
}
