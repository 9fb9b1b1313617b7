package clock

import (
	"testing"
	"time"
)

func TestFakeFiresInDeadlineOrder(t *testing.T) {
	f := NewFake()
	var got []string
	f.AfterFunc(30*time.Millisecond, func() { got = append(got, "c") })
	f.AfterFunc(10*time.Millisecond, func() { got = append(got, "a") })
	stopped := f.AfterFunc(20*time.Millisecond, func() { got = append(got, "x") })
	f.AfterFunc(20*time.Millisecond, func() { got = append(got, "b") })
	if !stopped.Stop() {
		t.Fatal("Stop of an armed timer returned false")
	}
	f.Advance(25 * time.Millisecond)
	if want := "ab"; join(got) != want {
		t.Fatalf("after 25ms fired %q, want %q", join(got), want)
	}
	f.Advance(5 * time.Millisecond)
	if want := "abc"; join(got) != want {
		t.Fatalf("after 30ms fired %q, want %q", join(got), want)
	}
	if f.Waiters() != 0 {
		t.Fatalf("%d waiters left", f.Waiters())
	}
}

func TestFakeCallbackSeesItsDeadline(t *testing.T) {
	f := NewFake()
	start := f.Now()
	var at time.Time
	f.AfterFunc(time.Second, func() { at = f.Now() })
	f.Advance(time.Hour)
	if d := at.Sub(start); d != time.Second {
		t.Fatalf("callback saw now = start+%v, want start+1s", d)
	}
	if d := f.Now().Sub(start); d != time.Hour {
		t.Fatalf("clock at start+%v, want start+1h", d)
	}
}

func TestFakeTickerAndReset(t *testing.T) {
	f := NewFake()
	tk := f.NewTicker(10 * time.Millisecond)
	f.Advance(10 * time.Millisecond)
	select {
	case <-tk.C():
	default:
		t.Fatal("ticker did not tick at its period")
	}
	tk.Reset(50 * time.Millisecond)
	f.Advance(40 * time.Millisecond)
	select {
	case <-tk.C():
		t.Fatal("ticker ticked before its new period")
	default:
	}
	f.Advance(10 * time.Millisecond)
	select {
	case <-tk.C():
	default:
		t.Fatal("ticker did not tick at its new period")
	}
	tk.Stop()
	if f.Waiters() != 0 {
		t.Fatal("stopped ticker still armed")
	}

	tm := f.NewTimer(time.Second)
	if !tm.Reset(2 * time.Second) {
		t.Fatal("Reset of an armed timer returned false")
	}
	f.Advance(time.Second)
	select {
	case <-tm.C():
		t.Fatal("timer fired at its old deadline")
	default:
	}
	f.Advance(time.Second)
	<-tm.C()
}

func TestBlockUntil(t *testing.T) {
	f := NewFake()
	ready := f.BlockUntil(1)
	go f.AfterFunc(time.Second, func() {})
	<-ready
}

func join(s []string) (out string) {
	for _, x := range s {
		out += x
	}
	return out
}
