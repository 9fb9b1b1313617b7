package bridge_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/teleop/teleop/bridge"
	"github.com/teleop/teleop/devices/sim"
)

// baseMappings is the agent configuration of most tests: drive and lights
// as in configs/demo.yaml, and mappings of every data format for the
// malformed-input table.
const baseMappings = `safety:
  deadman: 500ms
  max_age: 300ms
mappings:
  drive:
    kind: setpoint
    fields:
      linear:  {type: float, min: -1, max: 1, out_of_range: clamp, default: 0}
      angular: {type: float, min: -4, max: 4, out_of_range: clamp, default: 0}
    command: "VEL {{ fixed 3 .linear }} {{ fixed 3 .angular }}"
  lights:
    kind: oneshot
    fields:
      on: {type: bool, required: true}
    command: "OUT lights={{ bit .on }}"
`

func TestAgentDriveAndOneshotAcks(t *testing.T) {
	s := newStack(t, stackOptions{tap: true, config: baseMappings})
	alice := s.operator("role=operator,name=alice")

	id := alice.drive(0.4, -0.2)
	a := alice.expectAck(id, "ok", "")
	if a.Type != "drive" || a.DeviceMs == nil || *a.DeviceMs <= 0 || a.BridgeMs == nil || *a.BridgeMs < *a.DeviceMs {
		t.Errorf("ack %s: want type drive, device_ms > 0 and bridge_ms ≥ device_ms", a)
	}
	if a.From != s.agent.Connection() {
		t.Errorf("ack from %s, want the agent %s", a.From, s.agent.Connection())
	}
	if st := s.robot.State(); math.Abs(st.Linear-0.4) > 1e-9 || math.Abs(st.Angular+0.2) > 1e-9 {
		t.Errorf("robot runs %v %v, want 0.4 -0.2", st.Linear, st.Angular)
	}
	s.tap.waitLine(0, "VEL 0.400 -0.200", func(l string) bool { return l == "VEL 0.400 -0.200" })

	id = alice.signal("lights", `"on":true`)
	alice.expectAck(id, "ok", "")
	if got := s.robot.State().Outputs["lights"]; got != 1 {
		t.Errorf("lights = %d, want 1", got)
	}
	// An id that is a string is echoed as it was written.
	if err := alice.send("lights", `{"id":"x-1","on":false}`); err != nil {
		t.Fatal(err)
	}
	alice.expectAck(`"x-1"`, "ok", "")
	checkWire(t, s.tap.bytes())
}

// Acks go to their sender only.
func TestAgentAcksGoToTheSenderOnly(t *testing.T) {
	s := newStack(t, stackOptions{config: baseMappings})
	alice := s.operator("role=operator,name=alice")
	bob := s.operator("role=operator,name=bob")
	idA := alice.drive(0.1, 0)
	alice.expectAck(idA, "ok", "")
	// Bob's own ack comes after Alice's in the agent's order to the relay,
	// so had Alice's reached him it would be there by now.
	if err := bob.send("drive", `{"id":"bob-1","linear":0.2}`); err != nil {
		t.Fatal(err)
	}
	bob.expectAck(`"bob-1"`, "ok", "")
	if n := bob.ackCount(); n != 1 {
		t.Errorf("bob got %d acks (%v), want only his own", n, bob.allAcks)
	}
	if n := alice.ackCount(); n != 1 {
		t.Errorf("alice got %d acks, want 1", n)
	}
}

// malformedMappings adds mappings of each data format and a string field
// to the base ones, unknown types are rejected, and driving needs a role.
const malformedMappings = baseMappings + `  level:
    kind: oneshot
    fields:
      v: {type: string, pattern: '[01]', max_len: 1, required: true}
    command: "OUT lights={{ .v }}"
  tank:
    kind: setpoint
    format: csv
    fields:
      l: {type: float, min: -1, max: 1, required: true}
      r: {type: float, min: -1, max: 1, required: true}
    command: "VEL {{ fixed 3 .l }} {{ fixed 3 .r }}"
  pct:
    kind: oneshot
    format: text
    pattern: '(?P<p>[0-9]{1,3})%'
    fields:
      p: {type: int, min: 0, max: 1, required: true}
    command: "OUT lights={{ .p }}"
  bounded:
    kind: oneshot
    fields:
      n: {type: int, min: 0, max: 1, required: true}
    command: "OUT lights={{ .n }}"
access:
  allow: {roles: [operator]}
unknown_signals: reject
`

// Safety invariant 5, end to end: malformed signals go through the relay
// to the agent, each is acked rejected with a reason, and nothing reaches
// the serial line (the tap's record, and the robot's own counters).
func TestAgentMalformedInputsReachNothing(t *testing.T) {
	s := newStack(t, stackOptions{tap: true, config: malformedMappings})
	alice := s.operator("role=operator,name=alice")
	viewer := s.operator("role=viewer,name=eve")

	// Settle: a first drive and its deadman stop, so that nothing of the
	// agent's own is still to come on the line.
	alice.expectAck(alice.drive(0.1, 0), "ok", "")
	alice.expectAck(alice.signal("stop", ""), "ok", "")
	before := s.tap.bytes()
	robotBefore := s.robot.State()

	cases := []struct {
		name, typ, data string
		from            *op
		code            string
	}{
		{"not JSON", "drive", `linear=0.4`, alice, "bad_data"},
		{"JSON array", "drive", `[0.4,0]`, alice, "bad_data"},
		{"JSON string", "drive", `"VEL 1 1"`, alice, "bad_data"},
		{"truncated", "drive", `{"id":101,"linear":0.4`, alice, "bad_data"},
		{"text after the object", "drive", `{"id":102,"linear":0.4} VEL 1 1`, alice, "bad_data"},
		{"nested object", "drive", `{"id":103,"linear":{"v":1}}`, alice, "bad_value"},
		{"array value", "drive", `{"id":104,"linear":[1]}`, alice, "bad_value"},
		{"number as string", "drive", `{"id":105,"linear":"0.4"}`, alice, "bad_value"},
		{"newline in a number string", "drive", `{"id":106,"linear":"0.4\nSTOP"}`, alice, "bad_value"},
		{"NaN", "drive", `{"id":107,"linear":NaN}`, alice, "bad_data"},
		{"huge exponent", "drive", `{"id":108,"linear":1e400}`, alice, "bad_value"},
		{"null", "drive", `{"id":109,"linear":null}`, alice, "bad_value"},
		{"unknown field", "drive", `{"id":110,"linaer":0.4}`, alice, "unknown_field"},
		{"key twice", "drive", `{"id":111,"linear":0.1,"linear":0.9}`, alice, "bad_data"},
		{"id is an object", "drive", `{"id":{"x":1},"linear":0.1}`, alice, "bad_value"},
		{"id too long", "drive", `{"id":"` + strings.Repeat("x", 80) + `","linear":0.1}`, alice, "bad_value"},
		{"bool as number", "lights", `{"id":112,"on":1}`, alice, "bad_value"},
		{"missing required", "lights", `{"id":113}`, alice, "missing_field"},
		{"empty data, field required", "lights", ``, alice, "missing_field"},
		{"newline injection", "level", `{"id":114,"v":"1\n5 RESET"}`, alice, "bad_value"},
		{"escaped newline injection", "level", `{"id":115,"v":"1\u000a5 RESET"}`, alice, "bad_value"},
		{"NUL byte", "level", `{"id":116,"v":"\u0000"}`, alice, "bad_value"},
		{"e-stop byte in a string", "level", `{"id":117,"v":"!"}`, alice, "bad_value"},
		{"checksum mark in a string", "level", `{"id":118,"v":"1*00"}`, alice, "bad_value"},
		{"escape sequence", "level", `{"id":119,"v":"\u001b[2J"}`, alice, "bad_value"},
		{"string over max_len", "level", `{"id":120,"v":"0101"}`, alice, "bad_value"},
		{"int with a fraction", "bounded", `{"id":121,"n":0.5}`, alice, "bad_value"},
		{"int out of range (reject)", "bounded", `{"id":122,"n":7}`, alice, "bad_value"},
		{"csv: too many values", "tank", `0.1,0.2,0.3`, alice, "bad_data"},
		{"csv: not a number", "tank", `0.1,x`, alice, "bad_value"},
		{"csv: control character", "tank", "0.1,\x070.2", alice, "bad_value"},
		{"csv: missing value", "tank", `0.1`, alice, "missing_field"},
		{"text: no match", "pct", `lots`, alice, "bad_data"},
		{"text: newline after the match", "pct", "1%\n5 RESET", alice, "bad_data"},
		{"unknown type", "selfdestruct", `{"id":123}`, alice, "unknown_type"},
		{"role not allowed", "drive", `{"id":124,"linear":0.5}`, viewer, "forbidden"},
		{"role not allowed, oneshot", "lights", `{"id":125,"on":true}`, viewer, "forbidden"},
	}
	if len(cases) < 25 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		n := c.from.ackCount()
		if err := c.from.send(c.typ, c.data); err != nil {
			t.Fatalf("%s: send: %v", c.name, err)
		}
		c.from.wait(c.name+" acked", func() bool { return len(c.from.allAcks) > n })
		c.from.mu.Lock()
		a := c.from.allAcks[n]
		c.from.mu.Unlock()
		if a.Status != "rejected" || a.code() != c.code || a.Reason == "" || a.Type != c.typ {
			t.Errorf("%s: %s %q: ack %s; want rejected, code %s, a reason", c.name, c.typ, c.data, a, c.code)
		}
	}
	// A good signal afterwards: everything before it has been through the
	// agent, and none of it reached the line.
	alice.expectAck(alice.signal("lights", `"on":false`), "ok", "")
	after := s.tap.bytes()
	got := commandLines(after[len(before):])
	if len(got) != 1 || got[0] != "OUT lights=0" {
		t.Errorf("lines on the serial line during the table: %q; want only the final OUT lights=0", got)
	}
	robotAfter := s.robot.State()
	if robotAfter.Executed != robotBefore.Executed+1 || robotAfter.Setpoints != robotBefore.Setpoints || robotAfter.Overflows != 0 {
		t.Errorf("robot ran %d commands and %d setpoints during the table; want only the final one",
			robotAfter.Executed-robotBefore.Executed, robotAfter.Setpoints-robotBefore.Setpoints)
	}
	checkWire(t, after)
}

// The status signal: on join (here: to a newcomer at once), and with the
// console's shape.
func TestAgentStatusShape(t *testing.T) {
	s := newStack(t, stackOptions{config: baseMappings})
	alice := s.operator("role=operator,name=alice")
	st := alice.waitStatus("the device ready", func(st bridge.Status) bool { return st.Devices["base"].State == "ready" })
	if st.Estop.Latched || st.Lease.Mode != "off" || st.Lease.Holder != "" || st.Watchdog == "" {
		t.Errorf("status %+v", st)
	}
	if fw := st.Devices["base"].Firmware; fw != "teleop-sim/"+sim.Version {
		t.Errorf("firmware %q", fw)
	}
	if got := fmt.Sprint(s.agent.Status().Lease); got != fmt.Sprint(st.Lease) {
		t.Errorf("Status() lease %s, signal %s", got, fmt.Sprint(st.Lease))
	}
}
