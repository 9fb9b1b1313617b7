// Package demo is the whole teleop stack in one process: the relay with the
// operator console as its fallback, a simulated robot on a pty, and an agent
// that joins the relay with a token minted here and drives the robot. Start
// serves it on a listener the caller made; Close stops the agent first (so
// it stops the robot and answers what is in flight), then the robot, then
// the relay. `teleop demo` and the end-to-end tests of the console and of
// `teleop drive` run it.
package demo
