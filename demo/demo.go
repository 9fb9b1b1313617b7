package demo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/teleop/teleop/bridge"
	"github.com/teleop/teleop/configs"
	"github.com/teleop/teleop/devices/sim"
	"github.com/teleop/teleop/signaling/relay"
	"github.com/teleop/teleop/signaling/token"
	"github.com/teleop/teleop/web"
)

const (
	// DefaultSession is the session the agent joins and tokens name.
	DefaultSession = "demo"
	// RobotData is the connection data of the agent's token: the console
	// and `teleop drive` find the robot by its role.
	RobotData = "role=robot,name=sim-1"
	// OperatorData is the connection data of the console's token.
	OperatorData = "role=operator,name=you"
	// DefaultTitle names the console.
	DefaultTitle = "teleop · demo"
	// ConfigName is how the embedded agent configuration is named in errors.
	ConfigName = "configs/demo.yaml"
)

// Options configure a Stack. APIKey and APISecret are required.
type Options struct {
	APIKey, APISecret string // the relay's project; the tokens are minted with them

	Session string // default DefaultSession

	// Config is the agent's configuration (YAML), named ConfigName in
	// errors; nil is the embedded configs/demo.yaml. It is parsed with
	// TELEOP_SERVER, TELEOP_TOKEN and TELEOP_PORT set to this stack's relay,
	// the agent's token and the robot's link; other ${VAR}s come from Env.
	Config     []byte
	ConfigName string
	Env        func(string) (string, bool) // nil is os.LookupEnv

	// Link is the symlink kept pointing at the robot's pty. "" is
	// sim.DefaultLink, unless another robot holds it: then a link in a
	// private temporary directory, removed by Close.
	Link string

	Title  string       // the console's title; default DefaultTitle
	Logger *slog.Logger // nil discards
}

// Stack is a running demo: relay, console, simulated robot and agent.
type Stack struct {
	// Static after Start.
	url         string
	session     string
	key, secret string
	link        string
	privateDir  string // holds a private link; removed by Close
	log         *slog.Logger

	relay *relay.Server
	srv   *http.Server
	robot *sim.Robot
	agent *bridge.Agent

	stopAgent context.CancelFunc
	agentDone chan struct{} // closed when Run has returned
	agentErr  error         // set before agentDone closes
	serveErr  chan error    // cap 1: Serve's result
	done      chan struct{} // closed when a part stopped on its own, or by Close
	doneOnce  sync.Once
	closeOnce sync.Once
	closeErr  error
}

// Start serves the relay and the console on ln, starts the simulated robot
// and the agent, and returns. The agent joins the session and opens the
// robot's port on its own time; the console shows it when it has.
func Start(ln net.Listener, opts *Options) (*Stack, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.APIKey == "" || o.APISecret == "" {
		return nil, errors.New("demo: api key and secret are required")
	}
	if o.Session == "" {
		o.Session = DefaultSession
	}
	if o.Config == nil {
		o.Config, o.ConfigName = configs.Demo, ConfigName
	}
	if o.ConfigName == "" {
		o.ConfigName = "config"
	}
	if o.Env == nil {
		o.Env = os.LookupEnv
	}
	if o.Title == "" {
		o.Title = DefaultTitle
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Stack{
		url:       baseURL(ln.Addr()),
		session:   o.Session,
		key:       o.APIKey,
		secret:    o.APISecret,
		log:       o.Logger.With("component", "demo"),
		agentDone: make(chan struct{}),
		serveErr:  make(chan error, 1),
		done:      make(chan struct{}),
	}
	ok := false
	defer func() {
		if !ok {
			s.closeParts()
		}
	}()

	// The relay first: the agent dials it.
	rl, err := relay.New(&relay.Options{
		APIKey: o.APIKey, APISecret: o.APISecret,
		Fallback: web.Handler(&web.Options{Title: o.Title}),
		Logger:   o.Logger,
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	s.relay = rl
	s.srv = &http.Server{
		Handler:           rl,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second, // REST bodies; cleared on a WebSocket upgrade
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn),
	}
	go func() {
		err := s.srv.Serve(ln)
		s.serveErr <- err
		if !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("relay stopped serving", "err", err)
			s.stopped()
		}
	}()

	// The robot, on its link.
	if s.link, s.privateDir, err = chooseLink(o.Link); err != nil {
		return nil, err
	}
	if s.robot, err = sim.New(&sim.Options{Link: s.link, Logger: o.Logger}); err != nil {
		return nil, fmt.Errorf("start the simulated robot: %w", err)
	}

	// The agent, with its own token and the robot's port.
	robotToken, err := token.New(o.APIKey, o.APISecret, o.Session, &token.Options{ConnectionData: RobotData, TTL: token.MaxTTL})
	if err != nil {
		return nil, fmt.Errorf("mint the agent's token: %w", err)
	}
	vars := map[string]string{"TELEOP_SERVER": s.url, "TELEOP_TOKEN": robotToken, "TELEOP_PORT": s.link}
	cfg, err := bridge.Parse(o.ConfigName, o.Config, func(name string) (string, bool) {
		if v, ok := vars[name]; ok {
			return v, true
		}
		return o.Env(name)
	})
	if err != nil {
		return nil, fmt.Errorf("agent configuration: %w", err)
	}
	if s.agent, err = bridge.NewAgent(cfg, &bridge.AgentOptions{Logger: o.Logger}); err != nil {
		return nil, fmt.Errorf("start the agent: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stopAgent = cancel
	go func() {
		err := s.agent.Run(ctx)
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		s.agentErr = err
		close(s.agentDone)
		if ctx.Err() == nil {
			s.log.Error("the agent stopped", "err", err)
			s.stopped()
		}
	}()
	ok = true
	return s, nil
}

// baseURL is the URL clients on this machine reach addr at: an unspecified
// address (listening on every interface) is reached on loopback.
func baseURL(addr net.Addr) string {
	if ta, ok := addr.(*net.TCPAddr); ok && ta.IP.IsUnspecified() {
		ip := net.IPv4(127, 0, 0, 1)
		if ta.IP.To4() == nil {
			ip = net.IPv6loopback
		}
		addr = &net.TCPAddr{IP: ip, Port: ta.Port}
	}
	return "http://" + addr.String()
}

// chooseLink returns the robot's link: want, or sim.DefaultLink when it is
// free, else a link in a new private directory (returned, to be removed).
func chooseLink(want string) (link, dir string, err error) {
	if want != "" {
		return want, "", nil
	}
	if linkFree(sim.DefaultLink) {
		return sim.DefaultLink, "", nil
	}
	dir, err = os.MkdirTemp("", "teleop-demo-")
	if err != nil {
		return "", "", fmt.Errorf("make a directory for the robot's link: %w", err)
	}
	return filepath.Join(dir, "sim"), dir, nil
}

// linkFree reports whether a robot may take link: nothing is there, or a
// symlink to a pty that is gone (a robot that did not clean up). A link to
// a live pty belongs to another robot (`teleop sim`, another demo).
func linkFree(link string) bool {
	fi, err := os.Lstat(link)
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		return false
	}
	_, err = os.Stat(link)
	return errors.Is(err, fs.ErrNotExist)
}

// URL is the relay's base URL, where the console is served.
func (s *Stack) URL() string { return s.url }

// Session is the session the agent joined.
func (s *Stack) Session() string { return s.session }

// APIKey and APISecret are the relay's project credentials.
func (s *Stack) APIKey() string    { return s.key }
func (s *Stack) APISecret() string { return s.secret }

// Link is the symlink to the robot's pty, the agent's port.
func (s *Stack) Link() string { return s.link }

// Robot is the simulated robot.
func (s *Stack) Robot() *sim.Robot { return s.robot }

// Agent is the agent.
func (s *Stack) Agent() *bridge.Agent { return s.agent }

// Token mints a token for the demo session.
func (s *Stack) Token(data string, role token.Role) (string, error) {
	return token.New(s.key, s.secret, s.session, &token.Options{Role: role, ConnectionData: data})
}

// ConsoleURL is the console's address with tok in the fragment, which the
// browser does not send to the server.
func (s *Stack) ConsoleURL(tok string) string { return s.url + "/#token=" + tok }

// Done is closed when the agent or the relay stopped on their own, or by
// Close; Close says why.
func (s *Stack) Done() <-chan struct{} { return s.done }

func (s *Stack) stopped() { s.doneOnce.Do(func() { close(s.done) }) }

// Close stops the agent (it stops the robot's motion, answers what is in
// flight and leaves the session), then the robot, then the relay, and
// returns the first failure of any of them.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.closeParts()
		s.stopped()
	})
	return s.closeErr
}

// closeParts stops whatever Start got to, in order.
func (s *Stack) closeParts() error {
	var errs []error
	if s.stopAgent != nil {
		s.stopAgent()
		<-s.agentDone
		if s.agentErr != nil {
			errs = append(errs, fmt.Errorf("agent: %w", s.agentErr))
		}
	}
	if s.robot != nil {
		if err := s.robot.Close(); err != nil {
			errs = append(errs, fmt.Errorf("simulated robot: %w", err))
		}
	}
	if s.privateDir != "" {
		os.RemoveAll(s.privateDir)
	}
	if s.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.srv.Shutdown(ctx) // stops accepting; waits for REST requests in flight
		cancel()
		s.relay.Close() // closes the WebSockets (hijacked, so Shutdown does not)
		if serr := <-s.serveErr; !errors.Is(serr, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("relay: %w", serr))
		} else if err != nil {
			errs = append(errs, fmt.Errorf("relay: shut down: %w", err))
		}
	} else if s.relay != nil {
		s.relay.Close()
	}
	return errors.Join(errs...)
}
