package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/teleop/teleop/clock"
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
	schedule   simSchedule

	clock clock.Clock // of the robot and the schedule; nil = the wall clock (tests set a fake)
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
--drop/--corrupt/--duplicate disturb bytes with a probability each, in --fault-dir.

Timed faults fire once after --X-after, then every --X-every (either one alone works):
  stall   stop reading for --stall-for: the pty fills and the host's writes block
  reset   reboot: settings, setpoint and e-stop latch are lost and a new HELLO goes out
  unplug  close the pty (the host's reads fail, the link goes away) and come back after
          --unplug-for on another pty path, with the link pointing at it, and a new HELLO
By hand, with signals: SIGUSR1 resets, SIGUSR2 unplugs for --unplug-for (a second SIGUSR2
while unplugged plugs it back at once). Each fault prints one "sim: …" line on stderr.`,
		Example: `  teleop sim
  teleop sim --link /tmp/robot --tlm-hz 20 --wdog-ms 300
  teleop sim --reply-delay 300ms --drop 0.01 --fault-dir to-host --seed 7
  teleop sim --reset-every 30s --unplug-after 10s --unplug-for 3s
  kill -USR2 <pid>    # unplug a running "teleop sim" (its pid is on stderr)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sigs := make(chan os.Signal, 1)
			signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2)
			defer signal.Stop(sigs)
			return runSim(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), &c, sigs)
		},
	}
	c.addFlags(cmd)
	return cmd
}

func (c *simConfig) addFlags(cmd *cobra.Command) {
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
	s := &c.schedule
	f.DurationVar(&s.stall.after, "stall-after", 0, "stop reading this long after start (0: never)")
	f.DurationVar(&s.stall.every, "stall-every", 0, "stop reading every this long (0: once at most)")
	f.DurationVar(&s.stallFor, "stall-for", 2*time.Second, "how long a stall lasts")
	f.DurationVar(&s.reset.after, "reset-after", 0, "reset (new HELLO) this long after start (0: never)")
	f.DurationVar(&s.reset.every, "reset-every", 0, "reset every this long (0: once at most)")
	f.DurationVar(&s.unplug.after, "unplug-after", 0, "unplug this long after start (0: never)")
	f.DurationVar(&s.unplug.every, "unplug-every", 0, "unplug every this long (0: once at most)")
	f.DurationVar(&s.unplugFor, "unplug-for", 2*time.Second, "how long an unplug lasts (also for SIGUSR2)")
	f.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
}

// runSim runs the robot until ctx ends. sigs carries SIGUSR1 and SIGUSR2
// (nil: no signals); the "sim: …" fault lines go to stderr with the log.
func runSim(ctx context.Context, stdout, stderr io.Writer, c *simConfig, sigs <-chan os.Signal) error {
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
	if err := c.schedule.validate(); err != nil {
		return err
	}
	o := c.opts
	o.Logger = logger
	o.Clock = clock.Or(c.clock)
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

	// The timers are armed before the pty is announced: "after" counts from
	// the moment a host can know where the robot is.
	x := newSimFaults(r, o.Clock, stderr, c.schedule)
	defer x.stop()

	fmt.Fprintf(stdout, "pty: %s\n", r.Path())
	if r.Link() != "" {
		fmt.Fprintf(stdout, "link: %s\n", r.Link())
	}
	if sigs != nil {
		fmt.Fprintf(stderr, "sim: pid %d: kill -USR1 resets, kill -USR2 unplugs for %v\n", os.Getpid(), c.schedule.unplugFor)
	}
	if err := x.run(ctx, sigs); err != nil {
		return err
	}
	return r.Close()
}
