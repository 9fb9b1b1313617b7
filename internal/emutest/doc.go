// Package emutest runs teleop's release binaries for the Raspberry Pi
// (linux/arm64, linux/arm v7, linux/arm v6, as make cross builds them) under
// qemu-user on the build machine: version stamping, and the whole stack
// (relay, simulated robot on a pty, agent, an operator's signal) emulated.
// It has only tests; see docs/operations.md for what they stand for.
//
// The tests skip when qemu-user-static is not installed, and fail instead
// when TELEOP_REQUIRE_QEMU=1 (CI). Each binary is built once per content of
// its sources, cached in the temporary directory. qemu-user 7.2 does not
// translate the termios2 and break ioctls, so the tests check that teleop
// degrades clearly there instead of crashing.
package emutest
