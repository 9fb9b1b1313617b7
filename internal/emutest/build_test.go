package emutest

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// target is one release binary and the qemu that runs it.
type target struct {
	name   string // as in dist/teleop-linux-<name>
	goarch string
	goarm  string
	qemu   string // qemu-user binary
	cpu    string // the oldest CPU of the Pi models the binary is for
	pis    string
}

var (
	arm64 = target{"arm64", "arm64", "", "qemu-aarch64-static", "cortex-a53", "Pi 3, 4, 5, Zero 2 W (64-bit OS)"}
	armv7 = target{"armv7", "arm", "7", "qemu-arm-static", "cortex-a7", "Pi 2, 3, 4, 5, Zero 2 W (32-bit OS)"}
	armv6 = target{"armv6", "arm", "6", "qemu-arm-static", "arm1176", "Pi 1, Zero, Zero W"}

	targets = []target{arm64, armv7, armv6}

	// native is this machine's own build, run without an emulator.
	native = target{name: runtime.GOARCH, goarch: runtime.GOARCH}
)

// Stamped into the test binaries, and checked in `teleop version`.
const (
	stampVersion = "v0.0.0-emutest"
	stampDate    = "2026-01-02T03:04:05Z"
)

// qemu returns the path of t's emulator, or skips (fails when
// TELEOP_REQUIRE_QEMU=1) when it is not installed.
func (tg target) qemuPath(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath(tg.qemu)
	if err != nil {
		msg := fmt.Sprintf("%s not found: install qemu-user-static (Debian) to run the %s binary under emulation", tg.qemu, tg.name)
		if os.Getenv("TELEOP_REQUIRE_QEMU") == "1" {
			t.Fatal(msg + " (TELEOP_REQUIRE_QEMU=1)")
		}
		t.Skip(msg + "; set TELEOP_REQUIRE_QEMU=1 to fail instead")
	}
	return p
}

// command runs the teleop binary for tg under its emulator, on the CPU of
// the oldest Pi it is for. No binfmt_misc registration is needed.
func (tg target) command(t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	if tg.qemu == "" {
		return exec.Command(tg.binary(t), args...)
	}
	q := tg.qemuPath(t)
	return exec.Command(q, append([]string{"-cpu", tg.cpu, tg.binary(t)}, args...)...)
}

var builds sync.Map // target name → *build

type build struct {
	once sync.Once
	path string
	err  error
}

// binary returns teleop built for tg as make cross builds it (static,
// trimmed, stamped), from a cache in the temporary directory keyed by the
// content of every file that goes into it.
func (tg target) binary(t testing.TB) string {
	t.Helper()
	v, _ := builds.LoadOrStore(tg.name, &build{})
	b := v.(*build)
	b.once.Do(func() { b.path, b.err = buildCached(tg) })
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func buildCached(tg target) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	env := append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+tg.goarch, "GOARM="+tg.goarm)
	key, err := sourceKey(root, env, tg)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(os.TempDir(), "teleop-emutest-cache")
	bin := filepath.Join(dir, "teleop-linux-"+tg.name+"-"+key[:16])
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".build-*")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	ldflags := fmt.Sprintf("-s -w -X main.version=%s -X main.commit=%s -X main.date=%s", stampVersion, key[:7], stampDate)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", tmp.Name(), "./cmd/teleop")
	cmd.Dir, cmd.Env = root, env
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build teleop for %s: %v\n%s", tg.name, err, out)
	}
	if err := os.Rename(tmp.Name(), bin); err != nil {
		return "", err
	}
	prune(dir, tg.name, bin)
	return bin, nil
}

// prune keeps the two newest cached binaries of a target.
func prune(dir, name, keep string) {
	old, _ := filepath.Glob(filepath.Join(dir, "teleop-linux-"+name+"-*"))
	slices.SortFunc(old, func(a, b string) int {
		ia, _ := os.Stat(a)
		ib, _ := os.Stat(b)
		if ia == nil || ib == nil {
			return 0
		}
		return ib.ModTime().Compare(ia.ModTime())
	})
	for i, p := range old {
		if i >= 2 && p != keep {
			os.Remove(p)
		}
	}
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// sourceKey hashes what goes into the binary: the Go version and target,
// and the content of every Go and embedded file of the module's packages
// that cmd/teleop imports for this target (go list -deps); modules from
// the cache are named by go.sum.
func sourceKey(root string, env []string, tg target) (string, error) {
	cmd := exec.Command("go", "list", "-deps", "-f",
		`{{if not .Standard}}{{.Dir}}{{range .GoFiles}}|{{.}}{{end}}{{range .EmbedFiles}}|{{.}}{{end}}{{end}}`, "./cmd/teleop")
	cmd.Dir, cmd.Env = root, env
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list: %w", err)
	}
	ver, err := exec.Command("go", "version").Output()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s %s/%s\n", ver, tg.goarch, tg.goarm)
	files := []string{filepath.Join(root, "go.mod"), filepath.Join(root, "go.sum")}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		parts := strings.Split(line, "|")
		if parts[0] == "" || !strings.HasPrefix(parts[0], root+string(filepath.Separator)) && parts[0] != root {
			continue // a module from the module cache: go.sum names its version
		}
		for _, f := range parts[1:] {
			files = append(files, filepath.Join(parts[0], f))
		}
	}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\n", strings.TrimPrefix(f, root))
		_, err = io.Copy(h, fh)
		fh.Close()
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// isStatic reports whether the ELF file at path has no interpreter: a
// static binary runs on any Pi OS, whatever its libc.
func isStatic(path string) (bool, elf.Machine, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, 0, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, f.Machine, nil
		}
	}
	return true, f.Machine, nil
}

func runOutput(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).Output()
	return string(out), err
}
