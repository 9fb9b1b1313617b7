package devices

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/teleop/teleop/devices/proto"
)

func TestConfigValidate(t *testing.T) {
	hz := func(n int) *int { return &n }
	cases := []struct {
		name string
		cfg  Config
		errs []string // substrings; none means valid
	}{
		{"minimal", Config{Port: "/dev/ttyACM0"}, nil},
		{"usb", Config{Port: "usb:2341:0043"}, nil},
		{"raw", Config{Port: "/dev/x", Protocol: ProtocolRaw, Raw: RawConfig{Stop: "M 0 0", OK: "^ok"}}, nil},
		{"no port", Config{}, []string{"port: required"}},
		{"bad usb", Config{Port: "usb:12:34"}, []string{"4-digit hex"}},
		{"bad protocol", Config{Port: "/x", Protocol: "teleop/2"}, []string{"protocol"}},
		{"watchdog range", Config{Port: "/x", WatchdogMs: 10}, []string{"wdog_ms"}},
		{"tlm range", Config{Port: "/x", TelemetryHz: hz(51)}, []string{"tlm_hz"}},
		{"tlm zero ok", Config{Port: "/x", TelemetryHz: hz(0)}, nil},
		{"own settings", Config{Port: "/x", Settings: map[string]string{"strict": "0"}}, []string{"set by the handshake"}},
		{"bad setting value", Config{Port: "/x", Settings: map[string]string{"max_lin": "1 2"}}, []string{"max_lin"}},
		{"bad setting key", Config{Port: "/x", Settings: map[string]string{"Max": "1"}}, []string{"Max"}},
		{"negative duration", Config{Port: "/x", SilenceTimeout: -time.Second}, []string{"silence_timeout"}},
		{"backoff order", Config{Port: "/x", BackoffMin: time.Second, BackoffMax: time.Millisecond}, []string{"backoff_max"}},
		{"raw without stop", Config{Port: "/x", Protocol: ProtocolRaw}, []string{"raw.stop: required"}},
		{"raw newline", Config{Port: "/x", Protocol: ProtocolRaw, Raw: RawConfig{Stop: "M 0 0\nRESET"}}, []string{"raw.stop"}},
		{"raw bad regexp", Config{Port: "/x", Protocol: ProtocolRaw, Raw: RawConfig{Stop: "S", OK: "("}}, []string{"raw.ok"}},
		{"raw error without ok", Config{Port: "/x", Protocol: ProtocolRaw, Raw: RawConfig{Stop: "S", Error: "e"}}, []string{"raw.error needs raw.ok"}},
		{"raw too long", Config{Port: "/x", Protocol: ProtocolRaw, Raw: RawConfig{Stop: strings.Repeat("s", 20), MaxLine: 16}}, []string{"limit 16"}},
		{"raw fields on teleop", Config{Port: "/x", Raw: RawConfig{Stop: "S"}}, []string{"only for protocol"}},
		{"several at once", Config{Protocol: "x", WatchdogMs: 1}, []string{"port", "protocol", "wdog_ms"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate = nil")
			}
			for _, s := range tc.errs {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Validate = %v, want it to mention %q", err, s)
				}
			}
		})
	}
	if _, err := Open(context.Background(), Config{}, nil); err == nil {
		t.Error("Open with an invalid config succeeded")
	}
}

func TestSetArgsFit(t *testing.T) {
	cfg := Config{Port: "/x", Settings: map[string]string{}}
	for _, k := range []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"} {
		cfg.Settings["k_"+k] = strings.Repeat("9", 8)
	}
	cfg = cfg.withDefaults()
	sets := cfg.setArgs()
	if len(sets) < 3 {
		t.Fatalf("%d SET lines for 8 long settings; want them split", len(sets))
	}
	n := 0
	for _, args := range sets {
		line, err := proto.AppendCommand(nil, 65535, "SET", args...)
		if err != nil {
			t.Fatalf("SET line does not fit: %v", err)
		}
		t.Logf("%q", line)
		n += len(args)
	}
	if n != 3+8 {
		t.Errorf("%d settings sent, want 11", n)
	}
}
