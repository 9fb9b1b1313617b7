// Package devices is the host side of the serial link to a robot's
// microcontroller (firmware-protocol.md): finding the port, owning it, and
// speaking the protocol over it through resets, unplugs and silence.
//
// Three layers, each usable on its own:
//   - ListPorts and Resolve find serial ports from sysfs without opening any
//     (by path, by /dev/serial/by-id link or symlink, or by usb:VID:PID[:serial]).
//   - Port is one open port with the link's rules: an exclusive flock, a
//     128-byte line splitter over timed reads, and writes that fail instead
//     of hanging when the device stops reading (teleop serial uses it bare).
//   - Device is the protocol state machine over a Port: handshake, sequence
//     numbers, one-shot retries, newest-wins setpoints, flow control, the
//     e-stop fast path, silence detection and reconnection. The bridge uses it.
//
// The line codec lives in devices/proto; the simulated robot in devices/sim.
package devices
