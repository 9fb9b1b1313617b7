package operator_test

import (
	"slices"
	"testing"

	"github.com/teleop/teleop/operator"
)

func TestDecoder(t *testing.T) {
	type K = operator.Key
	for name, tc := range map[string]struct {
		reads []string
		want  []K
	}{
		"letters":               {reads: []string{"wasd"}, want: []K{'w', 'a', 's', 'd'}},
		"space and digits":      {reads: []string{" 1+-"}, want: []K{' ', '1', '+', '-'}},
		"arrows":                {reads: []string{"\x1b[A\x1b[B\x1b[C\x1b[D"}, want: []K{operator.KeyUp, operator.KeyDown, operator.KeyRight, operator.KeyLeft}},
		"application arrows":    {reads: []string{"\x1bOA\x1bOD"}, want: []K{operator.KeyUp, operator.KeyLeft}},
		"shift arrows":          {reads: []string{"\x1b[1;2A\x1b[1;2D"}, want: []K{operator.KeyShiftUp, operator.KeyShiftLeft}},
		"ctrl arrow is other":   {reads: []string{"\x1b[1;5A"}, want: []K{operator.KeyOther}},
		"function key is other": {reads: []string{"\x1b[15~w"}, want: []K{operator.KeyOther, 'w'}},
		"sequence split":        {reads: []string{"w\x1b[", "1;2", "Cd"}, want: []K{'w', operator.KeyShiftRight, 'd'}},
		"lone esc":              {reads: []string{"\x1b"}, want: []K{operator.KeyEsc}},
		"esc at the end":        {reads: []string{"w\x1b"}, want: []K{'w', operator.KeyEsc}},
		"esc then a key":        {reads: []string{"\x1bw"}, want: []K{operator.KeyEsc, 'w'}},
		"two escs":              {reads: []string{"\x1b\x1b"}, want: []K{operator.KeyEsc, operator.KeyEsc}},
		"ctrl-c and ctrl-d":     {reads: []string{"\x03\x04"}, want: []K{operator.KeyCtrlC, operator.KeyCtrlD}},
		"enter":                 {reads: []string{"\r"}, want: []K{operator.KeyEnter}},
		"control bytes":         {reads: []string{"\x1a\x7f"}, want: []K{operator.KeyOther, operator.KeyOther}},
		"utf-8 split":           {reads: []string{"\xc3", "\xa9"}, want: []K{'é'}},
		"bad utf-8":             {reads: []string{"\xff"}, want: []K{operator.KeyOther}},
		"broken csi":            {reads: []string{"\x1b[1\x03"}, want: []K{operator.KeyOther, operator.KeyCtrlC}},
	} {
		t.Run(name, func(t *testing.T) {
			var d operator.Decoder
			var got []K
			for _, r := range tc.reads {
				got = d.Feed(got, []byte(r))
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("keys %v, want %v", got, tc.want)
			}
		})
	}
}

func TestKeyString(t *testing.T) {
	for k, want := range map[operator.Key]string{'w': "w", ' ': "space", operator.KeyShiftUp: "shift+up", operator.KeyCtrlC: "ctrl+c", -99: "Key(-99)"} {
		if got := k.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(k), got, want)
		}
	}
}

func FuzzDecoder(f *testing.F) {
	for _, s := range []string{"w", "\x1b[A", "\x1b[1;2B", "\x1bOC", "\x1b", "\x1b[15~", "é", "\x03", "\x1b[" + string(make([]byte, 40))} {
		f.Add([]byte(s), 1)
	}
	f.Fuzz(func(t *testing.T, b []byte, split int) {
		var d operator.Decoder
		var keys []operator.Key
		if split < 0 || split > len(b) {
			split = len(b)
		}
		keys = d.Feed(keys, b[:split])
		keys = d.Feed(keys, b[split:])
		// Every byte yields at most one key.
		if len(keys) > len(b) {
			t.Fatalf("%q gave %d keys", b, len(keys))
		}
		for _, k := range keys {
			if k == operator.KeyNone {
				t.Fatalf("%q gave KeyNone", b)
			}
		}
	})
}
