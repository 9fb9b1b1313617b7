package bridge

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// testEnv is the environment the example configs are checked with.
func testEnv(extra map[string]string) func(string) (string, bool) {
	env := map[string]string{
		"TELEOP_TOKEN":      "eyJhbGciOiJIUzI1NiJ9.test.token",
		"TELEOP_SESSION":    "1_MX4xMjM0NTZ-fjE3NjM4MDU2MDAxMjN-dGVzdA",
		"TELEOP_API_KEY":    "123456",
		"TELEOP_API_SECRET": "s3cr3t: with {yaml} punctuation # and a hash",
	}
	for k, v := range extra {
		env[k] = v
	}
	return func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
}

func exampleConfigs(t testing.TB) []string {
	files, err := filepath.Glob("../configs/*.yaml")
	if err != nil || len(files) < 4 {
		t.Fatalf("example configs: %v %v", files, err)
	}
	return files
}

func loadExample(t testing.TB, file string) *Config {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("configs/"+filepath.Base(file), data, testEnv(nil))
	if err != nil {
		t.Fatalf("%s:\n%v", file, err)
	}
	return c
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./bridge -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./bridge -run %s -update rewrites it)\n--- got\n%s\n--- want\n%s", path, t.Name(), got, want)
	}
}

// Every example config is valid, compiles into a Mapper, and normalises to
// its golden file; the normalised form parses back to itself.
func TestExampleConfigs(t *testing.T) {
	for _, file := range exampleConfigs(t) {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			c := loadExample(t, file)
			if _, err := NewMapper(c); err != nil {
				t.Fatal(err)
			}
			norm := c.Normalized()
			golden(t, "normalized/"+name+".yaml", norm)
			golden(t, "summary/"+name+".txt", []byte(c.Summary()))

			c2, err := Parse("normalized", norm, testEnv(nil))
			if err != nil {
				t.Fatalf("normalized config does not parse:\n%v\n%s", err, norm)
			}
			// Parsed back, the implicit mappings are explicit: only their comment goes.
			explicit := regexp.MustCompile(`(?m)^ *# implicit: .*\n`).ReplaceAll(norm, nil)
			if again := c2.Normalized(); !bytes.Equal(again, explicit) {
				t.Errorf("normalizing is not idempotent:\n%s\n---\n%s", norm, again)
			}
			if strings.Contains(string(norm), "s3cr3t") || strings.Contains(string(norm), "test.token") {
				t.Errorf("a secret leaked into the normalized config")
			}
		})
	}
}

// The demo config's defaults match `teleop server` and `teleop sim --link`.
func TestDemoDefaults(t *testing.T) {
	data, err := os.ReadFile("../configs/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("demo.yaml", data, testEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Session.Server != DefaultServer {
		t.Errorf("server %q, want %q", c.Session.Server, DefaultServer)
	}
	if got := c.Devices[0].PortSpec(); got != "/tmp/teleop-sim" { // sim.DefaultLink
		t.Errorf("port %q, want /tmp/teleop-sim", got)
	}
	c, err = Parse("demo.yaml", data, testEnv(map[string]string{"TELEOP_SERVER": "https://r.example", "TELEOP_PORT": "/dev/ttyACM1"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Session.Server != "https://r.example" || c.Devices[0].Port != "/dev/ttyACM1" {
		t.Errorf("environment not applied: %q %q", c.Session.Server, c.Devices[0].Port)
	}
	_, err = Parse("demo.yaml", data, func(string) (string, bool) { return "", false })
	if err == nil || !strings.Contains(err.Error(), "demo.yaml:14: session.token: environment variable TELEOP_TOKEN is not set") {
		t.Errorf("unset TELEOP_TOKEN: %v", err)
	}
}

// Broken configs report every problem with its line; the golden files are
// the exact text `teleop config check` prints.
func TestBadConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(file, data, testEnv(nil))
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("want Errors, got %v", err)
			}
			for _, e := range es {
				if e.Line == 0 {
					t.Errorf("no line: %v", e)
				}
			}
			golden(t, "bad/"+name+".errors", []byte(err.Error()+"\n"))
		})
	}
}

func TestParseErrors(t *testing.T) {
	base := "session: {token: t}\ndevices:\n  base: {port: /dev/ttyACM0}\n"
	drive := "mappings:\n  drive:\n    kind: setpoint\n    fields:\n      linear: {type: float, min: -1, max: 1, default: 0}\n    command: \"VEL {{ fixed 3 .linear }} 0\"\n"
	tests := []struct {
		name, yaml string
		want       []string // substrings, each must appear
	}{
		{"ok", base + drive, nil},
		{"empty", "", []string{"x.yaml: the file is empty"}},
		{"not a mapping", "- a\n- b\n", []string{"x.yaml:1: want a mapping of sections"}},
		{"yaml syntax", "session: {token: t\n", []string{"x.yaml:", "YAML: "}},
		{"min > max", base + strings.Replace(drive, "min: -1, max: 1", "min: 2, max: 1", 1),
			[]string{"x.yaml:8: mappings.drive.fields.linear: min 2 > max 1"}},
		{"unknown field with suggestion", base + strings.Replace(drive, "    command:", "    comand:", 1),
			[]string{`x.yaml:9: mappings.drive.comand: unknown field (did you mean "command"?)`}},
		{"duplicate key", base + drive + "  drive:\n    kind: oneshot\n", []string{"x.yaml:10: mappings.drive: given twice (first on line 5)"}},
		{"alias", base + "x: &v 1\n" + drive, []string{"x.yaml:4: x: unknown field"}},
		{"merge key", base + "mappings:\n  drive:\n    <<: {kind: setpoint}\n", []string{"merge keys"}},
		{"two devices need device", base + "  arm: {port: /dev/ttyACM1}\n" + drive,
			[]string{"x.yaml:6: mappings.drive.device: required when there is more than one device (devices: base, arm)"}},
		{"unused risk", base + drive + "safety:\n  i_understand_the_risk: [no_deadman]\n",
			[]string{"x.yaml:11: safety.i_understand_the_risk[0]: no_deadman is acknowledged but nothing in this file needs it"}},
		{"acked risk", base + drive + "safety:\n  deadman: 0s\n  i_understand_the_risk: [no_deadman]\n", nil},
		{"unacked risk", base + drive + "safety:\n  deadman: 0s\n",
			[]string{`x.yaml:11: safety.deadman: deadman 0 (the robot keeps`, `add "no_deadman" to safety.i_understand_the_risk`}},
		{"no stop on shutdown, unacked", base + drive + "safety:\n  stop_on_shutdown: false\n",
			[]string{`x.yaml:11: safety.stop_on_shutdown: false is unsafe`, `add "no_stop_on_shutdown" to safety.i_understand_the_risk`}},
		{"no stop on shutdown, acked", base + drive + "safety:\n  stop_on_shutdown: false\n  i_understand_the_risk: [no_stop_on_shutdown]\n", nil},
		{"long max age", base + drive + "safety:\n  max_age: 2500ms\n", []string{"long_max_age"}},
		{"control without lease", base + drive + "  control:\n    kind: control\n", []string{"kind control needs safety.lease: exclusive"}},
		{"estop kind clash", base + drive + "  estop:\n    kind: oneshot\n    command: PING\n", []string{`"estop" is safety.estop_type, so its kind must be estop`}},
		{"own signal type", base + drive + "  ack:\n    kind: oneshot\n    command: PING\n", []string{`"ack" is the agent's own signal`}},
		{"raw needs stop line", "session: {token: t}\ndevices:\n  r: {port: /dev/x, protocol: raw}\n" + drive, []string{"devices.r.stop_line: required for protocol raw"}},
		{"string needs safe pattern", base + "mappings:\n  say:\n    kind: oneshot\n    fields:\n      t: {type: string, pattern: '[^,]+', required: true}\n    command: \"SAY {{ .t }}\"\n",
			[]string{"mappings.say.fields.t.pattern: can match the control character 0x00"}},
		{"string pattern with space", base + "mappings:\n  say:\n    kind: oneshot\n    fields:\n      t: {type: string, pattern: '[a-z ]+', required: true}\n    command: \"SAY {{ .t }}\"\n",
			[]string{"can match a space"}},
		{"string pattern with bang", base + "mappings:\n  say:\n    kind: oneshot\n    fields:\n      t: {type: string, pattern: 'go|stop!', required: true}\n    command: \"SAY {{ .t }}\"\n",
			[]string{`can match '!'`}},
		{"text format groups", base + "mappings:\n  s:\n    kind: oneshot\n    format: text\n    pattern: '(?P<a>[0-9]+)'\n    fields:\n      b: {type: int, min: 0, max: 9, required: true}\n    command: \"S {{ .b }}\"\n",
			[]string{`group "a" is not a field`, "fields.b: is not a named group"}},
		{"csv separator", base + "mappings:\n  s:\n    kind: oneshot\n    format: csv\n    separator: '-'\n    fields:\n      b: {type: int, min: 0, max: 9, required: true}\n    command: \"S {{ .b }}\"\n",
			[]string{"separator: want one printable character"}},
		{"several problems at once", base + strings.Replace(strings.Replace(drive, "min: -1, max: 1", "min: 2, max: 1", 1), "kind: setpoint", "kind: setpoint\n    colour: red", 1) + "safety:\n  max_age: 1h\n",
			[]string{"mappings.drive.colour: unknown field", "min 2 > max 1", "safety.max_age: max_age 1h"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("x.yaml", []byte(tt.yaml), testEnv(nil))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected error:\n%v", err)
				}
				if _, err := NewMapper(c); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestExpandEnv(t *testing.T) {
	env := testEnv(map[string]string{"A": "x", "EMPTY": "", "Q": `"quoted" {yaml: [1]} #`})
	tests := []struct{ in, want, err string }{
		{"plain", "plain", ""},
		{"${A}", "x", ""},
		{"a${A}b${A}", "axbx", ""},
		{"${Q}", `"quoted" {yaml: [1]} #`, ""},
		{"${MISSING:-def}", "def", ""},
		{"${MISSING:-}", "", ""},
		{"${EMPTY:-def}", "def", ""},
		{"${A:-def}", "x", ""},
		{"$${A}", "${A}", ""},
		{"cost $5 {{ $x }}", "cost $5 {{ $x }}", ""},
		{"${MISSING}", "", "environment variable MISSING is not set"},
		{"${EMPTY}", "", "environment variable EMPTY is empty"},
		{"${A", "", "unterminated"},
		{"${1A}", "", "bad environment reference"},
		{"${A B}", "", "bad environment reference"},
	}
	for _, tt := range tests {
		got, err := expandEnv(tt.in, env)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q → %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	// A secret that would break YAML if expanded before parsing.
	c, err := Parse("x.yaml", []byte("session:\n  token: ${Q2}\ndevices:\n  b: {port: /dev/x}\nmappings:\n  s:\n    kind: oneshot\n    command: PING\n"),
		testEnv(map[string]string{"Q2": "a:b,{c}#d"}))
	if err != nil || c.Session.Token != "a:b,{c}#d" {
		t.Errorf("secret with YAML punctuation: %v %+v", err, c)
	}
	// AllowUnset keeps defaults and substitutes only what has none.
	got, err := expandEnv("${NOPE:-d} ${NOPE2}", AllowUnset(testEnv(nil)))
	if err != nil || got != "d UNSET-NOPE2" {
		t.Errorf("AllowUnset: %q %v", got, err)
	}
}

func TestPatternAlphabet(t *testing.T) {
	for _, p := range []string{`[a-z]+`, `[A-Za-z0-9_-]{1,12}`, `on|off`, `(?i)abc`, `[0-9]+(\.[0-9]+)?`, `\d+`, `\w+`} {
		if err := checkPatternAlphabet(p); err != nil {
			t.Errorf("%s refused: %v", p, err)
		}
	}
	for _, p := range []string{`.+`, `[^,]+`, `\S+`, `[ -~]+`, `a|b c`, `[a-z!]`, `\?`, `\*`, `[\x00-\x1f]`, `é`, `(?s).`, `[[:print:]]+`, `\s`, `(?i)k`} {
		err := checkPatternAlphabet(p)
		if p == `(?i)k` { // k folds to the Kelvin sign U+212A
			if err == nil {
				t.Errorf("%s: the Kelvin sign K matches (?i)k and is not ASCII", p)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s accepted", p)
		}
	}
}

// A Config built in Go goes through the same defaults and checks.
func TestConfigInGo(t *testing.T) {
	c := &Config{
		Session: Session{Token: "t"},
		Devices: []*Device{{Name: "base", Port: "/tmp/teleop-sim"}},
		Mappings: []*Mapping{{Type: "drive", Kind: KindSetpoint, Command: "VEL {{ fixed 3 .v }} 0",
			Fields: Fields{{Name: "v", Type: TypeFloat, Min: ptr(-1.0), Max: ptr(1.0), Default: ptr("0")}}}},
	}
	if _, err := NewMapper(c); err == nil {
		t.Fatal("a config without defaults was accepted")
	}
	c.ApplyDefaults()
	m, err := NewMapper(c)
	if err != nil {
		t.Fatal(err)
	}
	if cmd, rej := m.Map(Incoming{Type: "drive", Data: `{"v":0.25}`}); rej != nil || cmd.Text != "VEL 0.250 0" {
		t.Errorf("%+v %v", cmd, rej)
	}
	c.Mappings[0].Fields[0].Max = ptr(-2.0)
	if _, err := NewMapper(c); err == nil || !strings.Contains(err.Error(), "mappings.drive.fields.v: min -1 > max -2") {
		t.Errorf("invalid config: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

// FuzzParse: no input panics the loader; what it accepts compiles, and
// its normalized form parses back.
func FuzzParse(f *testing.F) {
	for _, file := range append(exampleConfigs(f), "testdata/map.yaml") {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	bad, _ := filepath.Glob("testdata/bad/*.yaml")
	for _, file := range bad {
		data, _ := os.ReadFile(file)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data, testEnv(nil))
		if err != nil {
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error is not Errors: %v", err)
			}
			return
		}
		if _, err := NewMapper(c); err != nil {
			t.Fatalf("parsed but does not compile: %v", err)
		}
		if _, err := Parse("normalized", c.Normalized(), testEnv(nil)); err != nil {
			t.Fatalf("normalized form does not parse: %v\n%s", err, c.Normalized())
		}
	})
}
