package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/teleop/teleop/devices/sim"
)

type simConfig struct {
	opts       sim.Options
	replyDelay time.Duration
	drop       float64
	corrupt    float64
	duplicate  float64
	faultDir   string
	logFormat  string
	logLevel   string
}

// newSimCmd builds `teleop sim`: a simulated robot on a pty that speaks
// firmware-protocol.md like the reference firmware.
func newSimCmd() *cobra.Command {
	var c simConfig
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Run a simulated robot on a pty (firmware protocol v1, differential drive, fault knobs)",
		Long: `Run a simulated differential-drive robot that speaks firmware-protocol.md on the master
side of a pty. Open the slave like a real board (115200 8N1): the agent, "teleop serial",
or a terminal (picocom, screen). It prints "pty: <path>" and "link: <path>" and keeps the
link (default ` + sim.DefaultLink + `, the port configs/demo.yaml names through TELEOP_PORT)
pointing at the pty. It runs until interrupted.

Fault flags make the link misbehave for testing hosts: --reply-delay slows every command
(lines behind it wait in the 64-byte receive buffer, which overflows like a real board's),
--drop/--corrupt/--duplicate disturb bytes with a probability each, in --fault-dir.`,
		Example: `  teleop sim
  teleop sim --link /tmp/robot --tlm-hz 20 --wdog-ms 300
  teleop sim --reply-delay 300ms --drop 0.01 --fault-dir to-host --seed 7`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSim(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), &c)
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.opts.Link, "link", sim.DefaultLink, `symlink kept pointing at the current pty ("" for none)`)
	f.IntVar(&c.opts.TLMHz, "tlm-hz", 10, "telemetry rate at boot, 0-50 (0: only on '?')")
	f.IntVar(&c.opts.WdogMs, "wdog-ms", 500, "device watchdog at boot, 50-5000 ms")
	f.IntVar(&c.opts.RX, "rx", 64, "receive buffer in bytes, announced in HELLO (≥ 64)")
	f.Float64Var(&c.opts.TrackWidth, "track-width", 0.3, "wheel separation, m")
	f.Float64Var(&c.opts.MaxWheel, "max-wheel", 1.0, "wheel speed limit, m/s")
	f.Float64Var(&c.opts.MaxLinear, "max-lin", 1.0, "linear speed limit at boot, m/s")
	f.Float64Var(&c.opts.MaxAngular, "max-ang", 4.0, "angular speed limit at boot, rad/s")
	f.StringSliceVar(&c.opts.Outputs, "outputs", []string{"lights"}, "OUT names (values 0 or 1)")
	f.DurationVar(&c.replyDelay, "reply-delay", 0, "time each command takes before it runs and is answered")
	f.Float64Var(&c.drop, "drop", 0, "probability of losing each byte")
	f.Float64Var(&c.corrupt, "corrupt", 0, "probability of flipping a bit in each byte")
	f.Float64Var(&c.duplicate, "duplicate", 0, "probability of doubling each byte")
	f.StringVar(&c.faultDir, "fault-dir", "both", "where byte faults apply: both, to-device or to-host")
	f.Uint64Var(&c.opts.Seed, "seed", 1, "seed of the byte faults")
	f.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

func runSim(ctx context.Context, stdout, stderr io.Writer, c *simConfig) error {
	logger, err := newLogger(stderr, c.logFormat, c.logLevel)
	if err != nil {
		return err
	}
	var dir sim.Direction
	switch c.faultDir {
	case "both":
		dir = sim.Both
	case "to-device":
		dir = sim.ToDevice
	case "to-host":
		dir = sim.ToHost
	default:
		return fmt.Errorf("--fault-dir %q: want both, to-device or to-host", c.faultDir)
	}
	for name, p := range map[string]float64{"drop": c.drop, "corrupt": c.corrupt, "duplicate": c.duplicate} {
		if p < 0 || p > 1 {
			return fmt.Errorf("--%s %g: want a probability, 0-1", name, p)
		}
	}
	if c.replyDelay < 0 {
		return fmt.Errorf("--reply-delay %v: want ≥ 0", c.replyDelay)
	}
	o := c.opts
	o.Logger = logger
	if o.TLMHz == 0 {
		o.TLMHz = -1 // sim.Options: 0 means the default
	}
	r, err := sim.New(&o)
	if err != nil {
		return err
	}
	defer r.Close()
	f := r.Faults()
	f.SetReplyDelay(c.replyDelay)
	f.SetDrop(dir, c.drop)
	f.SetCorrupt(dir, c.corrupt)
	f.SetDuplicate(dir, c.duplicate)

	fmt.Fprintf(stdout, "pty: %s\n", r.Path())
	if r.Link() != "" {
		fmt.Fprintf(stdout, "link: %s\n", r.Link())
	}
	<-ctx.Done()
	return r.Close()
}
