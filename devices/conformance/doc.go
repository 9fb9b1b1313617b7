// Package conformance is the black-box test suite of firmware-protocol.md v1
// over a serial port. Run takes a function that starts a device (the
// simulated robot, the reference firmware under simavr, a real board) and
// returns its port; every case opens the port with go.bug.st/serial as the
// host does and checks only what the spec says a device must do. Conn is
// the host end the cases use, exported for other device tests.
package conformance
