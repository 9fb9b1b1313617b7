//go:build linux

package compare

import (
	"os/exec"
	"syscall"
)

// setProcAttr has the kernel kill a server if the bench dies without
// stopping it.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

const supported = true
