// Package sim is a simulated robot that speaks firmware-protocol.md v1 on the
// master side of a pty, so the host opens the slave path with go.bug.st/serial
// exactly as it opens a real board.
//
// A Robot has three goroutines: the reader plays the UART receive interrupt
// (reserved bytes act at once, lines are assembled into an rx-byte buffer),
// the model runs commands, the watchdog and telemetry on an injectable clock
// with a differential-drive model, and the writer sends every device line
// from one queue. Faults (delay, byte loss, corruption, stalls, resets,
// unplug and replug under a new pty path) are knobs for tests and `teleop sim`.
package sim
