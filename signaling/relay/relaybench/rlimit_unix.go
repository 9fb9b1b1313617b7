//go:build unix

package relaybench

import (
	"fmt"
	"syscall"
)

// RaiseFileLimit raises the soft limit of open files to at least n, up to
// the hard limit. Processes started afterwards inherit it.
func RaiseFileLimit(n uint64) error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("get file limit: %w", err)
	}
	if rl.Cur >= n {
		return nil
	}
	if rl.Max < n {
		return fmt.Errorf("%d open files needed, hard limit is %d (ulimit -Hn)", n, rl.Max)
	}
	rl.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("raise file limit to %d: %w", n, err)
	}
	return nil
}
