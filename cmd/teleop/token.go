package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/teleop/teleop/signaling/token"
)

// newTokenCmd builds `teleop token`: mint a session token the way a backend with
// the OpenTok server SDK would, for the relay configured with the same key and secret.
func newTokenCmd() *cobra.Command {
	var (
		sessionID, role, data string
		apiKey, apiSecret     string
		ttl                   time.Duration
		legacy, newSession    bool
		project               bool
	)
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Mint a session token (OpenTok-compatible JWT, or T1 with --legacy)",
		Long: `Mint a session token for the relay and print it on stdout.

The api key and secret come from --api-key/--api-secret or, when a flag is not
given, from TELEOP_API_KEY/TELEOP_API_SECRET. Tokens are HS256 JWTs with the
claims of the official OpenTok server SDKs; --legacy mints the older "T1==" form.
With --new-session an OpenTok-format session ID is minted first and printed on
stderr as "session: <id>".

With --project it prints instead the short-lived project JWT (iss = api key,
ist = "project") that backends send to the REST API as X-OPENTOK-AUTH.`,
		Example: `  teleop token --session robot-1 --role moderator --data 'name=alice'
  TELEOP_API_KEY=123456 TELEOP_API_SECRET=… teleop token --new-session --ttl 1h
  curl -H "X-OPENTOK-AUTH: $(teleop token --project)" …`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			key, err := credential(cmd, "api-key", apiKey, "TELEOP_API_KEY")
			if err != nil {
				return err
			}
			secret, err := credential(cmd, "api-secret", apiSecret, "TELEOP_API_SECRET")
			if err != nil {
				return err
			}
			if project {
				if sessionID != "" || newSession || legacy || cmd.Flags().Changed("role") || cmd.Flags().Changed("data") {
					return errors.New("--project mints a REST API token: it takes no --session, --new-session, --legacy, --role or --data")
				}
				if !cmd.Flags().Changed("ttl") {
					ttl = token.DefaultProjectTTL
				}
				tok, err := token.NewProjectJWT(key, secret, time.Now(), ttl)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), tok)
				return err
			}
			r, err := token.ParseRole(role)
			if err != nil {
				return fmt.Errorf("--role: %w", err)
			}
			switch {
			case newSession && sessionID != "":
				return errors.New("--session and --new-session exclude each other")
			case newSession:
				if sessionID, err = token.NewSessionID(key, "", time.Time{}, nil); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "session: %s\n", sessionID)
			case sessionID == "":
				return errors.New("no session: pass --session ID, or --new-session to mint one")
			}
			tok, err := token.New(key, secret, sessionID, &token.Options{
				Role:           r,
				ConnectionData: data,
				TTL:            ttl,
				Legacy:         legacy,
			})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), tok)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&sessionID, "session", "", "session ID the token is for (any name, or an OpenTok-format ID)")
	f.BoolVar(&newSession, "new-session", false, "mint an OpenTok-format session ID first and print it on stderr")
	f.StringVar(&role, "role", string(token.Publisher), "publisher, subscriber, moderator or publisheronly")
	f.StringVar(&data, "data", "", "connection data, visible to every client (at most 1024 bytes)")
	f.DurationVar(&ttl, "ttl", token.DefaultTTL, "lifetime of the token, at most 720h (30 days)")
	f.BoolVar(&legacy, "legacy", false, `mint the legacy "T1==" format instead of a JWT`)
	f.BoolVar(&project, "project", false, "mint a REST API auth token (X-OPENTOK-AUTH) instead; --ttl defaults to 3m, at most 5m")
	f.StringVar(&apiKey, "api-key", "", "api key (default $TELEOP_API_KEY)")
	f.StringVar(&apiSecret, "api-secret", "", "api secret (default $TELEOP_API_SECRET)")
	return cmd
}

// credential returns the flag's value when the flag was given, else the environment
// variable's; it is an error when neither has a value.
func credential(cmd *cobra.Command, flag, value, env string) (string, error) {
	if !cmd.Flags().Changed(flag) {
		value = os.Getenv(env)
	}
	if value == "" {
		return "", fmt.Errorf("no %s: pass --%s or set %s", strings.ReplaceAll(flag, "-", " "), flag, env)
	}
	return value, nil
}
