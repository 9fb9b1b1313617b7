package main

import (
	"slices"
	"testing"
)

func TestAgentEnv(t *testing.T) {
	for _, args := range [][]string{
		{"teleop"},
		{"teleop", "server"},
		{"teleop", "agent", "--config", "x", "--steady-sysmon=false"},
		{"teleop", "agent", "--check", "--config", "x"},
		{"teleop", "agent", "--help"},
	} {
		if env, ok := agentEnv(args, []string{"PATH=/usr/bin"}); ok {
			t.Errorf("%q: re-executes with %q, want as is", args, env)
		}
	}
	agent := []string{"teleop", "agent", "--config", "x"}
	if env, ok := agentEnv(agent, []string{"GODEBUG=schedtrace=1000"}); ok {
		t.Errorf("GODEBUG with schedtrace: re-executes with %q, want as is", env)
	}
	env, ok := agentEnv(agent, []string{"PATH=/usr/bin"})
	if !ok || !slices.Equal(env, []string{"PATH=/usr/bin", "GODEBUG=" + steadySysmon}) {
		t.Errorf("agent: %q %v", env, ok)
	}
	env, ok = agentEnv(agent, []string{"GODEBUG=madvdontneed=1", "HOME=/root"})
	if !ok || !slices.Equal(env, []string{"HOME=/root", "GODEBUG=madvdontneed=1," + steadySysmon}) {
		t.Errorf("agent with a GODEBUG: %q %v", env, ok)
	}
}
