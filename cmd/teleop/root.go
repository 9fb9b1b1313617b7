package main

import (
	"io"

	"github.com/spf13/cobra"
)

// newRootCmd builds the command tree. Every subcommand has its own
// constructor; nothing is registered from init.
func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "teleop",
		Short:         "Robot teleoperation bridge: relay, agent, simulated robot and operator tools",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		newVersionCmd(),
		newTokenCmd(),
		newListenCmd(),
		newSignalCmd(),
		newServerCmd(),
		newBenchCmd(),
		newConfigCmd(),
		newSimCmd(),
		newPortsCmd(),
		newSerialCmd(),
		newDriveCmd(),
		newAgentCmd(),
		newDemoCmd(),
	)
	return root
}
