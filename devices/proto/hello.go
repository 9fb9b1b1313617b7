package proto

import (
	"fmt"
	"strconv"
	"strings"
)

// Hello is the banner of §5.1.
type Hello struct {
	Major, Minor int      // proto=<major>.<minor>
	FW           string   // name/semver
	Board        string   // board identifier
	RX           int      // receive buffer, bytes; MaxCommandLine when absent
	Caps         []string // vel, hb, out:lights, tlm, estop, strict, pose, bat, …
}

// ParseHello reads a HELLO line's fields. proto is required; unknown keys are
// ignored (minor versions only add).
func ParseHello(dl *DeviceLine) (Hello, error) {
	if dl.Kind != KindHello {
		return Hello{}, ErrNotHello
	}
	h := Hello{RX: MaxCommandLine}
	var haveProto bool
	for _, f := range dl.Fields {
		switch string(f.Key) {
		case "proto":
			maj, min, ok := strings.Cut(string(f.Value), ".")
			a, err1 := strconv.Atoi(maj)
			b, err2 := strconv.Atoi(min)
			if !ok || err1 != nil || err2 != nil || a < 0 || b < 0 {
				return Hello{}, fmt.Errorf("%w: HELLO proto=%q", ErrSyntax, f.Value)
			}
			h.Major, h.Minor, haveProto = a, b, true
		case "fw":
			h.FW = string(f.Value)
		case "board":
			h.Board = string(f.Value)
		case "rx":
			n, ok := parseUint(f.Value, 6)
			if !ok || n < MaxCommandLine {
				return Hello{}, fmt.Errorf("%w: HELLO rx=%q (at least %d)", ErrSyntax, f.Value, MaxCommandLine)
			}
			h.RX = int(n)
		case "caps":
			if len(f.Value) > 0 {
				h.Caps = strings.Split(string(f.Value), ",")
			}
		}
	}
	if !haveProto {
		return Hello{}, fmt.Errorf("%w: HELLO without proto", ErrSyntax)
	}
	return h, nil
}

// Check returns an error wrapping ErrIncompatible unless the device speaks
// major version ProtoMajor; minor versions only add.
func (h Hello) Check() error {
	if h.Major != ProtoMajor {
		return fmt.Errorf("%w: device speaks proto %d.%d, host %d.%d", ErrIncompatible, h.Major, h.Minor, ProtoMajor, ProtoMinor)
	}
	return nil
}

// Has reports whether the device lists capability c. "out" matches
// "out:lights" too.
func (h Hello) Has(c string) bool {
	for _, x := range h.Caps {
		if x == c {
			return true
		}
		if name, _, ok := strings.Cut(x, ":"); ok && name == c {
			return true
		}
	}
	return false
}

// Outputs lists the output names of "out:<name>" capabilities.
func (h Hello) Outputs() []string {
	var out []string
	for _, x := range h.Caps {
		if name, o, ok := strings.Cut(x, ":"); ok && name == "out" && o != "" {
			out = append(out, o)
		}
	}
	return out
}

// AppendHello appends the banner "HELLO proto=… fw=… board=… rx=… caps=…*HH\n".
func AppendHello(dst []byte, h Hello) []byte {
	start := len(dst)
	dst = append(dst, "HELLO proto="...)
	dst = strconv.AppendInt(dst, int64(h.Major), 10)
	dst = append(dst, '.')
	dst = strconv.AppendInt(dst, int64(h.Minor), 10)
	dst = appendDeviceArgs(dst, []Arg{KV("fw", Word(h.FW)), KV("board", Word(h.Board)), KV("rx", Int(h.RX))})
	dst = append(dst, " caps="...)
	for i, c := range h.Caps {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, c...)
	}
	return AppendChecksum(dst, start)
}
