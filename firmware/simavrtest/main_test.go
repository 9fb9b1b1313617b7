package simavrtest_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every reader goroutine and harness process ends in its test's cleanup.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
