// Package configs holds the example agent configurations, embedded, so a
// binary can run them from any directory: Demo is configs/demo.yaml, the
// configuration `teleop demo` gives its agent. docs/configuration.md is the
// reference for the format; bridge.Parse reads it.
package configs

import _ "embed"

// Demo is configs/demo.yaml: the simulated robot's agent, with the relay,
// token and port from TELEOP_SERVER, TELEOP_TOKEN and TELEOP_PORT.
//
//go:embed demo.yaml
var Demo []byte
