package driver

import (
	"encoding/binary"
	"errors"
	"net"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/clock"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
)

// waitUntil waits until cond holds (testwait.Until: no time bound of its own).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.Until(t, what, cond)
}

// readN reads n frames from l's queue 0 and returns their sequence numbers.
func readN(t *testing.T, l Link, n int) []uint32 {
	t.Helper()
	var seqs []uint32
	buf := make([]byte, 2048)
	for range n {
		k, err := l.ReadFrame(0, buf)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, binary.BigEndian.Uint32(buf[14:k]))
	}
	return seqs
}

// TestImpairBothDirections wraps one end of a clean pipe and checks that
// writes suffer the send impairment and reads the receive impairment, each
// counted in its own stats, on a virtual clock.
func TestImpairBothDirections(t *testing.T) {
	const n = 2000
	for _, tc := range []struct {
		name       string
		send, recv Impairment
		outbound   bool // frames written to the wrapper (else read from it)
		check      func(t *testing.T, st PipeStats, got int)
	}{
		{"send loss", Impairment{Seed: 3, LossPercent: 20}, Impairment{}, true, func(t *testing.T, st PipeStats, got int) {
			if st.Lost < n/10 || st.Lost > 3*n/10 || got != n-int(st.Lost) {
				t.Fatalf("stats %+v, %d arrived", st, got)
			}
		}},
		{"recv duplication", Impairment{}, Impairment{Seed: 4, DupPercent: 10}, false, func(t *testing.T, st PipeStats, got int) {
			if st.Duplicated < n/20 || st.Duplicated > 3*n/20 || got != n+int(st.Duplicated) {
				t.Fatalf("stats %+v, %d arrived", st, got)
			}
		}},
		{"recv loss leaves send alone", Impairment{}, Impairment{Seed: 5, LossPercent: 50}, true, func(t *testing.T, st PipeStats, got int) {
			if st.Lost != 0 || got != n {
				t.Fatalf("stats %+v, %d arrived", st, got)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := clock.NewVirtual(time.Unix(0, 0))
			big := Impairment{QueueLimit: 4 * n}
			a, b := NewPipe(PipeConfig{Impair: big}, PipeConfig{Impair: big})
			defer b.Close()
			tc.send.QueueLimit, tc.recv.QueueLimit = 4*n, 4*n
			il := NewImpaired(a, ImpairConfig{Send: tc.send, Recv: tc.recv, Clock: clk})
			defer il.Close()
			from, to, stats := Link(il), Link(b), il.SendStats
			if !tc.outbound {
				from, to, stats = b, il, il.RecvStats
			}
			for i := range n {
				if err := from.WriteFrame(0, testFrame(uint32(i), 100)); err != nil {
					t.Fatal(err)
				}
			}
			waitUntil(t, "frames through the impairment", func() bool { return stats().Sent == n })
			clk.Advance(time.Second)
			st := stats()
			got := readN(t, to, int(st.Delivered))
			tc.check(t, st, len(got))
		})
	}
}

// TestImpairDelayAndReplay: a seeded send impairment with every effect
// at once, on a virtual clock, delivers nothing before the delay and the
// same frames in the same order when replayed.
func TestImpairDelayAndReplay(t *testing.T) {
	run := func(seed int64) [][]byte {
		clk := clock.NewVirtual(time.Unix(0, 0))
		a, b := NewPipe(PipeConfig{Impair: Impairment{QueueLimit: 10000}}, PipeConfig{})
		defer b.Close()
		imp := Impairment{Seed: seed, LossPercent: 5, DupPercent: 5, ReorderPercent: 10, CorruptPercent: 5,
			Delay: 10 * time.Millisecond, Jitter: 5 * time.Millisecond, RateBitsPerSec: 100e6, QueueLimit: 10000}
		il := NewImpaired(a, ImpairConfig{Send: imp, Clock: clk})
		defer il.Close()
		for i := range 1000 {
			if err := il.WriteFrame(0, testFrame(uint32(i), 200)); err != nil {
				t.Fatal(err)
			}
		}
		if st := il.SendStats(); st.Delivered != 0 {
			t.Fatalf("delivered %d frames before the 5 ms minimum delay", st.Delivered)
		}
		clk.Advance(time.Second)
		var got [][]byte
		buf := make([]byte, 2048)
		for range il.SendStats().Delivered {
			k, err := b.ReadFrame(0, buf)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, slices.Clone(buf[:k]))
		}
		return got
	}
	first, again, other := run(1), run(1), run(2)
	if !slices.EqualFunc(first, again, slices.Equal) {
		t.Fatal("same seed, different frames or order")
	}
	if slices.EqualFunc(first, other, slices.Equal) {
		t.Fatal("different seeds gave identical runs")
	}
}

// TestImpairQueueLimit: frames read from the link but not yet read from the
// wrapper count against the receive QueueLimit; the rest are dropped and
// counted.
func TestImpairQueueLimit(t *testing.T) {
	a, b := NewPipe(PipeConfig{}, PipeConfig{})
	defer b.Close()
	il := NewImpaired(a, ImpairConfig{Recv: Impairment{QueueLimit: 5}})
	defer il.Close()
	for i := range 8 {
		if err := b.WriteFrame(0, testFrame(uint32(i), 60)); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "8 frames read from the link", func() bool { return il.RecvStats().Sent == 8 })
	if st := il.RecvStats(); st.Delivered != 5 || st.QueueDrops != 3 {
		t.Fatalf("stats %+v, want 5 delivered 3 dropped", st)
	}
	if got := readN(t, il, 5); !slices.Equal(got, []uint32{0, 1, 2, 3, 4}) {
		t.Fatalf("read %v", got)
	}
}

// gsoPipe is a pipe end that also accepts super-frames, recording them.
type gsoPipe struct {
	*PipeEnd
	mss chan int
}

func (g *gsoPipe) WriteGSO(q int, frame []byte, mss int) error {
	g.mss <- mss
	return g.PipeEnd.WriteFrame(q, frame[:min(len(frame), 1514)])
}

func TestImpairPassesGSOThrough(t *testing.T) {
	a, b := NewPipe(PipeConfig{}, PipeConfig{})
	defer b.Close()
	plain := NewImpaired(a, ImpairConfig{})
	if GSOMax(plain) != 0 || MaxFrameSize(plain) != 1514 {
		t.Fatalf("plain pipe: GSOMax %d MaxFrameSize %d", GSOMax(plain), MaxFrameSize(plain))
	}
	if err := plain.WriteGSO(0, testFrame(1, 3000), 1448); !errors.Is(err, ErrNoGSO) {
		t.Fatalf("WriteGSO over a plain link: %v", err)
	}
	plain.Close()

	c, d := NewPipe(PipeConfig{}, PipeConfig{})
	defer d.Close()
	g := &gsoPipe{PipeEnd: c, mss: make(chan int, 1)}
	il := NewImpaired(g, ImpairConfig{})
	defer il.Close()
	if GSOMax(il) != MaxGSOFrameSize {
		t.Fatalf("GSOMax %d", GSOMax(il))
	}
	if err := il.WriteGSO(0, testFrame(9, 20000), 1448); err != nil {
		t.Fatal(err)
	}
	if mss := <-g.mss; mss != 1448 {
		t.Fatalf("mss %d", mss)
	}
	if got := readN(t, d, 1); got[0] != 9 {
		t.Fatalf("read seq %d", got[0])
	}
}

// TestImpairCloseStopsEverything: Close unblocks readers, frees frames
// held by a long delay in both directions, closes the wrapped link and
// stops the reader goroutines.
func TestImpairCloseStopsEverything(t *testing.T) {
	baseline := runtime.NumGoroutine()
	a, b := NewPipe(PipeConfig{Queues: 3}, PipeConfig{Queues: 3})
	defer b.Close()
	slow := Impairment{Delay: time.Hour}
	il := NewImpaired(a, ImpairConfig{Send: slow, Recv: slow})
	errc := make(chan error, 1)
	go func() {
		_, err := il.ReadFrame(1, make([]byte, 100))
		errc <- err
	}()
	for q := range 3 {
		if err := il.WriteFrame(q, testFrame(1, 60)); err != nil {
			t.Fatal(err)
		}
		if err := b.WriteFrame(q, testFrame(2, 60)); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "frames held", func() bool { return il.rx.held.Load() == 3 && il.tx.held.Load() == 3 })
	if err := il.Close(); err != nil {
		t.Fatal(err)
	}
	if err := testwait.Recv(t, errc, "Close to unblock the reader"); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("reader got %v", err)
	}
	if il.rx.held.Load() != 0 || il.tx.held.Load() != 0 {
		t.Fatalf("held after Close: rx %d tx %d", il.rx.held.Load(), il.tx.held.Load())
	}
	if !a.closed.Load() {
		t.Fatal("wrapped link not closed")
	}
	if err := il.WriteFrame(0, testFrame(3, 60)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after Close: %v", err)
	}
	if err := il.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	waitUntil(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= baseline })
}

func BenchmarkImpairedWriteRead(b *testing.B) {
	x, y := NewPipe(PipeConfig{}, PipeConfig{})
	defer y.Close()
	il := NewImpaired(x, ImpairConfig{})
	defer il.Close()
	f := testFrame(1, 1514)
	buf := make([]byte, 2048)
	b.ReportAllocs()
	b.SetBytes(int64(len(f)))
	for b.Loop() {
		if err := il.WriteFrame(0, f); err != nil {
			b.Fatal(err)
		}
		if _, err := y.ReadFrame(0, buf); err != nil {
			b.Fatal(err)
		}
	}
}
