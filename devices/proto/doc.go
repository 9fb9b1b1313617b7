// Package proto is the line codec of firmware-protocol.md v1, both directions.
//
// The host encodes commands with AppendCommand (typed Args, checksum added,
// 64-byte limit enforced) and decodes device lines with ParseDeviceLine. A
// device (devices/sim, the conformance suite) does the reverse with
// ParseCommand and AppendOK/AppendErr/AppendTLM/AppendEvt/AppendHello.
// Encoders append to a caller's buffer and parsers fill a caller's struct
// whose slices alias the input line, so the hot path allocates nothing.
package proto
