package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/teleop/teleop/demo"
	"github.com/teleop/teleop/devices/sim"
	"github.com/teleop/teleop/signaling/token"
)

// demoConfig is what `teleop demo` runs with.
type demoConfig struct {
	listen         string
	config         string // agent configuration file; "" is the embedded configs/demo.yaml
	link           string
	devAllowRemote bool
	logFormat      string
	logLevel       string
	self           string // how the printed command lines call teleop

	started func(*demo.Stack) // tests: called once the stack runs
}

// newDemoCmd builds `teleop demo`: the relay, the console, a simulated
// robot and an agent in one process.
func newDemoCmd() *cobra.Command {
	var c demoConfig
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole stack in one process: relay, console, simulated robot and agent",
		Long: `Run the whole stack in one process: the relay with the operator console (dev mode, throwaway
credentials), a simulated robot on a pty, and an agent with configs/demo.yaml (built in;
--config runs another file) that joins session "demo" as role=robot,name=sim-1 and drives
the robot. It prints the console's URL with an operator token in its fragment, and command
lines for "teleop drive" and "teleop listen". Ctrl-C stops the agent first (it stops the
robot), then the robot, then the relay.

The robot's pty is linked at ` + sim.DefaultLink + ` unless another robot holds that link; then
at a private path, which the agent is given as TELEOP_PORT. Like "teleop server" in dev
mode, it listens only on a loopback address unless --dev-allow-remote is given.`,
		Example: `  teleop demo
  teleop demo --listen 127.0.0.1:0 --config my-robot.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c.self = os.Args[0]
			return runDemo(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), &c)
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.listen, "listen", "127.0.0.1:7420", "address to listen on (host:port; port 0 picks a free one)")
	f.StringVar(&c.config, "config", "", "agent configuration file (default: the built-in configs/demo.yaml)")
	f.StringVar(&c.link, "link", "", "symlink to the robot's pty (default "+sim.DefaultLink+", or a private one when that is taken)")
	f.BoolVar(&c.devAllowRemote, "dev-allow-remote", false, "listen on a non-loopback address anyway (anyone who can reach it gets throwaway-credential access)")
	f.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&c.logLevel, "log-level", "warn", "log level: debug, info, warn or error")
	return cmd
}

func runDemo(ctx context.Context, stdout, stderr io.Writer, c *demoConfig) error {
	logger, err := newLogger(stderr, c.logFormat, c.logLevel)
	if err != nil {
		return err
	}
	if !isLoopback(c.listen) && !c.devAllowRemote {
		return fmt.Errorf("the demo runs with throwaway credentials and listens only on loopback, not %q: pass --dev-allow-remote to listen there anyway", c.listen)
	}
	key, secret, err := devCredentials()
	if err != nil {
		return err
	}
	opts := &demo.Options{APIKey: key, APISecret: secret, Link: c.link, Logger: logger}
	if c.config != "" {
		if opts.Config, err = os.ReadFile(c.config); err != nil {
			return fmt.Errorf("read the agent configuration: %w", err)
		}
		opts.ConfigName = c.config
	}
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another relay running? --listen 127.0.0.1:0 picks a free port)", c.listen, err)
	}
	st, err := demo.Start(ln, opts)
	if err != nil {
		return err
	}
	defer st.Close() // on an early return; Close is idempotent
	if err := printDemoIntro(stdout, st, c); err != nil {
		return err
	}
	if c.started != nil {
		c.started(st)
	}

	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "stopping: the agent stops the robot, then the robot and the relay shut down")
	case <-st.Done():
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if ctx.Err() == nil {
		return errors.New("demo: a part stopped on its own (see the log above)")
	}
	fmt.Fprintln(stdout, "stopped")
	return nil
}

// printDemoIntro says where the console is and what to try, with tokens.
func printDemoIntro(w io.Writer, st *demo.Stack, c *demoConfig) error {
	console, err := st.Token(demo.OperatorData, token.Publisher)
	if err != nil {
		return err
	}
	terminal, err := st.Token("role=operator,name=terminal", token.Publisher)
	if err != nil {
		return err
	}
	watcher, err := st.Token("role=observer,name=listen", token.Subscriber)
	if err != nil {
		return err
	}
	config := "the built-in configs/demo.yaml"
	if c.config != "" {
		config = c.config
	}
	link := st.Link()
	if c.link == "" && link != sim.DefaultLink {
		link += " (" + sim.DefaultLink + " is another robot's)"
	}
	self := c.self
	if self == "" || strings.HasSuffix(self, ".test") {
		self = "teleop"
	}
	fmt.Fprintf(w, `teleop demo: relay, console, simulated robot and agent in one process (session %q)

  robot    %s, agent config %s
  port     %s

Open the console (the token is in the fragment, so it stays out of logs):

  %s

  hold W A S D or the arrows to drive (Shift: faster, 1-4: speed step), Space stops,
  Esc or the red button is the E-STOP (latches: drive is refused until "Clear e-stop").
  Watch the pose move in the telemetry panel and the ack latency under "acks".

Or drive from a terminal (w a s d while held, space stop, e e-stop, c clear, q quit):

  %s drive --server %s --token %s

Watch every signal as JSON lines:

  %s listen --server %s --token %s

More tokens: export TELEOP_API_KEY=%s TELEOP_API_SECRET=%s TELEOP_SERVER=%s
             %s token --session %s --data role=operator,name=alice

Ctrl-C stops the agent (which stops the robot), the robot and the relay.
listening on %s
`, st.Session(), demo.RobotData, config, link, st.ConsoleURL(console),
		self, st.URL(), terminal, self, st.URL(), watcher,
		st.APIKey(), st.APISecret(), st.URL(), self, st.Session(), st.URL())
	return nil
}
