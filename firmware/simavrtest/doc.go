// Package simavrtest runs the reference firmware (firmware/src) under the
// simavr emulator for tests: Start builds the firmware and the harness
// (make -C firmware fw harness), starts build/simavr-uart on the ELF, and
// returns the path of the pty that is the emulated Uno's USB serial port.
// Tests open that path with go.bug.st/serial like a real board (115200 8N1,
// InitialStatusBits nil: ptys have no modem lines). The emulator's clock is
// paced to the wall clock, so firmware timeouts run at real speed.
//
// Where avr-gcc, make, a C compiler or libsimavr-dev is missing, Start skips
// the test with a message naming what to install (`make deps` does it);
// set TELEOP_REQUIRE_SIMAVR=1 to make that a failure instead (CI).
package simavrtest
