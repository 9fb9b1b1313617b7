package proto_test

import (
	"fmt"

	"github.com/teleop/teleop/devices/proto"
)

func ExampleAppendCommand() {
	buf := make([]byte, 0, proto.MaxCommandLine)
	buf, err := proto.AppendCommand(buf, 12, "VEL", proto.Float(0.25, 3), proto.Float(-0.1, 3))
	if err != nil {
		panic(err)
	}
	fmt.Printf("%q\n", buf)
	buf, _ = proto.AppendCommand(buf[:0], 2, "SET", proto.KV("strict", proto.Int(1)), proto.KV("wdog_ms", proto.Int(300)))
	fmt.Printf("%q\n", buf)
	// Output:
	// "12 VEL 0.250 -0.100*57\n"
	// "2 SET strict=1 wdog_ms=300*03\n"
}

func ExampleParseDeviceLine() {
	var dl proto.DeviceLine
	for _, line := range []string{"OK 1*15\n", "ERR 11 5 estop*2D\n", "TLM 2712 st=RDY vl=0.370 vr=0.430 lseq=5*18\n"} {
		if err := proto.ParseDeviceLine([]byte(line), &dl, true); err != nil {
			panic(err)
		}
		switch dl.Kind {
		case proto.KindOK:
			fmt.Println("ok", dl.Seq)
		case proto.KindErr:
			fmt.Println("error", dl.Seq, dl.ErrorCode(), "retry:", dl.ErrorCode().Retry())
		case proto.KindTLM:
			st, _ := dl.Field("st")
			fmt.Printf("telemetry t=%d st=%s\n", dl.TimeMs, st)
		}
	}
	// Output:
	// ok 1
	// error 11 estop retry: later
	// telemetry t=2712 st=RDY
}
