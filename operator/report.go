package operator

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// ConnData reads a token's connection data the way the agent does
// (docs/configuration.md, access): "role=robot,name=rover-1", pairs
// separated by "," or "&", or a flat JSON object. The first value of a key
// wins; values are strings.
func ConnData(data string) map[string]string {
	out := map[string]string{}
	s := strings.TrimSpace(data)
	if strings.HasPrefix(s, "{") {
		var obj map[string]any
		if json.Unmarshal([]byte(s), &obj) == nil {
			for k, v := range obj {
				switch v := v.(type) {
				case string:
					out[k] = v
				case float64:
					out[k] = strconv.FormatFloat(v, 'f', -1, 64)
				case bool:
					out[k] = strconv.FormatBool(v)
				}
			}
			return out
		}
	}
	for part := range strings.FieldsFuncSeq(s, func(r rune) bool { return r == ',' || r == '&' }) {
		k, v, _ := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		if _, seen := out[k]; k != "" && !seen {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

// Value is a number that may be absent.
type Value struct {
	V  float64
	OK bool
}

// Ack is the agent's acknowledgment of one signal:
// {"id":17,"type":"drive","status":"ok","code":…,"reason":…,"device_ms":…}.
type Ack struct {
	ID       string // the echoed id as JSON text: 17 → "17", "a" → "a"
	Type     string
	Status   string // ok, sent, superseded, rejected, error, timeout
	Code     string // "" when absent
	Reason   string
	DeviceMs Value
	BridgeMs Value
}

// Fine reports whether the ack is a success: ok, sent or superseded (a
// newer setpoint replaced this one, which is the point of newest-wins).
func (a Ack) Fine() bool {
	switch a.Status {
	case "ok", "sent", "superseded":
		return true
	}
	return false
}

// ReadAck reads an ack signal's data. ok is false when it is not a JSON
// object with an id. A missing status counts as "ok".
func ReadAck(data string) (a Ack, ok bool) {
	o := object(data)
	if o == nil {
		return Ack{}, false
	}
	id := text(o["id"])
	if id == "" {
		return Ack{}, false
	}
	a = Ack{ID: id, Type: str(o["type"]), Status: str(o["status"]), Code: text(o["code"]), Reason: str(o["reason"])}
	if a.Status == "" {
		a.Status = "ok"
	}
	a.DeviceMs, a.BridgeMs = number(o["device_ms"]), number(o["bridge_ms"])
	return a, true
}

// Telemetry is the firmware's TLM fields as the agent forwards them
// (firmware-protocol.md §5.2), numbers or numeric strings.
type Telemetry struct {
	St     string // RDY, FS, ES
	Vl, Vr Value  // wheel speeds, m/s
	Bat    Value  // V
	X, Y   Value  // m
	Th     Value  // rad
	Lseq   Value  // the last setpoint sequence the firmware applied
}

// ReadTelemetry reads a telemetry signal's data. ok is false when data is
// not a JSON object.
func ReadTelemetry(data string) (t Telemetry, ok bool) {
	o := object(data)
	if o == nil {
		return Telemetry{}, false
	}
	return Telemetry{
		St: str(o["st"]),
		Vl: number(o["vl"]), Vr: number(o["vr"]), Bat: number(o["bat"]),
		X: number(o["x"]), Y: number(o["y"]), Th: number(o["th"]), Lseq: number(o["lseq"]),
	}, true
}

// Status is what the driver reads from the agent's status signal:
//
//	{"estop":{"latched":true,"by":"<connectionId>"},
//	 "lease":{"mode":"exclusive","holder":"<connectionId>"}, …}
//
// estop may also be a bare boolean, lease a bare holder ID, and the holder
// may come as "lease_holder" (the spellings the web console accepts).
type Status struct {
	HasEstop    bool
	Estop       bool
	EstopBy     string
	HasLease    bool
	LeaseHolder string // "" when nobody holds it
	LeaseMode   string
}

// ReadStatus reads a status signal's data. ok is false when data is not a
// JSON object.
func ReadStatus(data string) (s Status, ok bool) {
	o := object(data)
	if o == nil {
		return Status{}, false
	}
	switch e := o["estop"].(type) {
	case map[string]any:
		s.HasEstop, s.Estop, s.EstopBy = true, truthy(e["latched"]), text(e["by"])
	case nil:
	default:
		s.HasEstop, s.Estop = true, truthy(e)
	}
	switch l := o["lease"].(type) {
	case map[string]any:
		s.HasLease, s.LeaseHolder, s.LeaseMode = true, text(l["holder"]), str(l["mode"])
	case string:
		s.HasLease, s.LeaseHolder = true, l
	case nil:
		if h, ok := o["lease_holder"]; ok {
			s.HasLease, s.LeaseHolder = true, text(h)
		}
	}
	return s, true
}

// object decodes data as a JSON object with numbers kept as json.Number.
func object(data string) map[string]any {
	dec := json.NewDecoder(strings.NewReader(data))
	dec.UseNumber()
	var o map[string]any
	if dec.Decode(&o) != nil {
		return nil
	}
	return o
}

// str is v when it is a string, else "".
func str(v any) string {
	s, _ := v.(string)
	return s
}

// text is a string or a number as text; "" otherwise.
func text(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	}
	return ""
}

// number reads a JSON number or a numeric string.
func number(v any) Value {
	f, ok := toFloat(v)
	return Value{f, ok}
}

func toFloat(v any) (float64, bool) {
	var s string
	switch v := v.(type) {
	case json.Number:
		s = v.String()
	case string:
		s = strings.TrimSpace(v)
	default:
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

func truthy(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case json.Number:
		f, _ := v.Float64()
		return f != 0
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true", "latched", "on", "yes", "1", "active", "engaged":
			return true
		}
	}
	return false
}
