package relay

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/teleop/teleop/signaling"
)

// TestDecodeFast: the frames clients send take the fast path and decode as
// DecodeFrame decodes them; everything unusual is left to DecodeFrame.
func TestDecodeFast(t *testing.T) {
	long := strings.Repeat("x", signaling.MaxDataBytes)
	for name, tc := range map[string]struct {
		in   string
		fast bool
	}{
		"signal":                {`{"op":"signal","id":"1","type":"drive","data":"go"}`, true},
		"signal to":             {`{"op":"signal","id":"2","to":"abc","type":"x","data":"y","queuedMs":12}`, true},
		"8 KB data":             {`{"op":"signal","id":"3","data":"` + long + `"}`, true},
		"escaped JSON data":     {`{"op":"signal","id":"4","data":"{\"linear\":0.4,\"a\":\"\\\\\"}"}`, true},
		"every short escape":    {`{"op":"signal","id":"5","data":"\"\\\/\b\f\n\r\t"}`, true},
		"unicode escapes":       {`{"op":"signal","id":"6","data":"\u00e9\u2028\u0041\u003c"}`, true},
		"raw UTF-8":             {`{"op":"signal","id":"7","data":"✓ é 𝄞 ` + "\u2028" + `"}`, true},
		"whitespace":            {" \t\r\n{ \"op\" : \"ping\" ,\n\"id\":\"p\" } \n", true},
		"ping":                  {`{"op":"ping"}`, true},
		"forceDisconnect":       {`{"op":"forceDisconnect","id":"f","connectionId":"c"}`, true},
		"negative queuedMs":     {`{"op":"signal","id":"8","queuedMs":-1}`, true},
		"zero queuedMs":         {`{"op":"signal","id":"8","queuedMs":0}`, true},
		"max int64":             {`{"op":"signal","id":"8","queuedMs":9223372036854775807}`, true},
		"quiet":                 {`{"op":"signal","id":"9","type":"ack","quiet":true}`, true},
		"not quiet":             {`{"op":"signal","id":"9","quiet":false,"data":"x"}`, true},
		"quiet as string":       {`{"op":"signal","id":"9","quiet":"true"}`, false},
		"quiet truncated":       {`{"op":"signal","id":"9","quiet":tru}`, false},
		"quiet null":            {`{"op":"signal","id":"9","quiet":null}`, false},
		"empty strings":         {`{"op":"signal","id":"","type":"","data":""}`, true},
		"no op":                 {`{"id":"1"}`, false},
		"empty op":              {`{"op":""}`, false},
		"empty object":          {`{}`, false},
		"other case":            {`{"OP":"signal","id":"1"}`, false},
		"escaped key":           {`{"o\u0070":"signal"}`, false},
		"unknown key":           {`{"op":"signal","id":"1","extra":1}`, false},
		"relay-only key":        {`{"op":"signal","id":"1","seq":3}`, false},
		"duplicate key":         {`{"op":"signal","op":"ping"}`, false},
		"null":                  {`{"op":"signal","data":null}`, false},
		"number as string":      {`{"op":"signal","id":5}`, false},
		"fraction":              {`{"op":"signal","queuedMs":1.5}`, false},
		"exponent":              {`{"op":"signal","queuedMs":1e3}`, false},
		"leading zero":          {`{"op":"signal","queuedMs":01}`, false},
		"overflow":              {`{"op":"signal","queuedMs":9223372036854775808}`, false},
		"string queuedMs":       {`{"op":"signal","queuedMs":"1"}`, false},
		"surrogate pair":        {`{"op":"signal","data":"\ud834\udd1e"}`, false},
		"lone surrogate":        {`{"op":"signal","data":"\ud800"}`, false},
		"bad hex":               {`{"op":"signal","data":"\u12g4"}`, false},
		"bad escape":            {`{"op":"signal","data":"\x"}`, false},
		"control character":     {"{\"op\":\"signal\",\"data\":\"a\nb\"}", false},
		"invalid UTF-8":         {"{\"op\":\"signal\",\"data\":\"\xff\"}", false},
		"invalid UTF-8 escaped": {"{\"op\":\"signal\",\"data\":\"\\n\xc3\"}", false},
		"trailing comma":        {`{"op":"signal",}`, false},
		"trailing data":         {`{"op":"signal"}x`, false},
		"two objects":           {`{"op":"signal"}{}`, false},
		"unterminated":          {`{"op":"signal"`, false},
		"unterminated string":   {`{"op":"sig`, false},
		"array":                 {`[]`, false},
		"empty":                 {``, false},
	} {
		t.Run(name, func(t *testing.T) {
			got, ok := decodeFast([]byte(tc.in))
			if ok != tc.fast {
				t.Fatalf("fast path took it: %v, want %v", ok, tc.fast)
			}
			want, err := signaling.DecodeFrame([]byte(tc.in))
			if ok && (err != nil || !reflect.DeepEqual(got, want)) {
				t.Fatalf("fast path: %+v\nDecodeFrame: %+v, %v", got, want, err)
			}
			viaRelay, rerr := decodeFrame([]byte(tc.in))
			if (rerr == nil) != (err == nil) || !reflect.DeepEqual(viaRelay, want) {
				t.Fatalf("decodeFrame: %+v, %v\nDecodeFrame: %+v, %v", viaRelay, rerr, want, err)
			}
		})
	}
}

// FuzzDecodeFast: whatever the fast path accepts, DecodeFrame accepts too,
// with an equal Frame.
func FuzzDecodeFast(f *testing.F) {
	for _, s := range frameSeeds {
		f.Add([]byte(s))
	}
	for _, s := range []string{
		`{"op":"signal","id":"1","data":"\u00e9\"\\\/\b\f\n\r\t","queuedMs":-0}`,
		`{"op":"signal","id":"1","data":"\ud834\udd1e","type":"\u2028"}`,
		"{\"op\":\"signal\",\"data\":\"✓\xc3\"}",
		`{ "op" : "signal" , "to" : "x" , "queuedMs" : 12 }`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := decodeFast(b)
		if !ok {
			return
		}
		want, err := signaling.DecodeFrame(b)
		if err != nil {
			t.Fatalf("fast path accepted %q, DecodeFrame refuses it: %v", b, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\nfast path:   %+v\nDecodeFrame: %+v", b, got, want)
		}
	})
}

// FuzzPlainPrefix: the eight-bytes-at-a-time scan stops where a byte-wise
// one does.
func FuzzPlainPrefix(f *testing.F) {
	for _, s := range []string{"", "abcdefgh", "abcdefghijklmnop\"", "abcdefg\\hij", "0123456789\x1f", "héllo wörld", "\x7f\x80", "        \x00"} {
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, s string, from uint8) {
		i := min(int(from), len(s))
		want := i
		for ; want < len(s); want++ {
			if c := s[want]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
				break
			}
		}
		if got := plainPrefix(s, i); got != want {
			t.Fatalf("plainPrefix(%q, %d) = %d, want %d", s, i, got, want)
		}
		if got := plainPrefix([]byte(s), i); got != want {
			t.Fatalf("plainPrefix([]byte(%q), %d) = %d, want %d", s, i, got, want)
		}
	})
}

func BenchmarkDecodeSignal(b *testing.B) {
	for _, n := range []int{100, signaling.MaxDataBytes} {
		frame := []byte(`{"op":"signal","id":"12345","to":"0123456789abcdef01234567","type":"b","data":"` + strings.Repeat("x", n) + `"}`)
		for name, decode := range map[string]func([]byte) (*signaling.Frame, error){
			"encoding-json": signaling.DecodeFrame,
			"relay":         decodeFrame,
		} {
			b.Run(sizeName(n)+"/"+name, func(b *testing.B) {
				b.SetBytes(int64(len(frame)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := decode(frame); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkAppendJSONString(b *testing.B) {
	for _, n := range []int{100, signaling.MaxDataBytes} {
		s := strings.Repeat("x", n)
		buf := make([]byte, 0, n+16)
		b.Run(sizeName(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				buf = appendJSONString(buf[:0], s)
			}
		})
	}
}

func sizeName(n int) string {
	if n%1024 == 0 {
		return strconv.Itoa(n/1024) + "KB"
	}
	return strconv.Itoa(n) + "B"
}
