//go:build !linux

package compare

import "os/exec"

func setProcAttr(*exec.Cmd) {}

// supported is false: server memory is read from /proc/PID/status.
const supported = false
