package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/teleop/teleop/signaling"
)

// defaultServer is where `teleop server` listens by default.
const defaultServer = "http://127.0.0.1:7420"

// sessionFlags are the flags of every command that joins a session as a
// client (listen, signal; later drive and agent): --server and --token, each
// falling back to TELEOP_SERVER and TELEOP_TOKEN when not given.
type sessionFlags struct {
	server, token string
	verbose       bool
}

// addSessionFlags registers --server, --token and -v on cmd.
func addSessionFlags(cmd *cobra.Command) *sessionFlags {
	sf := &sessionFlags{}
	f := cmd.Flags()
	f.StringVar(&sf.server, "server", defaultServer, "relay base URL (default $TELEOP_SERVER, else "+defaultServer+")")
	f.StringVar(&sf.token, "token", "", "session token, e.g. from `teleop token` (default $TELEOP_TOKEN)")
	f.BoolVarP(&sf.verbose, "verbose", "v", false, "log connection details on stderr")
	return sf
}

// resolve returns the relay URL and token: a flag given on the command line
// wins, then the environment, then the default server. A token is required.
func (sf *sessionFlags) resolve(cmd *cobra.Command) (server, token string, err error) {
	server, token = sf.server, sf.token
	if v := os.Getenv("TELEOP_SERVER"); v != "" && !cmd.Flags().Changed("server") {
		server = v
	}
	if !cmd.Flags().Changed("token") {
		token = os.Getenv("TELEOP_TOKEN")
	}
	if token == "" {
		return "", "", fmt.Errorf("no token: pass --token or set TELEOP_TOKEN (mint one with `teleop token`)")
	}
	return server, token, nil
}

// options returns client options that log on the command's stderr: warnings
// only, everything with -v.
func (sf *sessionFlags) options(cmd *cobra.Command) *signaling.Options {
	return &signaling.Options{Logger: sf.logger(cmd.ErrOrStderr())}
}

func (sf *sessionFlags) logger(w io.Writer) *slog.Logger {
	level := slog.LevelWarn
	if sf.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// connect resolves the flags and connects s, which the caller made with
// signaling.NewSession and gave its handlers.
func (sf *sessionFlags) connect(cmd *cobra.Command, s *signaling.Session) error {
	server, token, err := sf.resolve(cmd)
	if err != nil {
		return err
	}
	if err := s.Connect(cmd.Context(), server, token); err != nil {
		return fmt.Errorf("connect to %s: %w", server, err)
	}
	return nil
}
