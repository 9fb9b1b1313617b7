package proto

import "testing"

func BenchmarkAppendVEL(b *testing.B) {
	b.ReportAllocs()
	buf := make([]byte, 0, MaxCommandLine)
	var seq uint16 = 1
	for b.Loop() {
		var err error
		buf, err = AppendCommand(buf[:0], seq, "VEL", Float(0.25, 3), Float(-0.1, 3))
		if err != nil {
			b.Fatal(err)
		}
		seq = NextSeq(seq)
	}
}

func BenchmarkParseOK(b *testing.B) {
	b.ReportAllocs()
	line := AppendOK(nil, 12345)
	var dl DeviceLine
	for b.Loop() {
		if err := ParseDeviceLine(line, &dl, true); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseTLM(b *testing.B) {
	b.ReportAllocs()
	line := AppendChecksum([]byte("TLM 123456 st=RDY vl=0.200 vr=0.300 lseq=41 bat=12.31 x=1.024 y=0.337 th=0.412"), 0)
	var dl DeviceLine
	for b.Loop() {
		if err := ParseDeviceLine(line, &dl, true); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseCommandVEL(b *testing.B) {
	b.ReportAllocs()
	line := []byte("12 VEL 0.250 -0.100*57\n")
	var c Command
	for b.Loop() {
		if err := ParseCommand(line, &c, true); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendTLM(b *testing.B) {
	b.ReportAllocs()
	buf := make([]byte, 0, MaxDeviceLine)
	for b.Loop() {
		buf = AppendTLM(buf[:0], 123456, KV("st", Word("RDY")), KV("vl", Float(0.2, 3)), KV("vr", Float(0.3, 3)),
			KV("lseq", Int(41)), KV("bat", Float(12.31, 2)), KV("x", Float(1.024, 3)), KV("y", Float(0.337, 3)), KV("th", Float(0.412, 3)))
	}
}
