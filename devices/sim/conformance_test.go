package sim_test

import (
	"testing"

	"github.com/teleop/teleop/devices/conformance"
	"github.com/teleop/teleop/devices/sim"
)

// TestConformance runs the black-box suite against the simulated robot on
// the wall clock, over its pty, as a host would see it.
func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T) conformance.Target {
		r, err := sim.New(&sim.Options{Logger: nil})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return conformance.Target{Path: r.Path(), Executions: func() uint64 { return r.State().Executed }}
	})
}
