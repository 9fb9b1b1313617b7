// Package operator is the operator's end of a drive session, the part of
// `teleop drive` that is not the terminal.
//
// A Decoder turns the bytes a raw terminal sends into Keys. A Driver turns
// keys into signals under the deadman rule (a held key publishes drive at a
// steady rate, its release sends one stop, then nothing), and keeps the
// operator's view of the session: the robot to drive (ChooseRobot), acks
// and their latency, telemetry and status (ReadAck, ReadTelemetry,
// ReadStatus). Time comes from a clock.Clock, so tests move it by hand.
package operator
