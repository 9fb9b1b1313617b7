package conformance_test

import (
	"testing"

	"github.com/teleop/teleop/devices/conformance"
	"github.com/teleop/teleop/firmware/simavrtest"
)

// TestFirmware runs the suite against the reference firmware (firmware/)
// under simavr. simavrtest skips it where the AVR toolchain or libsimavr is
// missing (TELEOP_REQUIRE_SIMAVR=1 makes that a failure). The emulator is
// paced to, not locked to, the wall clock: time bounds get 3× slack.
//
// The simulated robot runs the same suite in devices/sim.
func TestFirmware(t *testing.T) {
	conformance.Run(t, func(t *testing.T) conformance.Target {
		return conformance.Target{Path: simavrtest.Start(t), Slack: 3}
	})
}
