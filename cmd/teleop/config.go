package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/teleop/teleop/bridge"
)

// newConfigCmd builds `teleop config`, the agent configuration tools.
func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Agent configuration tools",
	}
	cmd.AddCommand(newConfigCheckCmd())
	return cmd
}

// newConfigCheckCmd builds `teleop config check FILE…`.
func newConfigCheckCmd() *cobra.Command {
	var normalized, allowUnset bool
	cmd := &cobra.Command{
		Use:   "check FILE...",
		Short: "Validate agent configuration files and summarise what they do",
		Long: `Check agent configuration files as the agent would load them and print every
problem with its line ("configs/x.yaml:14: mappings.drive.fields.linear: min 2 > max 1"),
including unsafe settings that are not acknowledged in safety.i_understand_the_risk.
On success, print a summary: devices, safety settings, and what each signal type maps to.

${VAR} references are expanded from the environment; --allow-unset stands a placeholder
in for variables that are unset and have no default (for checking files in CI
without their secrets). The reference is docs/configuration.md.`,
		Example: `  teleop config check configs/demo.yaml
  teleop config check --allow-unset configs/*.yaml
  TELEOP_TOKEN=x teleop config check --normalized configs/demo.yaml`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			env := os.LookupEnv
			if allowUnset {
				env = bridge.AllowUnset(os.LookupEnv)
			}
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			failed := 0
			for _, file := range files {
				data, err := os.ReadFile(file)
				if err != nil {
					fmt.Fprintf(errOut, "%s: %v\n", file, err)
					failed++
					continue
				}
				c, err := bridge.Parse(file, data, env)
				if err != nil {
					failed++
					var es bridge.Errors
					if errors.As(err, &es) {
						for _, e := range es {
							fmt.Fprintln(errOut, e)
						}
						fmt.Fprintf(errOut, "%s: %d %s\n", file, len(es), plural(len(es), "problem", "problems"))
					} else {
						fmt.Fprintf(errOut, "%s: %v\n", file, err)
					}
					continue
				}
				if normalized {
					fmt.Fprintf(out, "# %s: ok\n", file)
					out.Write(c.Normalized())
					continue
				}
				fmt.Fprintf(out, "%s: ok\n%s", file, c.Summary())
			}
			if failed > 0 {
				return fmt.Errorf("config check: %d of %d %s invalid", failed, len(files), plural(len(files), "file", "files"))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&normalized, "normalized", false, "print each valid configuration as the agent runs it (defaults filled in, secrets redacted)")
	cmd.Flags().BoolVar(&allowUnset, "allow-unset", false, "expand unset ${VAR} references without default to a placeholder instead of failing")
	return cmd
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
