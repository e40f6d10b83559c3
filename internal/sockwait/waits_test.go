package sockwait

import (
	"testing"
	"time"

	"github.com/tapstack/tapstack/clock"
)

// TestWaitsDirections: a deadline set for one direction passes for that
// direction only and wakes only its sleepers; Both sets both; a zero time
// clears; a later deadline fires on the clock.
func TestWaitsDirections(t *testing.T) {
	clk := clock.NewVirtual(time.Unix(1000, 0))
	var w Waits
	rd, wr := w.Rd.Get(), w.Wr.Get()
	<-rd // a new channel's first sleep is a recheck
	<-wr

	w.Set(clk, clk.Now().Add(-time.Second), Read)
	if !w.ReadPassed() || w.WritePassed() {
		t.Fatalf("after a past read deadline: read passed %v, write passed %v", w.ReadPassed(), w.WritePassed())
	}
	select {
	case <-rd:
	default:
		t.Fatal("a past read deadline did not wake the readers")
	}
	select {
	case <-wr:
		t.Fatal("a read deadline woke the writers")
	default:
	}

	w.Set(clk, time.Time{}, Read)
	w.Set(clk, clk.Now().Add(time.Second), Both)
	if w.ReadPassed() || w.WritePassed() {
		t.Fatal("a future deadline has passed before its time")
	}
	clk.Advance(time.Second)
	if !w.ReadPassed() || !w.WritePassed() {
		t.Fatalf("one second later: read passed %v, write passed %v", w.ReadPassed(), w.WritePassed())
	}
	select {
	case <-wr:
	default:
		t.Fatal("the write deadline's timer did not wake the writers")
	}
	w.Stop()
}
