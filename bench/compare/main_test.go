package compare

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that the clients' goroutines (ours, paho's, nats.go's)
// are gone after every test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
