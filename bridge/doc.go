// Package bridge is the agent's logic between a signaling session and the
// robot's devices: its configuration (Config: Load, Parse, ApplyDefaults,
// Validate, with every error located by file, line and path) and the
// mapping engine (Mapper.Map: a typed signal → a validated command line or a
// Rejection with a code and a reason). Map is pure and allocation-light; it
// is the enforcement point of safety invariant 5 (no bad input reaches the
// serial line). The agent around it owns the session, the devices, queues,
// deadman, lease and acks. docs/configuration.md is the reference.
package bridge
