//go:build !linux

package compare

import "os/exec"

func setProcAttr(*exec.Cmd) {}

func raiseFileLimit(uint64) error { return nil }

// supported is false: server memory is read from /proc/PID/status.
const supported = false
