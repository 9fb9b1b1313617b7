package simavrtest_test

import (
	"fmt"
	"testing"
)

// BenchmarkPing measures a PING -> OK round trip through the pty, the
// harness's byte pacing (one character time per byte, as on a 115200 line)
// and the firmware. go test -run '^$' -bench . ./firmware/simavrtest
func BenchmarkPing(b *testing.B) {
	bd := open(b)
	bd.hello()
	seq := 0
	for b.Loop() {
		seq = seq%65535 + 1
		bd.cmd(fmt.Sprintf("%d PING", seq))
		bd.reply(seq)
	}
}
