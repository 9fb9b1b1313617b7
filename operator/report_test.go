package operator_test

import (
	"maps"
	"testing"

	"github.com/teleop/teleop/operator"
)

func TestConnData(t *testing.T) {
	for in, want := range map[string]map[string]string{
		"role=robot,name=rover-1":          {"role": "robot", "name": "rover-1"},
		"role=operator&name=alice&role=x":  {"role": "operator", "name": "alice"},
		" name = bob , flag":               {"name": "bob", "flag": ""},
		`{"role":"robot","n":2,"ok":true}`: {"role": "robot", "n": "2", "ok": "true"},
		`{broken`:                          {"{broken": ""},
		"":                                 {},
	} {
		if got := operator.ConnData(in); !maps.Equal(got, want) {
			t.Errorf("ConnData(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestReadAck(t *testing.T) {
	for in, want := range map[string]operator.Ack{
		`{"id":17,"type":"drive","status":"ok","device_ms":3,"bridge_ms":"1.5"}`: {ID: "17", Type: "drive", Status: "ok", DeviceMs: operator.Value{V: 3, OK: true}, BridgeMs: operator.Value{V: 1.5, OK: true}},
		`{"id":"a","status":"rejected","code":409,"reason":"lease held by x"}`:   {ID: "a", Status: "rejected", Code: "409", Reason: "lease held by x"},
		`{"id":1.50}`: {ID: "1.50", Status: "ok"},
	} {
		got, ok := operator.ReadAck(in)
		if !ok || got != want {
			t.Errorf("ReadAck(%s) = %+v, %v; want %+v", in, got, ok, want)
		}
	}
	for _, in := range []string{``, `[]`, `{}`, `{"id":null}`, `{"id":{}}`, `17`} {
		if _, ok := operator.ReadAck(in); ok {
			t.Errorf("ReadAck(%s) is ok", in)
		}
	}
	if a, _ := operator.ReadAck(`{"id":1,"status":"superseded"}`); !a.Fine() {
		t.Error("superseded is not fine")
	}
	if a, _ := operator.ReadAck(`{"id":1,"status":"timeout"}`); a.Fine() {
		t.Error("timeout is fine")
	}
}

func TestReadTelemetry(t *testing.T) {
	v := func(f float64) operator.Value { return operator.Value{V: f, OK: true} }
	got, ok := operator.ReadTelemetry(`{"st":"RDY","vl":"0.25","vr":-0.1,"lseq":42,"bat":12.1,"x":1,"y":"NaN","th":"x"}`)
	want := operator.Telemetry{St: "RDY", Vl: v(0.25), Vr: v(-0.1), Lseq: v(42), Bat: v(12.1), X: v(1)}
	if !ok || got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if _, ok := operator.ReadTelemetry(`"bat"`); ok {
		t.Fatal("a JSON string read as telemetry")
	}
}

func TestReadStatus(t *testing.T) {
	for in, want := range map[string]operator.Status{
		`{"estop":{"latched":true,"by":"c1"},"lease":{"mode":"exclusive","holder":"c2"}}`: {HasEstop: true, Estop: true, EstopBy: "c1", HasLease: true, LeaseHolder: "c2", LeaseMode: "exclusive"},
		`{"estop":false,"lease":"c2"}`:                        {HasEstop: true, HasLease: true, LeaseHolder: "c2"},
		`{"estop":"latched","lease_holder":""}`:               {HasEstop: true, Estop: true, HasLease: true},
		`{"estop":{"latched":false},"lease":{"holder":null}}`: {HasEstop: true, HasLease: true},
		`{"devices":{}}`:                                      {},
	} {
		got, ok := operator.ReadStatus(in)
		if !ok || got != want {
			t.Errorf("ReadStatus(%s) = %+v, want %+v", in, got, want)
		}
	}
}

func FuzzReports(f *testing.F) {
	for _, s := range []string{`{"id":17,"status":"ok","device_ms":3}`, `{"st":"RDY","bat":"12.1"}`,
		`{"estop":{"latched":true},"lease":"c"}`, `role=robot,name=x`, `{"role":1}`, `[1]`, ``} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		operator.ReadAck(data)
		operator.ReadTelemetry(data)
		operator.ReadStatus(data)
		operator.ConnData(data)
	})
}
