package bridge

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/teleop/teleop/devices/proto"
)

func testMapper(t testing.TB) *Mapper {
	t.Helper()
	data, err := os.ReadFile("testdata/map.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("testdata/map.yaml", data, testEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMapper(c)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func exampleMapper(t testing.TB, file string) *Mapper {
	t.Helper()
	m, err := NewMapper(loadExample(t, file))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// sig is a signal from an operator's connection.
func sig(typ, data string) Incoming {
	return Incoming{Type: typ, Data: data, From: "conn-a", ConnData: "role=operator,name=alice"}
}

// Malformed and hostile inputs: each is rejected with a clear reason, or
// clamped where the schema says clamp.
func TestMapMalformed(t *testing.T) {
	m := testMapper(t)
	tests := []struct {
		name   string
		sig    Incoming
		code   RejectCode // 0: mapped
		want   string     // substring of the reason, or the exact command text
		wantID string
	}{
		{"bad JSON", sig("drive", `{"linear":}`), CodeBadData, "data is not JSON: invalid value at offset 10", ""},
		{"truncated", sig("drive", `{"linear":0.1`), CodeBadData, "unexpected end of data", ""},
		{"not an object", sig("drive", `[0.1, 0.2]`), CodeBadData, "data is not a JSON object (want an object with linear, angular)", ""},
		{"plain text for json", sig("drive", `0.5,0.1`), CodeBadData, "not a JSON object", ""},
		{"string instead of number", sig("drive", `{"linear":"0.5"}`), CodeBadValue, "linear: want a number, got a string", ""},
		{"NaN as string", sig("drive", `{"linear":"NaN"}`), CodeBadValue, "linear: want a number, got a string", ""},
		{"NaN bare", sig("drive", `{"linear":NaN}`), CodeBadData, "invalid value", ""},
		{"Infinity", sig("drive", `{"angular":-Infinity}`), CodeBadData, "malformed number", ""},
		{"overflowing number", sig("drive", `{"id":1,"linear":1e400}`), CodeBadValue, "linear: 1e400 is not a finite number", "1"},
		{"huge number clamped", sig("drive", `{"linear":1e300}`), 0, "VEL 1.000 0.000", ""},
		{"negative clamped", sig("drive", `{"linear":-7}`), 0, "VEL -1.000 0.000", ""},
		{"out of range rejected", sig("drive", `{"id":17,"angular":3.2}`), CodeBadValue, "angular 3.2 out of range [-2, 2]", "17"},
		{"nested object", sig("drive", `{"linear":{"x":1}}`), CodeBadValue, "linear: want a number, got an object", ""},
		{"array value", sig("drive", `{"linear":[1]}`), CodeBadValue, "linear: want a number, got an array", ""},
		{"null value", sig("drive", `{"linear":null}`), CodeBadValue, "linear: want a number, got null", ""},
		{"missing required", sig("move", `{"id":"m1","mode":"slow"}`), CodeMissingField, "x is required", `"m1"`},
		{"unknown field", sig("drive", `{"linaer":0.5}`), CodeUnknownField, `field "linaer" unknown (fields: linear, angular)`, ""},
		{"unknown nested field keeps id", sig("drive", `{"extra":{"a":[1,{"b":2}]},"id":99}`), CodeUnknownField, `field "extra" unknown`, "99"},
		{"newline injection", sig("say", `{"text":"a\nSTOP"}`), CodeBadValue, `text: "a\nSTOP" does not match the pattern`, ""},
		{"raw newline in a string", sig("say", "{\"text\":\"a\nSTOP\"}"), CodeBadData, "control character in a string", ""},
		{"escaped NUL", sig("say", `{"text":"ab\u0000"}`), CodeBadValue, `"ab\x00" does not match`, ""},
		{"e-stop byte in a string", sig("say", `{"text":"go!"}`), CodeBadValue, `"go!" does not match`, ""},
		{"checksum mark in a string", sig("say", `{"text":"a*5"}`), CodeBadValue, "does not match", ""},
		{"telemetry byte in a string", sig("say", `{"text":"a?"}`), CodeBadValue, "does not match", ""},
		{"space in a string", sig("say", `{"text":"a b"}`), CodeBadValue, "does not match", ""},
		{"over-long string", sig("say", `{"text":"abcdefghijklmnop"}`), CodeBadValue, "text: 16 bytes, over the limit of 12", ""},
		{"enormous string", sig("say", `{"text":"`+strings.Repeat("a", 500)+`"}`), CodeBadValue, "over the limit of 12 bytes", ""},
		{"duplicate keys", sig("drive", `{"linear":0.1,"linear":0.9}`), CodeBadData, `field "linear" given twice`, ""},
		{"duplicate id", sig("drive", `{"id":1,"id":2}`), CodeBadData, `"id" given twice`, "1"},
		{"id of the wrong type", sig("drive", `{"id":{"n":1}}`), CodeBadValue, "id: want a number or a string", ""},
		{"id too long", sig("drive", `{"id":"`+strings.Repeat("x", 80)+`"}`), CodeBadValue, "id: want a number or a string of at most 64", ""},
		{"non-UTF-8", sig("drive", "{\"linear\":0.1,\"x\":\"\xff\"}"), CodeBadData, "not valid UTF-8", ""},
		{"data over 8 KB", sig("drive", `{"linear":0.1,"pad":"`+strings.Repeat("a", 8200)+`"}`), CodeTooLarge, "data is 8223 bytes; the limit is 8192", ""},
		{"empty data, required fields", sig("move", ""), CodeMissingField, "data is empty; want a JSON object with x, mode, speed", ""},
		{"empty data, all defaults", sig("drive", ""), 0, "VEL 0.000 0.000", ""},
		{"empty object", sig("drive", "{}"), 0, "VEL 0.000 0.000", ""},
		{"white space only", sig("flag", " \n\t"), CodeMissingField, "data is empty", ""},
		{"trailing garbage", sig("drive", `{"linear":0.1} STOP`), CodeBadData, "text after the object", ""},
		{"two objects", sig("drive", `{"linear":0.1}{"linear":0.2}`), CodeBadData, "text after the object", ""},
		{"trailing comma", sig("drive", `{"linear":0.1,}`), CodeBadData, "trailing comma at offset 14", ""},
		{"leading zero", sig("drive", `{"linear":01}`), CodeBadData, "expected ',' or '}'", ""},
		{"hex number", sig("drive", `{"linear":0x1}`), CodeBadData, "expected ',' or '}'", ""},
		{"single quotes", sig("drive", `{'linear':0.1}`), CodeBadData, "expected a key in double quotes", ""},
		{"int with a fraction", sig("move", `{"x":0.5,"mode":"slow","speed":2.5}`), CodeBadValue, "speed: 2.5 is not an integer", ""},
		{"int in exponent form", sig("move", `{"x":0.5,"mode":"slow","speed":1e2}`), 0, "MOVE 0.50 slow 100", ""},
		{"enum not in values", sig("move", `{"x":0.5,"mode":"turbo"}`), CodeBadValue, `mode: "turbo" is not one of slow, fast`, ""},
		{"enum of the wrong type", sig("move", `{"x":0.5,"mode":1}`), CodeBadValue, "mode: want a string, got a number", ""},
		{"bool as a string", sig("flag", `{"on":"yes"}`), CodeBadValue, "on: want true or false, got a string", ""},
		{"bool as a number", sig("flag", `{"on":1}`), CodeBadValue, "on: want true or false, got a number", ""},
		{"escaped key", sig("drive", `{"line\u0061r":0.5}`), 0, "VEL 0.500 0.000", ""},
		{"negative zero", sig("drive", `{"linear":-0}`), 0, "VEL 0.000 0.000", ""},
		{"rounds to negative zero", sig("drive", `{"linear":-0.0001}`), 0, "VEL 0.000 0.000", ""},
		{"CSV", sig("pair", `0.5,-0.25`), 0, "VEL 0.500 -0.250", ""},
		{"CSV with spaces and newline", sig("pair", " 0.5 , -0.25 \n"), 0, "VEL 0.500 -0.250", ""},
		{"CSV too many", sig("pair", `0.1,0.2,0.3`), CodeBadData, `want at most 2 values separated by ',' (a, b), got more`, ""},
		{"CSV too few", sig("pair", `,0.2`), CodeMissingField, "a is required", ""},
		{"CSV empty", sig("pair", ``), CodeMissingField, "a is required", ""},
		{"CSV default", sig("pair", `0.3`), 0, "VEL 0.300 0.000", ""},
		{"CSV not a number", sig("pair", `0.1,abc`), CodeBadValue, `b: "abc" is not a number`, ""},
		{"CSV NaN", sig("pair", `NaN,0`), CodeBadValue, `a: "NaN" is not a number`, ""},
		{"CSV hex float", sig("pair", `0x1p-2,0`), CodeBadValue, "is not a number", ""},
		{"CSV out of range", sig("pair", `2,0`), CodeBadValue, "a 2 out of range [-1, 1]", ""},
		{"CSV injection", sig("pair", "0.1\nSTOP,0"), CodeBadValue, `a: "0.1\nSTOP" is not a number`, ""},
		{"text", Incoming{Type: "speed", Data: "42%"}, 0, "SPD 42", ""},
		{"text no match", Incoming{Type: "speed", Data: "42 %"}, CodeBadData, `data "42 %" does not match the pattern (?P<pct>[0-9]{1,3})%`, ""},
		{"text out of range", Incoming{Type: "speed", Data: "150%"}, CodeBadValue, "pct 150 out of range [0, 100]", ""},
		{"scaled and negated", sig("pwm", `{"l":0.5,"r":0.5}`), 0, "M 128 -128", ""},
		{"scaled clamp", sig("pwm", `{"l":9,"r":-9}`), 0, "M 255 255", ""},
		{"template with if", sig("logic", `{"v":0.25}`), 0, "MODE UP 0.25", ""},
		{"template with if, else", sig("logic", `{"v":-1}`), 0, "MODE DOWN -1", ""},
		{"stale", Incoming{Type: "drive", Data: `{"id":5,"linear":1}`, From: "c", AgeMs: 301}, CodeStale, "signal waited 301 ms; the limit is 300 ms", "5"},
		{"not stale", Incoming{Type: "drive", Data: `{"linear":1}`, From: "c", AgeMs: 300}, 0, "VEL 1.000 0.000", ""},
		{"forbidden role", sig("secure", `{"id":4}`), CodeForbidden, `this connection may not send "secure"`, "4"},
		{"allowed role", Incoming{Type: "secure", From: "c", ConnData: "name=bob&role=admin"}, 0, "PING", ""},
		{"allowed by data", Incoming{Type: "secure", From: "c", ConnData: "name=root,x=1"}, 0, "PING", ""},
		{"data must match in full", Incoming{Type: "secure", From: "c", ConnData: "name=rooted"}, CodeForbidden, "may not send", ""},
		{"REST sender without api", Incoming{Type: "secure"}, CodeForbidden, "may not send", ""},
		{"unknown type", sig("fly", `{"id":3}`), CodeUnknownType, `no mapping for signal type "fly"`, "3"},
		{"control acquire", sig("control", `{"action":"acquire"}`), 0, "", ""},
		{"control transfer without to", sig("control", `{"action":"transfer"}`), CodeMissingField, "to is required for transfer", ""},
		{"control bad action", sig("control", `{"action":"steal"}`), CodeBadValue, `action: "steal" is not one of acquire, release, transfer`, ""},
		{"stop with garbage", sig("stop", `{"id":18,`), 0, "", "18"},
		{"stop with nonsense", sig("stop", "STOP!\n\x00"), 0, "", ""},
		{"stop with id", sig("stop", `{"id":18,"why":{"deep":[1,2]}}`), 0, "", "18"},
		{"estop with anything", Incoming{Type: "estop", Data: "\xff\x00!!"}, 0, "", ""},
		{"estop from REST", Incoming{Type: "estop"}, 0, "", ""},
		{"clear with unknown field", sig("clear", `{"force":true}`), CodeUnknownField, `field "force" unknown`, ""},
	}
	if len(tests) < 25 {
		t.Fatalf("only %d cases", len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, rej := m.Map(tt.sig)
			if tt.code == 0 {
				if rej != nil {
					t.Fatalf("rejected: %v", rej)
				}
				if cmd.Text != tt.want {
					t.Errorf("text %q, want %q", cmd.Text, tt.want)
				}
				if cmd.ID != tt.wantID {
					t.Errorf("id %q, want %q", cmd.ID, tt.wantID)
				}
				return
			}
			if rej == nil {
				t.Fatalf("mapped to %+v; want %s", cmd, tt.code)
			}
			if rej.Code != tt.code || !strings.Contains(rej.Reason, tt.want) {
				t.Errorf("got %s %q\nwant %s %q", rej.Code, rej.Reason, tt.code, tt.want)
			}
			if rej.ID != tt.wantID {
				t.Errorf("id %q, want %q", rej.ID, tt.wantID)
			}
			if !rej.Ack {
				t.Errorf("a rejection that is not acked")
			}
			assertPrintable(t, rej.Reason)
		})
	}
}

func assertPrintable(t *testing.T, s string) {
	t.Helper()
	for _, r := range s {
		if r < 0x20 || r == 0x7F {
			t.Errorf("control character in %q", s)
		}
	}
}

func TestMapKinds(t *testing.T) {
	m := testMapper(t)
	cmd, rej := m.Map(sig("drive", `{"id":17,"linear":0.4,"angular":-0.2}`))
	if rej != nil {
		t.Fatal(rej)
	}
	want := Command{Type: "drive", Kind: KindSetpoint, Device: "base", Text: "VEL 0.400 -0.200", ID: "17",
		MaxAge: DefaultMaxAge, Deadman: DefaultDeadman, Coalesce: true, Ack: true}
	if cmd != want {
		t.Errorf("got  %+v\nwant %+v", cmd, want)
	}
	cmd, _ = m.Map(sig("control", `{"id":"c","action":"transfer","to":"conn-b"}`))
	if cmd.Kind != KindControl || cmd.Control != (Control{ControlTransfer, "conn-b"}) || cmd.Device != "" || cmd.ID != `"c"` {
		t.Errorf("control: %+v", cmd)
	}
	cmd, _ = m.Map(Incoming{Type: "estop"})
	if cmd.Kind != KindEstop || cmd.Device != "" || cmd.MaxAge != 0 {
		t.Errorf("estop: %+v", cmd)
	}
	// Stop and e-stop are never stale.
	if _, rej := m.Map(Incoming{Type: "stop", AgeMs: 60000}); rej != nil {
		t.Errorf("late stop refused: %v", rej)
	}
	// The agent's own signals are never acked, whatever unknown_signals says.
	if _, rej := m.Map(sig("ack", `{"id":1}`)); rej == nil || rej.Ack {
		t.Errorf("own ack signal: %+v", rej)
	}
	if _, rej := m.Map(sig("fly", "")); rej == nil || !rej.Ack {
		t.Errorf("unknown type under reject: %+v", rej)
	}
	if info, ok := m.Info("pwm"); !ok || info.Kind != KindSetpoint || info.Device != "raw" || !info.Coalesce {
		t.Errorf("Info: %+v %v", info, ok)
	}
	if _, rej := m.Map(sig("", "")); rej == nil || rej.Ack {
		t.Errorf("empty-type ping acked: %+v", rej)
	}
	dd := exampleMapper(t, "../configs/diffdrive.yaml")
	if info, _ := dd.Info("drive"); info.RateLimit != (Rate{50, time.Second}) {
		t.Errorf("rate limit: %+v", info.RateLimit)
	}
	// unknown_signals: ignore (the demo) drops silently.
	demo := exampleMapper(t, "../configs/demo.yaml")
	if _, rej := demo.Map(sig("chat", "hi")); rej == nil || rej.Ack {
		t.Errorf("ignored type acked: %+v", rej)
	}
}

func TestRoleOf(t *testing.T) {
	tests := []struct{ data, want string }{
		{"role=operator", "operator"},
		{"name=alice,role=operator", "operator"},
		{"name=alice&role=viewer&x=1", "viewer"},
		{" role = admin ", "admin"},
		{`{"name":"a","role":"operator"}`, "operator"},
		{`{"role":{"x":1}}`, ""},
		{"name=alice", ""},
		{"", ""},
		{"roles=admin", ""},
	}
	for _, tt := range tests {
		if got := RoleOf(tt.data, "role"); got != tt.want {
			t.Errorf("RoleOf(%q) = %q, want %q", tt.data, got, tt.want)
		}
	}
}

func TestCheckLine(t *testing.T) {
	ok := []string{"VEL 0.400 -0.200", "PING", "OUT lights=1", "SET wdog_ms=300", "GRIP close 40", "TOOL cam-2", "X -1", "A 0.1234"}
	for _, s := range ok {
		if err := checkLine(s, ProtoTeleop1, 54); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	bad := []string{"", "VEL 0.4\n", "VEL  0.4", "VEL 0.4 ", " VEL", "vel 1", "VEL 1e-05", "VEL 0.12345", "VEL +1", "VEL .5", "VEL 1.",
		"OUT a=", "OUT =1", "GO!", "A ?", "A *1", "A \x18", "A \x7f", "A é", strings.Repeat("A", 55)}
	for _, s := range bad {
		if err := checkLine(s, ProtoTeleop1, 54); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
	if err := checkLine("m 100 -100", ProtoRaw, 63); err != nil {
		t.Errorf("raw: %v", err)
	}
	for _, s := range []string{"M 1!", "M\t1", "M 1\r"} {
		if err := checkLine(s, ProtoRaw, 63); err == nil {
			t.Errorf("raw %q accepted", s)
		}
	}
}

// Every line a mapping can produce, with a 5-digit seq and its checksum, is
// a valid command line for the firmware protocol codec.
func TestLinesParseAsFirmwareCommands(t *testing.T) {
	m := exampleMapper(t, "../configs/two-devices.yaml")
	for _, sig := range []Incoming{
		sig("drive", `{"linear":-1,"angular":-4}`), sig("drive", `{"linear":0.123456,"angular":3.99999}`),
		sig("arm", `{"shoulder":-1.57,"elbow":-2.5,"wrist":-3.14}`), sig("gripper", `{"grip":"close","force":100}`),
		sig("tool", `{"tool":"a123456789abcdef"}`), sig("lights", `{"on":true}`),
	} {
		cmd, rej := m.Map(sig)
		if rej != nil {
			t.Fatalf("%s: %v", sig.Type, rej)
		}
		line := []byte("65535 " + cmd.Text)
		line = proto.AppendChecksum(line, 0)
		if len(line) > proto.MaxCommandLine {
			t.Errorf("%q: %d bytes", line, len(line))
		}
		var c proto.Command
		if err := proto.ParseCommand(line, &c, true); err != nil {
			t.Errorf("%q: %v", line, err)
		}
	}
}

// The fast path and text/template render the same bytes, for every example
// mapping, on every sample the loader tries and on the golden signals.
func TestFastPathMatchesTemplate(t *testing.T) {
	files := append(exampleConfigs(t), "testdata/map.yaml")
	for _, file := range files {
		var c *Config
		if strings.HasPrefix(file, "testdata") {
			data, _ := os.ReadFile(file)
			var err error
			if c, err = Parse(file, data, testEnv(nil)); err != nil {
				t.Fatal(err)
			}
		} else {
			c = loadExample(t, file)
		}
		for _, mc := range c.Mappings {
			if mc.Command == "" {
				continue
			}
			mp, err := compileMapping(mc, c.Device(mc.Device))
			if err != nil {
				t.Fatal(err)
			}
			usesIf := strings.Contains(mc.Command, "{{ if") || strings.Contains(mc.Command, "{{if")
			if mp.ops == nil && !usesIf {
				t.Errorf("%s %s: no fast path for %q", file, mc.Type, mc.Command)
			}
			if mp.ops == nil {
				continue
			}
			cands := make([][]value, len(mp.fields))
			for i := range mp.fields {
				cands[i] = mp.fields[i].samples()
			}
			var vals [maxFields]value
			forCombos(cands, func(idx []int) error {
				for i := range mp.fields {
					vals[i] = cands[i][idx[i]]
				}
				slow, err1 := renderTemplate(mp.tmpl, mp.fields, &vals)
				fast, err2 := renderOps(nil, mp.ops, mp.fields, &vals)
				if (err1 == nil) != (err2 == nil) || slow != string(fast) {
					t.Errorf("%s %s %s: template %q (%v), ops %q (%v)", file, mc.Type, mp.describe(&vals), slow, err1, fast, err2)
				}
				return nil
			})
		}
	}
}

// Golden signal → command mapping for the example configs.
func TestMapGolden(t *testing.T) {
	cases := map[string][]Incoming{
		"demo": {
			sig("drive", `{"id":17,"linear":0.4,"angular":-0.2}`),
			sig("drive", `{"id":"a-1","linear":1.5}`),
			sig("drive", `{"linear":0.33333333,"angular":-3.99996}`),
			sig("drive", ``),
			sig("drive", `{"linear":0.4,"angular":-0.2,"turbo":true}`),
			{Type: "drive", Data: `{"id":19,"linear":0.4}`, From: "c", AgeMs: 450},
			sig("lights", `{"id":20,"on":true}`),
			sig("lights", `{"id":21,"on":false}`),
			sig("lights", `{"id":22}`),
			sig("stop", `{"id":23}`),
			sig("stop", ``),
			{Type: "estop", From: "anyone"},
			sig("clear", `{"id":24}`),
			sig("hello", `hi`),
		},
		"diffdrive": {
			sig("drive", `{"id":1,"linear":0.8,"angular":-0.5}`),
			{Type: "drive", Data: `{"id":2,"linear":0.2}`, From: "c2", ConnData: "role=viewer,name=bob"},
			{Type: "stop", Data: `{"id":3}`, From: "c2", ConnData: "role=viewer,name=bob"},
			sig("clear", `{"id":4}`),
			{Type: "clear", Data: `{"id":5}`, From: "c3", ConnData: "role=supervisor"},
			sig("control", `{"id":6,"action":"acquire"}`),
			sig("control", `{"id":7,"action":"transfer","to":"c3"}`),
			sig("lights", `{"id":8,"on":true}`),
			sig("selfie", `{"id":9}`),
		},
		"raw-serial": {
			sig("tank", `0.5,-0.25`),
			sig("tank", `1,1`),
			sig("tank", `-0.002,0.002`),
			sig("tank", `{"left":1}`),
			sig("tank", `0.5`),
			sig("light", `light on`),
			sig("light", `light off`),
			sig("light", `light dim`),
			sig("fan", `{"id":3,"pwm":120}`),
			sig("fan", `{"id":4,"pwm":256}`),
			sig("stop", ``),
		},
		"two-devices": {
			sig("drive", `{"id":1,"linear":0.4,"angular":-0.2}`),
			sig("arm", `{"id":2,"shoulder":0.3,"elbow":-1.2}`),
			sig("arm", `{"id":3,"shoulder":0.3}`),
			sig("gripper", `{"id":4,"grip":"close","force":140}`),
			sig("gripper", `{"id":5,"grip":"open"}`),
			sig("tool", `{"id":6,"tool":"cam-2"}`),
			sig("tool", `{"id":7,"tool":"CAM 2"}`),
			sig("arm-stop", `{"id":8}`),
			sig("stop", `{"id":9}`),
		},
	}
	var b strings.Builder
	for _, file := range exampleConfigs(t) {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		m := exampleMapper(t, file)
		fmt.Fprintf(&b, "# configs/%s.yaml\n", name)
		if len(cases[name]) == 0 {
			t.Errorf("no golden cases for %s", name)
		}
		for _, sig := range cases[name] {
			fmt.Fprintf(&b, "%s %q", sig.Type, sig.Data)
			if sig.ConnData != "" && sig.ConnData != "role=operator,name=alice" {
				fmt.Fprintf(&b, " from %q", sig.ConnData)
			}
			if sig.AgeMs > 0 {
				fmt.Fprintf(&b, " age %dms", sig.AgeMs)
			}
			cmd, rej := m.Map(sig)
			if rej != nil {
				fmt.Fprintf(&b, "\n  → rejected %s: %s", rej.Code, rej.Reason)
				if rej.ID != "" {
					fmt.Fprintf(&b, " (id %s)", rej.ID)
				}
				if !rej.Ack {
					b.WriteString(" [not acked]")
				}
				b.WriteString("\n")
				continue
			}
			dev := cmd.Device
			if dev == "" {
				dev = "*"
			}
			fmt.Fprintf(&b, "\n  → %s %s %q", cmd.Kind, dev, cmd.Text)
			if cmd.ID != "" {
				fmt.Fprintf(&b, " id %s", cmd.ID)
			}
			if cmd.Control.Action != ControlNone {
				fmt.Fprintf(&b, " %s %q", cmd.Control.Action, cmd.Control.To)
			}
			fmt.Fprintf(&b, " max_age %s", Duration(cmd.MaxAge))
			if cmd.Deadman > 0 {
				fmt.Fprintf(&b, " deadman %s", Duration(cmd.Deadman))
			}
			if cmd.Coalesce {
				b.WriteString(" coalesce")
			}
			if !cmd.Ack {
				b.WriteString(" no-ack")
			}
			b.WriteString("\n")
		}
	}
	golden(t, "map.golden", []byte(b.String()))
}

// FuzzMap feeds arbitrary data to every mapping of every example config
// (and the test config) and checks what reaches a device: printable ASCII
// only, never '!', '?' or '*', within the device's line, every number in
// its schema's range, and the same bytes from both renderers.
func FuzzMap(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `{"id":17,"linear":0.4,"angular":-0.2}`, `{"linear":1e300}`, `{"linear":-0.0001}`, `0.5,-0.25`,
		`light on`, `42%`, `{"tool":"cam-2"}`, `{"text":"a\nSTOP"}`, `{"grip":"close","force":140}`,
		`{"shoulder":0.3,"elbow":-1.2,"wrist":3.14}`, `{"on":true}`, `{"x":0.5,"mode":"fast","speed":100}`,
		`{"l":-1,"r":0.99999}`, `{"v":0.00005}`, `{"action":"transfer","to":"c1"}`, "{\"a\":\"\xff\"}", `{"pwm":255}`,
	} {
		f.Add(s)
	}
	type target struct {
		m     *Mapper
		types []string
	}
	var targets []target
	files := append(exampleConfigs(f), "testdata/map.yaml")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		c, err := Parse(file, data, testEnv(nil))
		if err != nil {
			f.Fatal(err)
		}
		m, err := NewMapper(c)
		if err != nil {
			f.Fatal(err)
		}
		var types []string
		for _, mc := range c.Mappings {
			types = append(types, mc.Type)
		}
		targets = append(targets, target{m, types})
	}
	f.Fuzz(func(t *testing.T, data string) {
		for _, tg := range targets {
			for _, typ := range tg.types {
				sig := Incoming{Type: typ, Data: data, From: "c", ConnData: "role=operator,name=root"}
				cmd, rej := tg.m.Map(sig)
				if rej != nil {
					if !utf8.ValidString(rej.Reason) {
						t.Errorf("%s: reason not UTF-8: %q", typ, rej.Reason)
					}
					for _, r := range rej.Reason {
						if r < 0x20 || r == 0x7F {
							t.Fatalf("%s: control character in reason %q", typ, rej.Reason)
						}
					}
					if rej.ID != "" && !json.Valid([]byte(rej.ID)) {
						t.Fatalf("%s: id %q is not JSON", typ, rej.ID)
					}
					continue
				}
				if cmd.ID != "" && !json.Valid([]byte(cmd.ID)) {
					t.Fatalf("%s: id %q is not JSON", typ, cmd.ID)
				}
				checkFuzzedCommand(t, tg.m.byType[typ], cmd, data)
			}
		}
	})
}

func checkFuzzedCommand(t *testing.T, mp *mapping, cmd Command, data string) {
	t.Helper()
	for i := 0; i < len(cmd.Text); i++ {
		c := cmd.Text[i]
		if c < 0x20 || c > 0x7E || c == '!' || c == '?' || c == '*' {
			t.Fatalf("%s %q → %q: byte 0x%02X", mp.typ, data, cmd.Text, c)
		}
	}
	if mp.tmpl == nil {
		if cmd.Text != "" {
			t.Fatalf("%s: text %q for kind %s", mp.typ, cmd.Text, mp.kind)
		}
		return
	}
	if len(cmd.Text) > mp.maxBody || cmd.Text == "" {
		t.Fatalf("%s %q → %q: %d bytes, limit %d", mp.typ, data, cmd.Text, len(cmd.Text), mp.maxBody)
	}
	if mp.ops == nil {
		return
	}
	// Recompute the values and compare the renderers.
	var vals [maxFields]value
	switch mp.format {
	case FormatJSON:
		mp.parseJSON(data, &vals)
	case FormatCSV:
		mp.parseCSV(data, &vals)
	case FormatText:
		mp.parseText(data, &vals)
	}
	mp.fillDefaults(&vals)
	if slow, err := renderTemplate(mp.tmpl, mp.fields, &vals); err != nil || slow != cmd.Text {
		t.Fatalf("%s %q: ops %q, template %q (%v)", mp.typ, data, cmd.Text, slow, err)
	}
	// Every number is within the schema's range, through the op's transforms.
	for i, s := range slotValues(mp.ops, cmd.Text) {
		o := mp.ops[i]
		if o.field < 0 || s == "" {
			continue
		}
		f := mp.fields[o.field]
		if !f.typ.numeric() {
			continue
		}
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("%s %q → %q: slot %q is not a number", mp.typ, data, cmd.Text, s)
		}
		lo, hi, tol := opBounds(f, o.xf)
		if x < lo-tol || x > hi+tol || math.IsNaN(x) {
			t.Fatalf("%s %q → %q: %s = %g outside [%g, %g]", mp.typ, data, cmd.Text, f.name, x, lo, hi)
		}
	}
}

// slotValues splits a rendered line into the text of each op, using the
// literal ops as separators (values never contain the next literal's first
// byte in these templates: they hold no spaces). It returns nil when a
// literal does not match.
func slotValues(ops []op, s string) []string {
	out := make([]string, len(ops))
	for i, o := range ops {
		if o.field < 0 {
			if !strings.HasPrefix(s, o.text) {
				return nil
			}
			out[i], s = o.text, s[len(o.text):]
			continue
		}
		end := len(s)
		if i+1 < len(ops) && ops[i+1].field < 0 && ops[i+1].text != "" {
			if j := strings.Index(s, ops[i+1].text); j >= 0 {
				end = j
			}
		}
		out[i], s = s[:end], s[end:]
	}
	return out
}

// opBounds is the range of an op's output given its field's range.
func opBounds(f field, xf []xform) (lo, hi, tol float64) {
	lo, hi, tol = f.min, f.max, 0.00005 // default rendering: 4 decimals
	for _, x := range xf {
		switch x.fn {
		case xScale:
			lo, hi = lo*x.a, hi*x.a
			if lo > hi {
				lo, hi = hi, lo
			}
			tol *= math.Abs(x.a)
		case xClamp:
			lo, hi = math.Max(lo, x.a), math.Min(hi, x.b)
		case xInt:
			tol = 0.5
		case xFixed:
			tol = 0.5 * math.Pow(10, -float64(x.n))
		}
	}
	return lo, hi, tol + 1e-9
}

// FuzzJSONObject checks the flat-object scanner against encoding/json: what
// it accepts is valid JSON with the same members.
func FuzzJSONObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `{"a":"x\u00e9\n","b":true,"c":null,"d":-1.5e3}`, `{"a":1,}`, ` {"a" : [1]} `, `{"\ud800":1}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		if !utf8.ValidString(data) {
			return // Map refuses it before scanning; encoding/json would substitute U+FFFD
		}
		p := jsonScanner{s: data}
		if _, err := p.begin(); err != nil {
			return
		}
		got := map[string]any{}
		for {
			k, v, done, err := p.next()
			if err != nil || v.kind == jsonObject || v.kind == jsonArray {
				return
			}
			if done {
				break
			}
			var x any
			switch v.kind {
			case jsonString:
				x = v.text()
			case jsonNumber:
				x = json.Number(v.raw)
			case jsonTrue:
				x = true
			case jsonFalse:
				x = false
			}
			got[k.text()] = x
		}
		if !json.Valid([]byte(data)) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		var want map[string]any
		d := json.NewDecoder(strings.NewReader(data))
		d.UseNumber()
		if err := d.Decode(&want); err != nil {
			t.Fatalf("encoding/json: %v", err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%q: scanner %v, encoding/json %v", data, got, want)
		}
	})
}

func BenchmarkMap(b *testing.B) {
	demo := exampleMapper(b, "../configs/demo.yaml")
	raw := exampleMapper(b, "../configs/raw-serial.yaml")
	tm := testMapper(b)
	slow := testMapper(b)
	slow.byType["drive"].ops = nil // force text/template
	benches := []struct {
		name string
		m    *Mapper
		sig  Incoming
	}{
		{"drive", demo, sig("drive", `{"id":17,"linear":0.4,"angular":-0.2}`)},
		{"drive-template", slow, sig("drive", `{"id":17,"linear":0.4,"angular":-0.2}`)},
		{"csv", raw, sig("tank", `0.5,-0.25`)},
		{"reject-range", tm, sig("drive", `{"id":17,"angular":9}`)},
		{"stop", demo, sig("stop", `{"id":18}`)},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bb.m.Map(bb.sig)
			}
		})
	}
}
