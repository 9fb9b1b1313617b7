// Command teleop is the robot teleoperation bridge: a signaling relay, the
// agent that runs beside a robot, a simulated robot, and operator tools.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	reexecAgent(os.Args, os.Environ())
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "teleop:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return newRootCmd(os.Stdout, os.Stderr).ExecuteContext(ctx)
}
