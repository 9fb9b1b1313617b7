package sim

import (
	"math"

	"github.com/teleop/teleop/devices/proto"
)

// The verbs of §4.1. Each returns the final reply line and may emit EVT or
// HELLO lines before it. Called on the model goroutine with r.mu held.

func okLine(seq uint16, kv ...proto.Arg) []byte {
	return proto.AppendOK(make([]byte, 0, 48), seq, kv...)
}

func errLine(seq uint16, code proto.ErrorCode, text string) []byte {
	return proto.AppendErr(make([]byte, 0, 48), seq, true, code, text)
}

func (r *Robot) vel(c *proto.Command) []byte {
	d := &r.dev
	var lin, ang float64
	ok := len(c.Args) == 2
	if ok {
		var ok1, ok2 bool
		lin, ok1 = proto.ParseNumber(c.Args[0])
		ang, ok2 = proto.ParseNumber(c.Args[1])
		ok = ok1 && ok2 && math.Abs(lin) <= 10*d.cfg.MaxLinear && math.Abs(ang) <= 10*d.cfg.MaxAngular
	}
	switch {
	case !ok:
		return errLine(c.Seq, proto.CodeRange, "range")
	case d.state() == Estop:
		return errLine(c.Seq, proto.CodeEstop, "estop")
	case d.lseq != 0 && !proto.SeqNewer(c.Seq, d.lseq):
		return errLine(c.Seq, proto.CodeStale, "stale")
	}
	now := r.clk.Now()
	d.refresh(now, c.Seq)
	d.setBody(now, lin, ang)
	return okLine(c.Seq)
}

func (r *Robot) hb(c *proto.Command) []byte {
	d := &r.dev
	switch {
	case len(c.Args) != 0:
		return errLine(c.Seq, proto.CodeRange, "range")
	case d.state() == Estop:
		return errLine(c.Seq, proto.CodeEstop, "estop")
	case d.lseq != 0 && !proto.SeqNewer(c.Seq, d.lseq):
		return errLine(c.Seq, proto.CodeStale, "stale")
	}
	now := r.clk.Now()
	wasFS := d.fs
	d.refresh(now, c.Seq)
	if wasFS {
		d.stop(now) // FS → RDY with a zero setpoint
	}
	return okLine(c.Seq)
}

func (r *Robot) oneShot(c *proto.Command) []byte {
	d := &r.dev
	now := r.clk.Now()
	switch string(c.Verb) {
	case "PING":
		return okLine(c.Seq)
	case "VER":
		r.emit(proto.AppendHello(make([]byte, 0, proto.MaxDeviceLine), r.hello))
		d.cacheHello = true
		return okLine(c.Seq)
	case "STOP":
		d.stop(now)
		return okLine(c.Seq)
	case "ESTOP":
		if d.enterES(now) {
			r.emit(proto.AppendEvt(make([]byte, 0, 32), "ESTOP", proto.KV("src", proto.Word("cmd"))))
		}
		return okLine(c.Seq)
	case "CLEAR":
		changed := d.es || d.fs
		d.es = false
		if d.estopUnseen == 0 { // else a '!' behind this CLEAR still holds the outputs
			d.latched = false
		}
		if changed {
			d.stop(now)
			d.fs = false // RDY with a zero setpoint: the watchdog waits for motion
			r.emit(proto.AppendEvt(make([]byte, 0, 16), "CLEARED"))
		}
		return okLine(c.Seq)
	case "OUT":
		return r.outCmd(c)
	case "SET":
		return r.set(c)
	case "GET":
		return r.get(c)
	case "RESET":
		return okLine(c.Seq) // the caller reboots once the OK is queued
	}
	return errLine(c.Seq, proto.CodeUnknown, "unknown")
}

func (r *Robot) outCmd(c *proto.Command) []byte {
	d := &r.dev
	if len(c.Args) == 0 {
		return errLine(c.Seq, proto.CodeRange, "range")
	}
	for _, a := range c.Args {
		k, v, ok := proto.SplitKV(a)
		if !ok {
			return errLine(c.Seq, proto.CodeRange, string(a))
		}
		if _, known := d.outputs[string(k)]; !known || !(string(v) == "0" || string(v) == "1") {
			return errLine(c.Seq, proto.CodeRange, string(k))
		}
	}
	if d.state() == Estop {
		return errLine(c.Seq, proto.CodeEstop, "estop")
	}
	for _, a := range c.Args {
		k, v, _ := proto.SplitKV(a)
		d.outputs[string(k)] = int(v[0] - '0')
	}
	return okLine(c.Seq)
}

// set applies settings all or nothing.
func (r *Robot) set(c *proto.Command) []byte {
	d := &r.dev
	if len(c.Args) == 0 {
		return errLine(c.Seq, proto.CodeRange, "range")
	}
	n := d.cfg
	for _, a := range c.Args {
		k, v, ok := proto.SplitKV(a)
		if !ok {
			return errLine(c.Seq, proto.CodeRange, string(a))
		}
		u, isUint := parseUint(v)
		f, isNum := proto.ParseNumber(v)
		switch string(k) {
		case "wdog_ms":
			ok = isUint && u >= 50 && u <= 5000
			n.WdogMs = u
		case "tlm_hz":
			ok = isUint && u <= 50
			n.TLMHz = u
		case "strict":
			ok = isUint && u <= 1
			n.Strict = u == 1
		case "max_lin":
			ok = isNum && f > 0 && f <= r.opts.MaxWheel
			n.MaxLinear = f
		case "max_ang":
			ok = isNum && f > 0 && f <= 10
			n.MaxAngular = f
		default:
			ok = false
		}
		if !ok {
			return errLine(c.Seq, proto.CodeRange, string(k))
		}
	}
	d.cfg = n
	return okLine(c.Seq)
}

func parseUint(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 5 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func (r *Robot) get(c *proto.Command) []byte {
	d := &r.dev
	if len(c.Args) != 1 {
		return errLine(c.Seq, proto.CodeRange, "range")
	}
	now := r.clk.Now()
	d.integrate(now)
	k := string(c.Args[0])
	var v proto.Arg
	switch k {
	case "wdog_ms":
		v = proto.Int(d.cfg.WdogMs)
	case "tlm_hz":
		v = proto.Int(d.cfg.TLMHz)
	case "strict":
		v = proto.Int(b2i(d.cfg.Strict))
	case "max_lin":
		v = proto.Float(d.cfg.MaxLinear, 3)
	case "max_ang":
		v = proto.Float(d.cfg.MaxAngular, 3)
	case "st":
		v = proto.Word(d.state().String())
	case "vl":
		v = proto.Float(d.vl, 3)
	case "vr":
		v = proto.Float(d.vr, 3)
	case "lseq":
		v = proto.Int(int(d.lseq))
	case "ovf":
		v = proto.Int(d.ovf)
	case "bat":
		v = proto.Float(d.bat, 2)
	case "x":
		v = proto.Float(d.x, 3)
	case "y":
		v = proto.Float(d.y, 3)
	case "th":
		v = proto.Float(d.th, 3)
	case "t_ms":
		v = proto.Int(int(d.ms(now)))
	default:
		out, ok := d.outputs[k]
		if !ok {
			return errLine(c.Seq, proto.CodeRange, k)
		}
		v = proto.Int(out)
	}
	return okLine(c.Seq, proto.KV(k, v))
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
