package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runConfigCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCmd(&out, &errOut)
	root.SetArgs(args)
	err = root.ExecuteContext(t.Context())
	return out.String(), errOut.String(), err
}

// Every example config passes `teleop config check`.
func TestConfigCheckExamples(t *testing.T) {
	t.Setenv("TELEOP_TOKEN", "eyJ.test.token")
	t.Setenv("TELEOP_SESSION", "demo")
	t.Setenv("TELEOP_API_KEY", "123456")
	t.Setenv("TELEOP_API_SECRET", "secret")
	files, err := filepath.Glob("../../configs/*.yaml")
	if err != nil || len(files) < 4 {
		t.Fatalf("configs: %v %v", files, err)
	}
	for _, f := range files {
		out, errOut, err := runConfigCmd(t, "config", "check", f)
		if err != nil {
			t.Errorf("%s: %v\n%s", f, err, errOut)
			continue
		}
		if !strings.Contains(out, f+": ok") || !strings.Contains(out, "mappings") {
			t.Errorf("%s: summary:\n%s", f, out)
		}
	}
	out, _, err := runConfigCmd(t, append([]string{"config", "check", "--normalized"}, files...)...)
	if err != nil || strings.Count(out, ": ok\n") != len(files) || strings.Contains(out, "eyJ.test.token") {
		t.Errorf("--normalized: %v\n%s", err, out)
	}
}

func TestConfigCheckErrors(t *testing.T) {
	t.Setenv("TELEOP_TOKEN", "") // restored after the test
	os.Unsetenv("TELEOP_TOKEN")
	bad := "../../bridge/testdata/bad/unknown.yaml"
	out, errOut, err := runConfigCmd(t, "config", "check", "../../configs/demo.yaml", bad)
	if err == nil || err.Error() != "config check: 2 of 2 files invalid" {
		t.Errorf("err = %v", err)
	}
	if out != "" {
		t.Errorf("stdout: %q", out)
	}
	for _, want := range []string{
		"../../configs/demo.yaml:14: session.token: environment variable TELEOP_TOKEN is not set",
		bad + `:3: session.tokn: unknown field (did you mean "token"?)`,
		bad + ":23: safety.deadman: want a duration such as 500ms or 2s",
		bad + ": 8 problems",
	} {
		if !strings.Contains(errOut, want+"\n") && !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	// --allow-unset checks a file without its secrets.
	if _, errOut, err := runConfigCmd(t, "config", "check", "--allow-unset", "../../configs/demo.yaml"); err != nil {
		t.Errorf("--allow-unset: %v\n%s", err, errOut)
	}
	if _, _, err := runConfigCmd(t, "config", "check", "/nonexistent.yaml"); err == nil {
		t.Error("missing file accepted")
	}
}
