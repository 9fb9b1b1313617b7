package emutest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/teleop/teleop/signaling"
)

// TestFootprint measures the agent's resident memory, idle and while an
// operator drives at 50 Hz, natively and under qemu-user (arm64, arm v7),
// and the size of each release binary. It is a measurement for
// docs/benchmarks.md, not a test: it runs only with TELEOP_FOOTPRINT=1.
//
//	TELEOP_FOOTPRINT=1 go test -run TestFootprint -v -timeout 10m ./internal/emutest
//
// The relay and the simulated robot run natively; only the agent changes.
// Under qemu-user, VmRSS is that of the qemu process, which holds the
// emulator (its translated-code cache and its own heap) as well as the
// guest: it overstates what the agent needs on a Pi.
func TestFootprint(t *testing.T) {
	if os.Getenv("TELEOP_FOOTPRINT") != "1" {
		t.Skip("a measurement: set TELEOP_FOOTPRINT=1 to run it")
	}
	idleFor := envDuration("TELEOP_FOOTPRINT_IDLE", 10*time.Second)
	driveFor := envDuration("TELEOP_FOOTPRINT_DRIVE", 30*time.Second)

	var rows []string
	for _, tg := range append([]target{native}, targets...) {
		st, err := os.Stat(tg.binary(t))
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, fmt.Sprintf("size %-6s %6.1f MiB (%d bytes, stripped, static)", tg.name, float64(st.Size())/(1<<20), st.Size()))
	}
	for _, tg := range []target{native, arm64, armv7} {
		t.Run(tg.name, func(t *testing.T) {
			r := measureAgent(t, tg, idleFor, driveFor)
			rows = append(rows, fmt.Sprintf("rss  %-6s idle %5.1f MiB (anon %4.1f + file %4.1f) · driving at 50 Hz: peak %5.1f MiB, end %5.1f MiB (anon %4.1f + file %4.1f) · %d drives, %d acks ok, %d other %s",
				tg.name, mib(r.idle.rss), mib(r.idle.anon), mib(r.idle.file), mib(r.peak), mib(r.end.rss), mib(r.end.anon), mib(r.end.file),
				r.sent, r.ok, r.other, r.others),
				fmt.Sprintf("go   %-6s idle: sys %5.1f MiB, heap in use %4.1f MiB · after driving: sys %5.1f MiB, heap in use %4.1f MiB",
					tg.name, r.goSysIdle/(1<<20), r.heapIdle/(1<<20), r.goSysEnd/(1<<20), r.heapEnd/(1<<20)))
		})
	}
	t.Logf("footprint (go %s, %s):\n%s", strings.TrimPrefix(goVersion(t), "go version "), cpuModel(), strings.Join(rows, "\n"))
}

type footprint struct {
	idle, end       memKB
	peak            int // VmRSS, KiB
	sent, ok, other int64
	others          string // the other acks by status/code
	// The Go runtime's own view, from the agent's /metrics (the guest's,
	// under qemu): memory obtained from the OS, and heap in use, in bytes.
	goSysIdle, goSysEnd, heapIdle, heapEnd float64
}

func mib(kb int) float64 { return float64(kb) / 1024 }

func measureAgent(t *testing.T, tg target, idleFor, driveFor time.Duration) footprint {
	session := "footprint-" + tg.name
	server := start(t, "teleop server", native.command(t, "server", "--listen", "127.0.0.1:0"), apiEnv...)
	line := server.stdout.waitLine(t, server, "listening on ", waitLong)
	url := strings.TrimSpace(line[strings.Index(line, "listening on ")+len("listening on "):])
	link := t.TempDir() + "/robot"
	robot := start(t, "teleop sim", native.command(t, "sim", "--link", link))
	robot.stdout.waitLine(t, robot, "link: ", waitLong)
	cfg := t.TempDir() + "/agent.yaml"
	if err := os.WriteFile(cfg, []byte(agentConfig(url, mint(t, native, session, "role=robot,name=fp"), link)), 0o600); err != nil {
		t.Fatal(err)
	}
	agent := start(t, "teleop agent", tg.command(t, "agent", "--config", cfg, "--metrics", "127.0.0.1:0"))
	line = agent.stderr.waitLine(t, agent, "url=http://", waitLong)
	metrics := strings.Fields(line[strings.Index(line, "url=")+len("url="):])[0]

	op := signaling.NewSession(nil)
	var ok, other atomic.Int64
	var mu sync.Mutex
	others := map[string]int{} // status/code of the acks that are not ok
	op.OnSignalType("ack", func(s signaling.Signal) {
		var a struct{ Status, Code string }
		if json.Unmarshal([]byte(s.Data), &a) == nil && a.Status == "ok" {
			ok.Add(1)
			return
		}
		other.Add(1)
		mu.Lock()
		others[a.Status+"/"+a.Code]++
		mu.Unlock()
	})
	ctx := t.Context()
	if err := op.Connect(ctx, url, mint(t, native, session, "role=operator,name=fp")); err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	// The agent is up when it answers a stop.
	deadline := time.Now().Add(waitLong)
	for ok.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the agent never acked a stop:\n%s", agent.stderr)
		}
		op.Signal(ctx, signaling.Signal{Type: "stop", Data: `{"id":1}`})
		time.Sleep(500 * time.Millisecond)
	}

	var r footprint
	time.Sleep(idleFor) // a measurement of the idle agent, not an ordering
	r.idle = rss(t, agent)
	r.goSysIdle, r.heapIdle = goMemory(t, metrics)
	ok.Store(0)
	other.Store(0)
	mu.Lock()
	clear(others)
	mu.Unlock()

	tick := time.NewTicker(20 * time.Millisecond) // 50 Hz
	defer tick.Stop()
	sample := time.NewTicker(250 * time.Millisecond)
	defer sample.Stop()
	end := time.After(driveFor)
	id := int64(100)
	for done := false; !done; {
		select {
		case <-tick.C:
			id++
			op.Signal(ctx, signaling.Signal{Type: "drive", Data: fmt.Sprintf(`{"id":%d,"linear":0.2,"angular":0.1}`, id)})
			r.sent++
		case <-sample.C:
			r.peak = max(r.peak, rss(t, agent).rss)
		case <-end:
			done = true
		}
	}
	r.end = rss(t, agent)
	r.goSysEnd, r.heapEnd = goMemory(t, metrics)
	r.peak = max(r.peak, r.end.rss)
	time.Sleep(time.Second) // the last acks
	r.ok, r.other = ok.Load(), other.Load()
	mu.Lock()
	r.others = fmt.Sprint(others)
	mu.Unlock()
	if err := agent.stop(waitLong); err != nil {
		t.Errorf("agent: %v", err)
	}
	return r
}

// goMemory scrapes go_memstats_sys_bytes and go_memstats_heap_inuse_bytes.
func goMemory(t *testing.T, url string) (sys, heap float64) {
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "go_memstats_sys_bytes":
			sys = v
		case "go_memstats_heap_inuse_bytes":
			heap = v
		}
	}
	return sys, heap
}

func rss(t *testing.T, p *proc) memKB {
	m, err := p.mem()
	if err != nil {
		t.Fatalf("VmRSS of %s: %v", p.name, err)
	}
	return m
}

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}

func goVersion(t *testing.T) string {
	out, err := runOutput("go", "version")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "unknown CPU"
}
