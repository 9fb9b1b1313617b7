package main

import "testing"

// reexecAgent leaves every other command, and an agent already set up or
// told not to, alone (it returns instead of exec'ing the test binary).
func TestReexecAgentLeavesOthersAlone(t *testing.T) {
	for _, args := range [][]string{
		{"teleop"},
		{"teleop", "server"},
		{"teleop", "agent", "--config", "x", "--steady-sysmon=false"},
		{"teleop", "agent", "--check", "--config", "x"},
		{"teleop", "agent", "--help"},
	} {
		reexecAgent(args, []string{"PATH=/usr/bin"})
	}
	reexecAgent([]string{"teleop", "agent", "--config", "x"}, []string{"GODEBUG=schedtrace=1000"})
}
