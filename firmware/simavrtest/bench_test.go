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

// BenchmarkEstop measures '!' -> EVT ESTOP (the outputs go off earlier, in
// the receive interrupt); CLEAR between rounds is not timed.
func BenchmarkEstop(b *testing.B) {
	bd := open(b)
	bd.hello()
	bd.cmd("1 SET tlm_hz=0")
	bd.reply(1)
	seq := 1
	for b.Loop() {
		bd.send("!")
		bd.expect("EVT ESTOP", replyTimeout)
		b.StopTimer()
		seq++
		bd.cmd(fmt.Sprintf("%d CLEAR", seq))
		bd.expect(fmt.Sprintf("OK %d", seq), replyTimeout)
		b.StartTimer()
	}
}
