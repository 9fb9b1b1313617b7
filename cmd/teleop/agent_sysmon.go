package main

import (
	"os"
	"strings"
	"syscall"
)

// steadySysmon is the GODEBUG setting `teleop agent` runs with: a
// scheduler trace every 2^31-1 ms (24.8 days), which the agent does not
// want for itself. What it wants is the side effect: while a trace is due,
// the Go runtime's monitor thread (sysmon) never parks. Parked, it is woken
// by the first system call after every idle moment, and then polls at
// 20 µs until the process is idle again: with 50 drives and 10 telemetry
// readings a second that was a quarter of the agent's CPU. Unparked, it
// sleeps 10 ms at a time. docs/decisions/0006-steady-sysmon.md.
const steadySysmon = "schedtrace=2147483647"

// reexecAgent re-executes `teleop agent …` with steadySysmon added to
// GODEBUG (the runtime reads it only at start), keeping the PID, so a
// service manager sees no difference. It returns, doing nothing, when
// agentEnv says no, or when the exec fails.
func reexecAgent(args, env []string) {
	newEnv, ok := agentEnv(args, env)
	if !ok {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	_ = syscall.Exec(exe, args, newEnv)
}

// agentEnv is the environment to re-execute with: env with steadySysmon
// added to GODEBUG. ok is false for any command but `teleop agent`, for
// --check, --help and --steady-sysmon=false, and when GODEBUG already sets
// schedtrace.
func agentEnv(args, env []string) (_ []string, ok bool) {
	if len(args) < 2 || args[1] != "agent" {
		return nil, false
	}
	for _, a := range args[2:] {
		if a == "--steady-sysmon=false" || a == "--check" || a == "--help" || a == "-h" {
			return nil, false
		}
	}
	godebug := ""
	rest := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			godebug = v
			continue
		}
		rest = append(rest, kv)
	}
	if strings.Contains(godebug, "schedtrace=") {
		return nil, false
	}
	if godebug != "" {
		godebug += ","
	}
	return append(rest, "GODEBUG="+godebug+steadySysmon), true
}
