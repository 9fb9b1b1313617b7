package signaling_test

import (
	"time"

	"github.com/teleop/teleop/clock"
)

// newFakeClock returns a fake clock set to the wall time, so that tokens
// minted now are valid on it.
func newFakeClock() *clock.Fake {
	f := clock.NewFake()
	f.Set(time.Now())
	return f
}
