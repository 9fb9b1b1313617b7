package bridge

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"
)

// Incoming is a signal as the agent received it from the session.
type Incoming struct {
	Type     string
	Data     string
	From     string // the sender's connection ID; "" for a signal sent through the REST API
	ConnData string // the sender's connection data ("role=operator,name=alice")
	AgeMs    int64  // the relay's ageMs: how long the signal waited before delivery
}

// Command is what a signal maps to. For setpoint and oneshot it is a line
// for one device; for stop, estop and clear the device's own line is meant
// (Device.StopCommand, EstopCommand, ClearCommand) and Device "" means
// every device; control carries a lease request and no device at all.
type Command struct {
	Type   string // the signal type
	Kind   Kind
	Device string
	// Text is the command line body: for teleop/1 without seq and checksum
	// ("VEL 0.400 -0.200"), which the device layer adds; for raw the whole
	// line without its ending. It holds only printable ASCII other than
	// '!', '?' and '*', and fits the device's line.
	Text string
	// ID is the operator's "id" as JSON text (17 or "a1"), to echo in the
	// ack; "" when the data had none.
	ID       string
	MaxAge   time.Duration // drop it when it waited longer (0 for stop and estop: never)
	Deadman  time.Duration // setpoint: send one stop when no newer setpoint came for this long
	Coalesce bool          // the device layer keeps only the newest waiting one
	Ack      bool          // ack success to the sender (rejections are always acked)
	Control  Control       // kind control only
}

// Control is a lease request (kind control).
type Control struct {
	Action ControlAction
	To     string // transfer: the connection ID that gets the lease
}

// ControlAction is what a control signal asks of the lease.
type ControlAction uint8

const (
	ControlNone ControlAction = iota
	ControlAcquire
	ControlRelease
	ControlTransfer
)

var controlNames = []string{"", "acquire", "release", "transfer"}

func (a ControlAction) String() string { return enumNames(controlNames).name(int(a)) }

// RejectCode says why a signal was not mapped; its String is the ack's
// "code".
type RejectCode uint8

const (
	CodeUnknownType  RejectCode = iota + 1 // no mapping for the type
	CodeForbidden                          // the sender may not send this type
	CodeStale                              // older than the mapping's max age
	CodeTooLarge                           // data over 8 KB
	CodeBadData                            // not JSON, not an object, does not match the csv or text format
	CodeUnknownField                       // a field the schema does not have
	CodeBadValue                           // wrong type, out of range, not in the enum, pattern mismatch
	CodeMissingField                       // a required field is absent
	CodeBadCommand                         // the rendered line failed the final check
)

var rejectNames = []string{"", "unknown_type", "forbidden", "stale", "too_large", "bad_data", "unknown_field", "bad_value", "missing_field", "bad_command"}

func (c RejectCode) String() string { return enumNames(rejectNames).name(int(c)) }

// Rejection is a signal the mapper refused, with a reason for humans.
type Rejection struct {
	Type   string
	Code   RejectCode
	Reason string // "linear 3.2 out of range [-1, 1]"
	ID     string // the operator's id as JSON text, when it could be read
	// Ack is false for signals the agent ignores silently (unknown types
	// under unknown_signals: ignore, and the agent's own signal types).
	Ack bool
}

func (r *Rejection) Error() string { return fmt.Sprintf("%s: %s: %s", r.Type, r.Code, r.Reason) }

// Mapper maps signals to commands. It holds no mutable state: Map may be
// called from any number of goroutines. Rate limits, coalescing, the
// deadman and the lease are the agent's, driven by the fields of Command
// and Mapping.
type Mapper struct {
	byType  map[string]*mapping
	unknown UnknownPolicy
	own     map[string]bool // the agent's own output types: never acked
	roleKey string
}

// mapping is a Mapping compiled for Map.
type mapping struct {
	typ        string
	kind       Kind
	device     string
	proto      Protocol
	maxBody    int
	format     Format
	sep        byte
	textRE     *regexp.Regexp
	groupField []int // text: subexpression index → field index (-1: not a field)
	fields     []field
	names      string // "linear, angular", for reasons
	required   bool   // any field is required
	tmpl       *template.Template
	ops        []op // the fast path, nil when the template needs text/template
	allow      *allowRule
	maxAge     time.Duration
	deadman    time.Duration
	coalesce   bool
	ack        bool
	rate       Rate
}

type allowRule struct {
	roles []string
	data  []*regexp.Regexp
	api   bool
}

// NewMapper compiles the mappings of a configuration that Parse or Load
// returned. A Config built in Go needs ApplyDefaults first; NewMapper
// validates it again and refuses an invalid one.
func NewMapper(c *Config) (*Mapper, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	m := &Mapper{
		byType:  make(map[string]*mapping, len(c.Mappings)),
		unknown: c.UnknownSignals,
		roleKey: c.Access.RoleKey,
		own:     map[string]bool{c.Outputs.AckType: true, c.Outputs.TelemetryType: true, c.Outputs.StatusType: true},
	}
	var errs []error
	for _, mc := range c.Mappings {
		var d *Device
		if mc.Device != "" {
			if d = c.Device(mc.Device); d == nil {
				errs = append(errs, fmt.Errorf("mapping %s: no device %q", mc.Type, mc.Device))
				continue
			}
		}
		mp, err := compileMapping(mc, d)
		if err != nil {
			errs = append(errs, fmt.Errorf("mapping %s: %w", mc.Type, err))
			continue
		}
		m.byType[mc.Type] = mp
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return m, nil
}

// controlFields is the schema of a control signal's data.
var controlFields = []*Field{
	{Name: "action", Type: TypeEnum, Values: []string{"acquire", "release", "transfer"}, Required: true},
	{Name: "to", Type: TypeString, Pattern: `[\x21-\x7E]{1,128}`, MaxLen: 128, Default: new(string)},
}

// compileMapping compiles m for device d (nil for stop, estop, clear on every
// device, and for control). Template problems are returned as Errors with
// an empty path: they belong to the mapping's command.
func compileMapping(m *Mapping, d *Device) (*mapping, error) {
	mp := &mapping{
		typ: m.Type, kind: m.Kind, device: m.Device, format: m.Format,
		coalesce: m.Coalesce == CoalesceLatest, ack: m.Ack == nil || *m.Ack,
	}
	if m.MaxAge != nil && m.Kind != KindStop && m.Kind != KindEstop {
		mp.maxAge = m.MaxAge.D()
	}
	if m.Deadman != nil && m.Kind == KindSetpoint {
		mp.deadman = m.Deadman.D()
	}
	if m.RateLimit != nil {
		mp.rate = *m.RateLimit
	}
	if m.Allow != nil {
		a := &allowRule{roles: m.Allow.Roles, api: m.Allow.API}
		for _, p := range m.Allow.Data {
			re, err := compileFullMatch(p)
			if err != nil {
				return nil, err
			}
			a.data = append(a.data, re)
		}
		mp.allow = a
	}
	if d != nil {
		mp.proto, mp.maxBody = d.Protocol, d.maxBody()
	}
	fields := m.Fields
	if m.Kind == KindControl {
		fields = controlFields
	}
	names := make([]string, len(fields))
	for i, f := range fields {
		cf, err := compileField(f)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.Name, err)
		}
		mp.fields = append(mp.fields, cf)
		mp.required = mp.required || f.Required
		names[i] = f.Name
	}
	mp.names = strings.Join(names, ", ")
	switch m.Format {
	case FormatCSV:
		mp.sep = m.Separator[0]
	case FormatText:
		re, err := compileFullMatch(m.Pattern)
		if err != nil {
			return nil, err
		}
		mp.textRE = re
		for _, g := range re.SubexpNames() {
			mp.groupField = append(mp.groupField, fieldIndex(mp.fields, g))
		}
	}
	if m.Kind != KindSetpoint && m.Kind != KindOneshot {
		return mp, nil
	}
	if d == nil {
		return nil, errors.New("no device")
	}
	t, err := template.New(m.Type).Funcs(templateFuncs).Option("missingkey=error").Parse(m.Command)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "template: "+m.Type+":")
		if _, rest, ok := strings.Cut(msg, ": "); ok {
			msg = rest // drop the template's own line number: the command is one line
		}
		return nil, Errors{{Msg: "bad template: " + msg}}
	}
	if err := checkTree(t.Tree.Root, mp.fields); err != nil {
		var es Errors
		for _, e := range strings.Split(err.Error(), "\n") {
			es = append(es, &Error{Msg: e})
		}
		return nil, es
	}
	mp.tmpl = t
	if ops, ok := compileOps(t.Tree.Root, mp.fields); ok {
		mp.ops = ops
	}
	if err := mp.checkSamples(); err != nil {
		return nil, Errors{{Msg: err.Error()}}
	}
	return mp, nil
}

// Verbs of firmware-protocol.md that only the agent sends.
var agentVerbs = map[string]string{
	"SET":   "put settings under the device's settings:, applied after each handshake",
	"RESET": "a reset is not an operator command",
	"VER":   "the handshake is the agent's",
	"ESTOP": "use kind estop (the '!' byte)",
	"CLEAR": "use kind clear",
	"HB":    "heartbeats are the agent's, sent while an operator's input is alive",
}

// checkSamples renders the template for combinations of each field's
// default, bounds, enum values and pattern samples, and checks every line
// as Map would. It also checks that the fast path renders the same bytes;
// if not, the fast path is dropped (tests treat that as a bug).
func (mp *mapping) checkSamples() error {
	cands := make([][]value, len(mp.fields))
	for i := range mp.fields {
		cands[i] = mp.fields[i].samples()
		if len(cands[i]) == 0 {
			return fmt.Errorf("field %s: could not build a sample value from its pattern; give it a default", mp.fields[i].name)
		}
	}
	var vals [maxFields]value
	try := func(idx []int) error {
		for i := range mp.fields {
			vals[i] = cands[i][idx[i]]
		}
		line, err := renderTemplate(mp.tmpl, mp.fields, &vals)
		if err != nil {
			return fmt.Errorf("%s%v", mp.describe(&vals), err)
		}
		if err := checkLine(line, mp.proto, mp.maxBody); err != nil {
			return fmt.Errorf("%s%v: %q", mp.describe(&vals), err, line)
		}
		if mp.proto == ProtoTeleop1 {
			verb, _, _ := strings.Cut(line, " ")
			if why, ok := agentVerbs[verb]; ok {
				return fmt.Errorf("%s is sent by the agent only (%s)", verb, why)
			}
			if verb == "VEL" && mp.kind != KindSetpoint {
				return errors.New("VEL is a setpoint (firmware-protocol.md §4.1): use kind setpoint")
			}
		}
		if mp.ops != nil {
			var buf [128]byte
			fast, err := renderOps(buf[:0], mp.ops, mp.fields, &vals)
			if err != nil || string(fast) != line {
				mp.ops = nil
			}
		}
		return nil
	}
	return forCombos(cands, try)
}

// forCombos calls try on every combination of candidate indexes when there
// are at most 4096, else on the defaults, each field varied alone, and the
// "all first / all last" diagonals.
func forCombos(cands [][]value, try func([]int) error) error {
	total := 1
	for _, c := range cands {
		total *= len(c)
		if total > 4096 {
			break
		}
	}
	idx := make([]int, len(cands))
	if total <= 4096 {
		for {
			if err := try(idx); err != nil {
				return err
			}
			i := 0
			for ; i < len(idx); i++ {
				idx[i]++
				if idx[i] < len(cands[i]) {
					break
				}
				idx[i] = 0
			}
			if i == len(idx) {
				return nil
			}
		}
	}
	if err := try(idx); err != nil {
		return err
	}
	for i := range cands {
		for j := range cands[i] {
			clear(idx)
			idx[i] = j
			if err := try(idx); err != nil {
				return err
			}
		}
	}
	for j := 0; j < 8; j++ {
		for i := range cands {
			idx[i] = j % len(cands[i])
			if j%2 == 1 {
				idx[i] = len(cands[i]) - 1 - (j/2)%len(cands[i])
			}
		}
		if err := try(idx); err != nil {
			return err
		}
	}
	return nil
}

// samples are the values a field is tried with at load; the first is its
// default when it has one.
func (f *field) samples() []value {
	var out []value
	add := func(v value) {
		v.set = true
		for _, o := range out {
			if o == v {
				return
			}
		}
		out = append(out, v)
	}
	if f.def.set {
		add(f.def)
	}
	switch f.typ {
	case TypeFloat, TypeInt:
		add(numValue(f.min))
		add(numValue(f.max))
		if f.min <= 0 && 0 <= f.max {
			add(numValue(0))
		}
		mid := f.min + (f.max-f.min)/3
		if f.typ == TypeInt {
			mid = math.Round(mid)
		}
		add(numValue(mid))
		add(numValue(-mid))
		if f.typ == TypeFloat { // a long fraction near each bound
			add(numValue(f.max - (f.max-f.min)/7e4))
			add(numValue(f.min + (f.max-f.min)/7e4))
		}
	case TypeBool:
		add(value{b: false})
		add(value{b: true})
	case TypeEnum:
		for _, e := range f.values {
			add(value{s: e})
		}
	case TypeString:
		for _, s := range patternSamples(strings.TrimSuffix(strings.TrimPrefix(f.re.String(), "^(?:"), ")$"), f.maxLen) {
			add(value{s: s})
		}
	}
	// Keep only values the field itself accepts (e.g. -mid out of range).
	kept := out[:0]
	for _, v := range out {
		if f.typ.numeric() && (v.f < f.min || v.f > f.max) {
			continue
		}
		kept = append(kept, v)
	}
	return kept
}

func numValue(x float64) value {
	if x == 0 {
		x = 0
	}
	return value{f: x, i: int64(x)}
}

// describe says which sample values a template failed with: "with
// linear=-1 angular=2: ", or "" when it has no fields.
func (mp *mapping) describe(vals *[maxFields]value) string {
	if len(mp.fields) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("with ")
	for i := range mp.fields {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(mp.fields[i].name)
		b.WriteByte('=')
		switch v := vals[i]; mp.fields[i].typ {
		case TypeFloat, TypeInt:
			b.WriteString(fmtNum(v.f))
		case TypeBool:
			b.WriteString(strconv.FormatBool(v.b))
		default:
			b.WriteString(strconv.Quote(v.s))
		}
	}
	b.WriteString(": ")
	return b.String()
}

// Map maps one signal. Exactly one of the results is meaningful: a command
// when the rejection is nil. Stop and estop signals always map (from
// anyone, however malformed their data; only an acknowledged
// restricted_stop can refuse a stop).
func (m *Mapper) Map(sig Incoming) (Command, *Rejection) {
	mp := m.byType[sig.Type]
	if mp == nil {
		return Command{}, m.unknownType(sig)
	}
	cmd := Command{
		Type: sig.Type, Kind: mp.kind, Device: mp.device, MaxAge: mp.maxAge,
		Deadman: mp.deadman, Coalesce: mp.coalesce, Ack: mp.ack,
	}
	if mp.kind == KindStop || mp.kind == KindEstop {
		cmd.ID = idOf(sig.Data)
		if mp.kind == KindStop && !mp.allowed(sig, m.roleKey) {
			return Command{}, reject(sig, CodeForbidden, cmd.ID, fmt.Sprintf("this connection may not send %q", sig.Type))
		}
		return cmd, nil
	}
	if !mp.allowed(sig, m.roleKey) {
		return Command{}, reject(sig, CodeForbidden, idOf(sig.Data), fmt.Sprintf("this connection may not send %q", sig.Type))
	}
	if mp.maxAge > 0 && sig.AgeMs > mp.maxAge.Milliseconds() {
		return Command{}, reject(sig, CodeStale, idOf(sig.Data),
			fmt.Sprintf("signal waited %d ms; the limit is %d ms", sig.AgeMs, mp.maxAge.Milliseconds()))
	}
	if len(sig.Data) > maxDataBytes {
		return Command{}, reject(sig, CodeTooLarge, "", fmt.Sprintf("data is %d bytes; the limit is %d", len(sig.Data), maxDataBytes))
	}
	if !utf8.ValidString(sig.Data) {
		return Command{}, reject(sig, CodeBadData, "", "data is not valid UTF-8")
	}
	var vals [maxFields]value
	var code RejectCode
	var reason string
	switch mp.format {
	case FormatJSON:
		cmd.ID, code, reason = mp.parseJSON(sig.Data, &vals)
	case FormatCSV:
		code, reason = mp.parseCSV(sig.Data, &vals)
	case FormatText:
		code, reason = mp.parseText(sig.Data, &vals)
	}
	if code == 0 {
		code, reason = mp.fillDefaults(&vals)
	}
	if code != 0 {
		if cmd.ID == "" && mp.format == FormatJSON {
			cmd.ID = scanID(sig.Data)
		}
		return Command{}, reject(sig, code, cmd.ID, reason)
	}
	switch mp.kind {
	case KindControl:
		cmd.Control.Action = ControlAction(indexOf(controlNames, vals[0].s))
		cmd.Control.To = vals[1].s
		if cmd.Control.Action == ControlTransfer && cmd.Control.To == "" {
			return Command{}, reject(sig, CodeMissingField, cmd.ID, "to is required for transfer")
		}
		return cmd, nil
	case KindClear:
		return cmd, nil
	}
	if mp.ops != nil {
		var buf [128]byte
		line, err := renderOps(buf[:0], mp.ops, mp.fields, &vals)
		if err != nil {
			return Command{}, reject(sig, CodeBadCommand, cmd.ID, err.Error())
		}
		cmd.Text = string(line)
	} else {
		line, err := renderTemplate(mp.tmpl, mp.fields, &vals)
		if err != nil {
			return Command{}, reject(sig, CodeBadCommand, cmd.ID, err.Error())
		}
		cmd.Text = line
	}
	// Defence in depth: whatever the template did, check what it produced.
	if err := checkLine(cmd.Text, mp.proto, mp.maxBody); err != nil {
		return Command{}, reject(sig, CodeBadCommand, cmd.ID, err.Error())
	}
	return cmd, nil
}

func reject(sig Incoming, code RejectCode, id, reason string) *Rejection {
	return &Rejection{Type: sig.Type, Code: code, Reason: reason, ID: id, Ack: true}
}

// idOf reads the id of data that the strict reading did not reach.
func idOf(data string) string {
	if len(data) > maxDataBytes || !utf8.ValidString(data) {
		return ""
	}
	return scanID(data)
}

func indexOf(xs []string, s string) int {
	for i, x := range xs {
		if x == s {
			return i
		}
	}
	return 0
}

func (m *Mapper) unknownType(sig Incoming) *Rejection {
	r := &Rejection{Type: sig.Type, Code: CodeUnknownType, Reason: fmt.Sprintf("no mapping for signal type %s", quoteShort(sig.Type))}
	// Never acked: the agent's own signal types (it receives its broadcasts),
	// signals from the REST API (no sender to ack), and the empty type (a
	// "ping" that only identifies its sender).
	r.Ack = m.unknown == UnknownReject && !m.own[sig.Type] && sig.From != "" && sig.Type != ""
	if r.Ack {
		r.ID = idOf(sig.Data)
	}
	return r
}

// MappingInfo is what the agent needs to know about a signal type before
// (or besides) mapping one: to rate-limit it, route it, arm timers.
type MappingInfo struct {
	Kind      Kind
	Device    string // "" for every device (stop, estop, clear) or none (control)
	RateLimit Rate   // per sender; zero N means none
	MaxAge    time.Duration
	Deadman   time.Duration
	Coalesce  bool
	Ack       bool
}

// Info describes the mapping of a signal type; ok is false for unmapped
// types.
func (m *Mapper) Info(typ string) (info MappingInfo, ok bool) {
	mp := m.byType[typ]
	if mp == nil {
		return MappingInfo{}, false
	}
	return MappingInfo{Kind: mp.kind, Device: mp.device, RateLimit: mp.rate, MaxAge: mp.maxAge,
		Deadman: mp.deadman, Coalesce: mp.coalesce, Ack: mp.ack}, true
}

// allowed applies the mapping's allow list to the sender.
func (mp *mapping) allowed(sig Incoming, roleKey string) bool {
	a := mp.allow
	if a == nil {
		return true
	}
	if sig.From == "" {
		return a.api
	}
	if len(a.roles) > 0 {
		if role := RoleOf(sig.ConnData, roleKey); role != "" {
			for _, r := range a.roles {
				if r == role {
					return true
				}
			}
		}
	}
	for _, re := range a.data {
		if re.MatchString(sig.ConnData) {
			return true
		}
	}
	return false
}

// RoleOf returns the value of key in connection data written as
// "k=v,k2=v2" (',' or '&' between pairs) or as a flat JSON object.
func RoleOf(connData, key string) string {
	s := strings.TrimSpace(connData)
	if strings.HasPrefix(s, "{") {
		p := jsonScanner{s: s}
		if _, err := p.begin(); err != nil {
			return ""
		}
		for {
			k, v, done, err := p.next()
			if err != nil || done || v.kind == jsonObject || v.kind == jsonArray {
				return ""
			}
			if k.text() == key && v.kind == jsonString {
				return v.text()
			}
		}
	}
	for s != "" {
		var pair string
		if i := strings.IndexAny(s, ",&"); i >= 0 {
			pair, s = s[:i], s[i+1:]
		} else {
			pair, s = s, ""
		}
		if k, v, ok := strings.Cut(pair, "="); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func (mp *mapping) parseJSON(data string, vals *[maxFields]value) (id string, code RejectCode, reason string) {
	if strings.TrimSpace(data) == "" {
		if mp.required {
			return "", CodeMissingField, fmt.Sprintf("data is empty; want a JSON object with %s", mp.names)
		}
		return "", 0, ""
	}
	p := jsonScanner{s: data}
	if notObject, err := p.begin(); err != nil {
		if notObject {
			return "", CodeBadData, "data is not a JSON object" + mp.wantFields()
		}
		return "", CodeBadData, "data is not JSON" + mp.wantFields()
	}
	var seen uint64
	seenID := false
	for {
		key, val, done, err := p.next()
		if err != nil {
			return id, CodeBadData, fmt.Sprintf("data is not JSON: %s at offset %d", err.msg, err.off)
		}
		if done {
			return id, 0, ""
		}
		k := key.raw
		if key.esc {
			k = key.text()
		}
		if k == "id" {
			if seenID {
				return "", CodeBadData, `"id" given twice`
			}
			seenID = true
			if !validID(val) {
				return "", CodeBadValue, fmt.Sprintf("id: want a number or a string of at most %d characters, got %s", maxIDLen-2, val.kind)
			}
			id = val.token
			continue
		}
		fi := fieldIndex(mp.fields, k)
		if fi < 0 {
			return id, CodeUnknownField, fmt.Sprintf("field %s unknown (fields: %s)", quoteShort(k), mp.names)
		}
		if seen&(1<<fi) != 0 {
			return id, CodeBadData, fmt.Sprintf("field %q given twice", k)
		}
		seen |= 1 << fi
		f := &mp.fields[fi]
		if val.kind == jsonObject || val.kind == jsonArray {
			return id, CodeBadValue, fmt.Sprintf("%s: want %s, got %s", f.name, f.want(), val.kind)
		}
		v, code, reason := f.fromJSON(val)
		if code != 0 {
			return id, code, reason
		}
		vals[fi] = v
	}
}

func (mp *mapping) wantFields() string {
	if mp.names == "" {
		return ""
	}
	return " (want an object with " + mp.names + ")"
}

func (f *field) want() string {
	switch f.typ {
	case TypeFloat, TypeInt:
		return "a number"
	case TypeBool:
		return "true or false"
	}
	return "a string"
}

func (mp *mapping) parseCSV(data string, vals *[maxFields]value) (RejectCode, string) {
	rest := data
	for n := 0; ; n++ {
		seg, tail, more := strings.Cut(rest, string(mp.sep))
		seg = strings.Trim(seg, " \t\r\n")
		if n >= len(mp.fields) {
			return CodeBadData, fmt.Sprintf("want at most %d values separated by %q (%s), got more", len(mp.fields), mp.sep, mp.names)
		}
		if seg != "" {
			v, code, reason := mp.fields[n].fromText(seg)
			if code != 0 {
				return code, reason
			}
			vals[n] = v
		}
		if !more {
			return 0, ""
		}
		rest = tail
	}
}

func (mp *mapping) parseText(data string, vals *[maxFields]value) (RejectCode, string) {
	loc := mp.textRE.FindStringSubmatchIndex(data)
	if loc == nil {
		return CodeBadData, fmt.Sprintf("data %s does not match the pattern %s", quoteShort(data),
			strings.TrimSuffix(strings.TrimPrefix(mp.textRE.String(), "^(?:"), ")$"))
	}
	for g, fi := range mp.groupField {
		if fi < 0 || loc[2*g] < 0 {
			continue
		}
		v, code, reason := mp.fields[fi].fromText(data[loc[2*g]:loc[2*g+1]])
		if code != 0 {
			return code, reason
		}
		vals[fi] = v
	}
	return 0, ""
}

func (mp *mapping) fillDefaults(vals *[maxFields]value) (RejectCode, string) {
	for i := range mp.fields {
		if vals[i].set {
			continue
		}
		if mp.fields[i].required {
			return CodeMissingField, mp.fields[i].name + " is required"
		}
		vals[i] = mp.fields[i].def
	}
	return 0, ""
}
