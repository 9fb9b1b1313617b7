package bridge

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the agent's configuration (teleop agent --config FILE). The
// structs mirror the YAML; docs/configuration.md is the reference. Parse and
// Load decode, apply defaults (ApplyDefaults, the one place defaults live)
// and validate.
type Config struct {
	Version        int           `yaml:"version"`
	Session        Session       `yaml:"session"`
	Devices        []*Device     `yaml:"devices"`
	Safety         Safety        `yaml:"safety"`
	Access         Access        `yaml:"access"`
	UnknownSignals UnknownPolicy `yaml:"unknown_signals"`
	Outputs        Outputs       `yaml:"outputs"`
	Mappings       []*Mapping    `yaml:"mappings"`
}

// Session says how the agent joins its signaling session.
type Session struct {
	Server string `yaml:"server"` // http(s) or ws(s) URL of the relay
	// FallbackServers are the other nodes of a relay cluster, tried in
	// order when Server cannot be reached (docs/cluster.md).
	FallbackServers []string `yaml:"fallback_servers"`
	SessionID       string   `yaml:"session_id"` // required when minting; else optional (the token names it)

	// Credentials: exactly one of Token, TokenFile, or APIKey with APISecret.
	Token     string `yaml:"token" secret:"true"`
	TokenFile string `yaml:"token_file"` // re-read before each reconnect
	APIKey    string `yaml:"api_key"`
	APISecret string `yaml:"api_secret" secret:"true"`

	// Minting only (APIKey): the agent's own token.
	Role           string    `yaml:"role"`
	TokenTTL       *Duration `yaml:"token_ttl"`
	ConnectionData string    `yaml:"connection_data"` // names the robot to every client, e.g. "name=robot-1"
}

// Device is one serial device: where it is, how fast, and what it speaks.
type Device struct {
	Name string `yaml:"-"`

	// Exactly one of Port, ByID, USB.
	Port string `yaml:"port"`  // a path, e.g. /dev/ttyACM0
	ByID string `yaml:"by_id"` // a name under /dev/serial/by-id/, or a full path there
	USB  *USB   `yaml:"usb"`

	Baud         int       `yaml:"baud"`
	Protocol     Protocol  `yaml:"protocol"`
	ReplyTimeout *Duration `yaml:"reply_timeout"` // per try of a one-shot command

	// teleop/1: applied with SET after every handshake.
	Settings Settings `yaml:"settings"`

	// raw only.
	OKPattern  string `yaml:"ok_pattern"`  // a reply matching it acks "ok"; absent: acks are "sent"
	ErrPattern string `yaml:"err_pattern"` // a reply matching it acks "error"
	StopLine   string `yaml:"stop_line"`   // required: sent for stop, deadman, session loss and shutdown
	EstopLine  string `yaml:"estop_line"`  // sent three times for e-stop; default stop_line (firmware-protocol.md §10)
	ClearLine  string `yaml:"clear_line"`  // sent for clear, if the firmware latches
	MaxLine    int    `yaml:"max_line"`    // bytes including the '\n'; default 64
}

func (d *Device) setKey(k string) { d.Name = k }

// USB selects a port by the USB identity of its adapter.
type USB struct {
	VID    string `yaml:"vid"` // 4 hex digits, e.g. "2341"
	PID    string `yaml:"pid"`
	Serial string `yaml:"serial"` // optional: tells apart two identical boards
}

// Setting is one key=value of a device's SET command.
type Setting struct {
	Key   string
	Value string
}

// Settings are a device's settings in file order. In YAML: a mapping
// `{wdog_ms: 300, tlm_hz: 10, max_lin: 0.5}`.
type Settings []Setting

// Get returns the value of key.
func (s Settings) Get(key string) (string, bool) {
	for _, kv := range s {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return "", false
}

func (s *Settings) decodeYAML(d *decoder, n *yaml.Node, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping of setting names to values, got %s", kindName(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := joinPath(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.errorf(k, p, "given twice (first on line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		d.lines[p] = k.Line
		if val, ok := d.scalar(v, p, "a value"); ok {
			*s = append(*s, Setting{Key: k.Value, Value: val})
		}
	}
}

// Safety holds the settings behind the bridge's safety invariants
// (DESIGN.md). Unsafe values are refused unless named in IUnderstandTheRisk.
type Safety struct {
	Deadman            *Duration `yaml:"deadman"`              // setpoints: one stop when none arrived for this long
	MaxAge             *Duration `yaml:"max_age"`              // default max age of a signal
	StopOnSessionLoss  *bool     `yaml:"stop_on_session_loss"` // stop every device when the session drops
	StopOnShutdown     *bool     `yaml:"stop_on_shutdown"`     // stop every device when the agent exits
	StopType           string    `yaml:"stop_type"`
	EstopType          string    `yaml:"estop_type"`
	ClearType          string    `yaml:"clear_type"`
	ControlType        string    `yaml:"control_type"`
	Lease              LeaseMode `yaml:"lease"`
	LeaseIdle          *Duration `yaml:"lease_idle"` // an exclusive lease is released after this long without a signal from its holder
	IUnderstandTheRisk []Risk    `yaml:"i_understand_the_risk"`
}

// Access says who may send what.
type Access struct {
	// RoleKey is the key of the sender's role in its connection data
	// ("role=operator,name=alice" or {"role":"operator"}). Tokens' own
	// roles are not visible to other clients, so roles travel there.
	RoleKey string `yaml:"role_key"`
	// Allow is the default for mappings without their own allow (setpoint,
	// oneshot, clear and control; stop and e-stop are open to everyone).
	Allow *Allow `yaml:"allow"`
}

// Allow lists who may send a signal type. A sender is allowed when its role
// is in Roles or its connection data fully matches one of Data; a signal
// sent through the REST API (no sender connection) only when API is true.
type Allow struct {
	Roles []string `yaml:"roles"`
	Data  []string `yaml:"data"`
	API   bool     `yaml:"api"`
}

// Outputs names the signals the agent sends.
type Outputs struct {
	AckType           string    `yaml:"ack_type"`
	TelemetryType     string    `yaml:"telemetry_type"`
	StatusType        string    `yaml:"status_type"`
	TelemetryInterval *Duration `yaml:"telemetry_interval"` // at most one telemetry signal per interval
}

// Mapping maps one signal type to device commands.
type Mapping struct {
	Type string `yaml:"-"` // the signal type, the key in `mappings:`

	Kind   Kind   `yaml:"kind"`
	Device string `yaml:"device"` // stop, estop, clear: empty means every device

	// How the data is read.
	Format    Format `yaml:"format"`
	Separator string `yaml:"separator"` // csv: default ","
	Pattern   string `yaml:"pattern"`   // text: a regular expression with a named group per field
	Fields    Fields `yaml:"fields"`

	// Command is a text/template producing the command line: for teleop/1 the
	// line without seq and checksum ("VEL {{ fixed 3 .linear }} ..."), for raw
	// the whole line.
	Command string `yaml:"command"`

	Allow     *Allow    `yaml:"allow"`
	Coalesce  Coalesce  `yaml:"coalesce"`
	MaxAge    *Duration `yaml:"max_age"`
	Deadman   *Duration `yaml:"deadman"`
	RateLimit *Rate     `yaml:"rate_limit"` // per sender
	Ack       *bool     `yaml:"ack"`

	// Implicit is set on the safety mappings (stop, estop, clear, control)
	// that ApplyDefaults added because the file did not declare them.
	Implicit bool `yaml:"-"`

	maxAgeFromSafety  bool // MaxAge was filled in from safety.max_age
	deadmanFromSafety bool // Deadman from safety.deadman
	allowFromAccess   bool // Allow from access.allow
}

func (m *Mapping) setKey(k string) { m.Type = k }

// Field is one field of a signal's data.
type Field struct {
	Name       string      `yaml:"-"`
	Type       FieldType   `yaml:"type"`
	Min        *float64    `yaml:"min"`
	Max        *float64    `yaml:"max"`
	OutOfRange RangePolicy `yaml:"out_of_range"`
	Default    *string     `yaml:"default,plain"`
	Required   bool        `yaml:"required"`
	Values     []string    `yaml:"values"`  // enum
	Pattern    string      `yaml:"pattern"` // string: the whole value must match
	MaxLen     int         `yaml:"max_len"` // string: bytes; default 32
}

func (f *Field) setKey(k string) { f.Name = k }

// Fields are a mapping's fields in file order (the order of csv values).
type Fields []*Field

// Limits.
const (
	maxDataBytes    = 8192 // signaling.MaxDataBytes
	maxTypeLen      = 128  // signaling.MaxTypeLen
	maxFields       = 32   // per mapping
	maxStringLen    = 48   // a string field, rendered
	maxAbsBound     = 1e9  // |min|, |max| of a number field
	maxEnumValueLen = 32
	maxTemplateLen  = 1024
	teleopSeqRoom   = 5 + 1 // "65535 "
	teleopSumRoom   = 3 + 1 // "*HH\n"
	deadmanLimit    = 5 * time.Second
	maxAgeLimit     = 2 * time.Second
	wdogLimitMs     = 1000
)

var (
	signalTypeRE  = regexp.MustCompile(`^[A-Za-z0-9_~-]{1,128}$`)
	deviceNameRE  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
	fieldNameRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
	settingKeyRE  = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)
	settingValRE  = regexp.MustCompile(`^[A-Za-z0-9._:+/-]{1,32}$`)
	enumValueRE   = regexp.MustCompile(`^[A-Za-z0-9_.:+/=-]{1,32}$`)
	hex4RE        = regexp.MustCompile(`^(0x)?[0-9A-Fa-f]{4}$`)
	standardBauds = []int{1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 250000, 460800, 500000, 921600, 1000000, 2000000}
	tokenRoles    = []string{"publisher", "subscriber", "moderator"}
)

// Validate checks the session settings on their own.
func (s *Session) Validate() error {
	var p problems
	relayURL := func(raw string) bool {
		u, err := url.Parse(raw)
		return err == nil && u.Host != "" && slices.Contains([]string{"http", "https", "ws", "wss"}, u.Scheme)
	}
	if s.Server == "" {
		p.add("server", "required")
	} else if !relayURL(s.Server) {
		p.add("server", "want an http://, https://, ws:// or wss:// URL with a host, got %q", s.Server)
	}
	for i, f := range s.FallbackServers {
		if !relayURL(f) {
			p.add(fmt.Sprintf("fallback_servers[%d]", i), "want an http://, https://, ws:// or wss:// URL with a host, got %q", f)
		}
	}
	if len(s.SessionID) > 256 || !printable(s.SessionID) {
		p.add("session_id", "must be at most 256 printable characters")
	}
	creds := 0
	for _, c := range []string{s.Token, s.TokenFile, s.APIKey} {
		if c != "" {
			creds++
		}
	}
	switch {
	case creds == 0:
		p.add("", "credentials missing: give token, token_file, or api_key and api_secret")
	case creds > 1:
		p.add("", "give only one of token, token_file, api_key")
	}
	if s.Token != "" && (!printable(s.Token) || strings.Contains(s.Token, " ")) {
		p.add("token", "contains a space or a control character")
	}
	if s.APIKey != "" {
		if s.APISecret == "" {
			p.add("api_key", "needs api_secret")
		}
		if s.SessionID == "" {
			p.add("api_key", "needs session_id (the agent mints its own token for that session)")
		}
		if s.Role != "" && !slices.Contains(tokenRoles, s.Role) {
			p.add("role", "%q is not one of %s (the agent must be able to signal)", s.Role, strings.Join(tokenRoles, ", "))
		}
		if s.TokenTTL != nil {
			if t := s.TokenTTL.D(); t < time.Minute || t > 30*24*time.Hour || t%time.Second != 0 {
				p.add("token_ttl", "want whole seconds between 1m and 720h, got %s", *s.TokenTTL)
			}
		}
		if len(s.ConnectionData) > 1024 {
			p.add("connection_data", "is %d bytes; the limit is 1024", len(s.ConnectionData))
		}
	} else {
		if s.APISecret != "" {
			p.add("api_secret", "only applies with api_key")
		}
		if s.Role != "" {
			p.add("role", "only applies when the agent mints its token (api_key)")
		}
		if s.TokenTTL != nil {
			p.add("token_ttl", "only applies when the agent mints its token (api_key)")
		}
		if s.ConnectionData != "" {
			p.add("connection_data", "only applies when the agent mints its token (api_key); a given token carries its own")
		}
	}
	return p.err()
}

// Validate checks a USB selection.
func (u *USB) Validate() error {
	var p problems
	if !hex4RE.MatchString(u.VID) {
		p.add("vid", "want 4 hex digits such as \"2341\", got %q", u.VID)
	}
	if !hex4RE.MatchString(u.PID) {
		p.add("pid", "want 4 hex digits such as \"0043\", got %q", u.PID)
	}
	if !printable(u.Serial) || strings.ContainsAny(u.Serial, " :") {
		p.add("serial", "contains a space, ':' or a control character")
	}
	return p.err()
}

// Validate checks a device on its own.
func (d *Device) Validate() error {
	var p problems
	if !deviceNameRE.MatchString(d.Name) {
		p.add("", "device names are 1-32 of A-Z a-z 0-9 _ -")
	}
	sel := 0
	if d.Port != "" {
		sel++
		if !printable(d.Port) {
			p.add("port", "contains a control character")
		}
	}
	if d.ByID != "" {
		sel++
		if !printable(d.ByID) || (strings.Contains(d.ByID, "/") && !strings.HasPrefix(d.ByID, "/dev/serial/by-id/")) {
			p.add("by_id", "want a name under /dev/serial/by-id/ (or the full path there), got %q", d.ByID)
		}
	}
	if d.USB != nil {
		sel++
		p.merge("usb", d.USB.Validate())
	}
	switch {
	case sel == 0:
		p.add("", "no port: give port, by_id or usb")
	case sel > 1:
		p.add("", "give only one of port, by_id, usb")
	}
	if !slices.Contains(standardBauds, d.Baud) {
		p.add("baud", "%d is not a standard rate (%s)", d.Baud, joinInts(standardBauds))
	}
	if d.ReplyTimeout != nil && (d.ReplyTimeout.D() < 10*time.Millisecond || d.ReplyTimeout.D() > 10*time.Second) {
		p.add("reply_timeout", "want 10ms to 10s, got %s", *d.ReplyTimeout)
	}
	// The raw protocol's settings, in the order they are reported.
	raw := []struct{ key, val string }{
		{"ok_pattern", d.OKPattern}, {"err_pattern", d.ErrPattern}, {"stop_line", d.StopLine},
		{"estop_line", d.EstopLine}, {"clear_line", d.ClearLine},
	}
	switch d.Protocol {
	case ProtoTeleop1:
		for _, r := range raw {
			if r.val != "" {
				p.add(r.key, "only applies to protocol raw")
			}
		}
		if d.MaxLine != 0 {
			p.add("max_line", "only applies to protocol raw (teleop/1 lines are 64 bytes)")
		}
		d.validateSettings(&p)
	case ProtoRaw:
		if len(d.Settings) > 0 {
			p.add("settings", "protocol raw has no settings (there is no handshake)")
		}
		if d.StopLine == "" {
			p.add("stop_line", "required for protocol raw: the line that stops the robot (deadman, session loss, shutdown, and e-stop sent three times)")
		}
		if d.ErrPattern != "" && d.OKPattern == "" {
			p.add("err_pattern", "needs ok_pattern (without one, commands are acked \"sent\" and no reply is read)")
		}
		if d.MaxLine < 8 || d.MaxLine > 256 {
			p.add("max_line", "want 8 to 256 bytes, got %d", d.MaxLine)
		}
		for _, r := range raw {
			switch {
			case r.val == "":
			case strings.HasSuffix(r.key, "_pattern"):
				if _, err := regexp.Compile(r.val); err != nil {
					p.add(r.key, "bad regular expression: %v", err)
				}
			default:
				if err := checkLine(r.val, ProtoRaw, d.maxBody()); err != nil {
					p.add(r.key, "%v", err)
				}
			}
		}
	default:
		p.add("protocol", "required: teleop/1 or raw")
	}
	return p.err()
}

func (d *Device) validateSettings(p *problems) {
	for _, s := range d.Settings {
		path := "settings." + s.Key
		if !settingKeyRE.MatchString(s.Key) {
			p.add(path, "setting names are lower-case letters, digits and _, starting with a letter")
			continue
		}
		switch s.Key {
		case "strict":
			p.add(path, "the agent always sets strict=1")
		case "wdog_ms":
			checkIntSetting(p, path, s.Value, 50, 5000)
		case "tlm_hz":
			checkIntSetting(p, path, s.Value, 0, 50)
		case "max_lin", "max_ang":
			if f, ok := parseDecimal(s.Value); !ok || f <= 0 || !validWireNumber(s.Value) {
				p.add(path, "want a number > 0 with at most 4 decimals, got %q", s.Value)
			}
		default:
			if !settingValRE.MatchString(s.Value) {
				p.add(path, "value %q: want 1-32 of A-Z a-z 0-9 . _ : + / -", s.Value)
			}
		}
	}
}

func checkIntSetting(p *problems, path, v string, lo, hi int) {
	i, err := strconv.Atoi(v)
	if err != nil || i < lo || i > hi {
		p.add(path, "want an integer from %d to %d, got %q", lo, hi, v)
	}
}

// SettingsLine shows the settings the agent applies after each handshake
// as one SET command ("SET strict=1 wdog_ms=300 tlm_hz=10"); the device
// layer may split them over several lines to fit 64 bytes. Empty for raw.
func (d *Device) SettingsLine() string {
	if d.Protocol != ProtoTeleop1 {
		return ""
	}
	var b strings.Builder
	b.WriteString("SET strict=1")
	for _, s := range d.Settings {
		b.WriteString(" ")
		b.WriteString(s.Key)
		b.WriteString("=")
		b.WriteString(s.Value)
	}
	return b.String()
}

// PortSpec is the port selection as devices.Resolve takes it: a path, a
// /dev/serial/by-id/ path, or usb:VID:PID[:serial].
func (d *Device) PortSpec() string {
	switch {
	case d.Port != "":
		return d.Port
	case d.ByID != "":
		if strings.HasPrefix(d.ByID, "/") {
			return d.ByID
		}
		return "/dev/serial/by-id/" + d.ByID
	case d.USB != nil:
		s := "usb:" + strings.ToLower(strings.TrimPrefix(d.USB.VID, "0x")) + ":" + strings.ToLower(strings.TrimPrefix(d.USB.PID, "0x"))
		if d.USB.Serial != "" {
			s += ":" + d.USB.Serial
		}
		return s
	}
	return ""
}

// StopCommand is the command line that stops the device in an orderly way:
// "STOP" for teleop/1 (the device layer adds seq and checksum), stop_line
// for raw.
func (d *Device) StopCommand() string {
	if d.Protocol == ProtoTeleop1 {
		return "STOP"
	}
	return d.StopLine
}

// EstopCommand is the raw e-stop line, sent three times; "" for teleop/1,
// whose e-stop is the '!' byte sent three times on the fast path.
func (d *Device) EstopCommand() string {
	if d.Protocol == ProtoTeleop1 {
		return ""
	}
	return d.EstopLine
}

// ClearCommand is the line that releases a latched e-stop: "CLEAR" for
// teleop/1, clear_line (possibly "") for raw.
func (d *Device) ClearCommand() string {
	if d.Protocol == ProtoTeleop1 {
		return "CLEAR"
	}
	return d.ClearLine
}

// maxBody is the longest command body the device takes: for teleop/1 the
// 64-byte line minus a 5-digit seq, its space and "*HH\n"; for raw the
// configured line length minus the line ending.
func (d *Device) maxBody() int {
	if d.Protocol == ProtoTeleop1 {
		return 64 - teleopSeqRoom - teleopSumRoom
	}
	return d.MaxLine - 1
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, " ")
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7E {
			return false
		}
	}
	return true
}
