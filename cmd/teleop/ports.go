package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/teleop/teleop/devices"
)

// newPortsCmd builds `teleop ports`: the serial ports of this machine with
// their USB details, read from sysfs. It opens no port: probing a port by
// opening it reprograms it, which would disturb one in use (on a Pi, the
// console UART).
func newPortsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ports",
		Short: "List serial ports with their USB details (reads sysfs; opens no port)",
		Long: `List the serial ports of this machine: device node, /dev/serial/by-id links, USB
vendor:product ID, serial number, manufacturer and product, and driver, all read from
/sys and /dev. No port is opened, so listing never disturbs a port in use.

Select a device in the agent config or with "teleop serial --port" by its node, by a
/dev/serial/by-id link (stable across replugs), or by usb:VID:PID[:SERIAL].`,
		Example: `  teleop ports
  teleop ports --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ports, err := devices.ListPorts()
			if err != nil {
				return err
			}
			return printPorts(cmd.OutOrStdout(), ports, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

func printPorts(w io.Writer, ports []devices.PortInfo, asJSON bool) error {
	if asJSON {
		if ports == nil {
			ports = []devices.PortInfo{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(ports)
	}
	if len(ports) == 0 {
		_, err := fmt.Fprintln(w, "no serial ports found")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PORT\tUSB ID\tSERIAL\tDEVICE\tDRIVER\tSELECT WITH")
	for _, p := range ports {
		desc := strings.TrimSpace(p.Manufacturer + " " + p.Product)
		driver := p.Driver
		if p.Console {
			driver += " (console)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n",
			p.Path, dash(p.ID()), dash(p.Serial), dash(desc), dash(driver), dash(selectWith(p)))
	}
	return tw.Flush()
}

// selectWith is the most stable way to name the port: its by-id link, else
// its USB identity, else its node.
func selectWith(p devices.PortInfo) string {
	for _, l := range p.Links {
		if strings.Contains(l, "/by-id/") {
			return l
		}
	}
	if p.USB && p.Serial != "" {
		return "usb:" + p.ID() + ":" + p.Serial
	}
	if p.USB {
		return "usb:" + p.ID()
	}
	return p.Path
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
