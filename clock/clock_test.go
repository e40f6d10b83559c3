package clock

import (
	"testing"
	"time"
)

func TestVirtualFiresInDeadlineOrder(t *testing.T) {
	start := time.Unix(1000, 0)
	v := NewVirtual(start)
	var got []string
	var at []time.Duration
	record := func(name string) func() {
		return func() { got = append(got, name); at = append(at, v.Now().Sub(start)) }
	}
	v.AfterFunc(3*time.Second, record("c"))
	v.AfterFunc(1*time.Second, record("a"))
	b := v.AfterFunc(2*time.Second, record("b"))
	stopped := v.AfterFunc(2*time.Second, record("never"))
	if !stopped.Stop() {
		t.Fatal("Stop of a pending timer reported false")
	}
	v.Advance(1500 * time.Millisecond)
	if len(got) != 1 || got[0] != "a" || at[0] != time.Second {
		t.Fatalf("after 1.5s: got %v at %v", got, at)
	}
	if !b.Reset(10 * time.Second) { // now due at 11.5 s
		t.Fatal("Reset of a pending timer reported false")
	}
	v.Advance(10 * time.Second)
	if want := []string{"a", "c", "b"}; len(got) != 3 || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("got %v, want %v", got, want)
	}
	if at[1] != 3*time.Second || at[2] != 11500*time.Millisecond {
		t.Fatalf("fired at %v", at)
	}
	if v.Pending() != 0 {
		t.Fatalf("pending = %d", v.Pending())
	}
}

func TestVirtualCallbackMayRearm(t *testing.T) {
	v := NewVirtual(time.Unix(0, 0))
	n := 0
	var tm Timer
	tm = v.AfterFunc(time.Second, func() {
		n++
		if n < 5 {
			tm.Reset(time.Second)
		}
	})
	v.Advance(time.Minute)
	if n != 5 {
		t.Fatalf("fired %d times, want 5", n)
	}
	if d, ok := v.Next(); ok {
		t.Fatalf("timer still pending in %v", d)
	}
}
