package driver

import (
	"encoding/binary"
	"errors"
	"math"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/clock"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
)

// testFrame is an Ethernet frame (experimental ethertype 0x88b5) carrying
// a sequence number and a fixed pattern, so tests can spot loss, duplicates,
// reordering and corruption.
func testFrame(seq uint32, size int) []byte {
	f := make([]byte, size)
	copy(f[0:6], []byte{0x02, 0, 0, 0, 0, 0xbb})
	copy(f[6:12], []byte{0x02, 0, 0, 0, 0, 0xaa})
	binary.BigEndian.PutUint16(f[12:], 0x88b5)
	binary.BigEndian.PutUint32(f[14:], seq)
	for i := 18; i < size; i++ {
		f[i] = byte(i)
	}
	return f
}

// drain reads every frame queued on q without blocking past what Stats says
// was delivered.
func drain(t *testing.T, e *PipeEnd, from *PipeEnd, q int) [][]byte {
	t.Helper()
	var got [][]byte
	buf := make([]byte, 2048)
	for len(got) < int(from.Stats().Delivered) {
		n, err := e.ReadFrame(q, buf)
		if err != nil {
			t.Fatalf("ReadFrame: %v", err)
		}
		got = append(got, slices.Clone(buf[:n]))
	}
	return got
}

func TestPipeDeliversBothWays(t *testing.T) {
	a, b := NewPipe(PipeConfig{}, PipeConfig{MTU: 9000, Queues: 2})
	defer a.Close()
	defer b.Close()
	if a.MTU() != 1500 || b.MTU() != 9000 || a.Queues() != 1 || b.Queues() != 2 {
		t.Fatalf("defaults: mtu %d/%d queues %d/%d", a.MTU(), b.MTU(), a.Queues(), b.Queues())
	}
	if a.MAC()[0]&0x03 != 0x02 || slices.Equal(a.MAC(), b.MAC()) {
		t.Fatalf("MACs %v %v: want distinct locally administered unicast", a.MAC(), b.MAC())
	}
	for _, tc := range []struct {
		name     string
		from, to *PipeEnd
		wq, rq   int
	}{
		{"a to b", a, b, 0, 0},
		{"b queue 1 to a queue 0", b, a, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := testFrame(7, 100)
			if err := tc.from.WriteFrame(tc.wq, f); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 2048)
			n, err := tc.to.ReadFrame(tc.rq, buf)
			if err != nil || !slices.Equal(buf[:n], f) {
				t.Fatalf("read %d bytes, err %v", n, err)
			}
		})
	}
	if err := a.WriteFrame(0, make([]byte, 1515)); err == nil {
		t.Fatal("oversized frame accepted")
	}
}

func TestPipeQueueMapping(t *testing.T) {
	a, b := NewPipe(PipeConfig{Queues: 4}, PipeConfig{Queues: 2})
	defer a.Close()
	defer b.Close()
	for q := range 4 {
		if err := a.WriteFrame(q, testFrame(uint32(q), 60)); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 100)
	for _, want := range []struct{ q, seq int }{{0, 0}, {1, 1}, {0, 2}, {1, 3}} {
		n, err := b.ReadFrame(want.q, buf)
		if err != nil || binary.BigEndian.Uint32(buf[14:n]) != uint32(want.seq) {
			t.Fatalf("queue %d: got seq %d err %v, want %d", want.q, binary.BigEndian.Uint32(buf[14:]), err, want.seq)
		}
	}
}

// TestPipeCorruptionSparesARP: corruption is for checksums to catch, and
// ARP has none (a flipped sender address would poison the peer's
// neighbour cache): at CorruptPercent 100 every other frame has a bit
// flipped past its Ethernet header, and ARP frames arrive whole.
func TestPipeCorruptionSparesARP(t *testing.T) {
	a, b := NewPipe(PipeConfig{Impair: Impairment{Seed: 1, CorruptPercent: 100}}, PipeConfig{})
	defer a.Close()
	defer b.Close()
	arp := testFrame(1, 60)
	binary.BigEndian.PutUint16(arp[12:], 0x0806)
	other := testFrame(2, 60)
	buf := make([]byte, 100)
	for i := range 100 {
		for _, f := range [][]byte{arp, other} {
			if err := a.WriteFrame(0, f); err != nil {
				t.Fatal(err)
			}
			n, err := b.ReadFrame(0, buf)
			if err != nil {
				t.Fatal(err)
			}
			isARP := binary.BigEndian.Uint16(f[12:]) == 0x0806
			if whole := slices.Equal(buf[:n], f); whole != isARP {
				t.Fatalf("frame %d (ARP %v) arrived whole: %v", i, isARP, whole)
			}
			if !slices.Equal(buf[:14], f[:14]) {
				t.Fatalf("frame %d: Ethernet header corrupted", i)
			}
		}
	}
	if st := a.Stats(); st.Corrupted != 100 {
		t.Fatalf("Corrupted %d, want the 100 non-ARP frames", st.Corrupted)
	}
}

// TestPipeImpairmentStatistics sends 20000 frames through each impairment
// alone and checks the observed rate against the configured percentage.
// The seed is fixed, so the test is deterministic; the bounds are about
// ±4σ for a binomial draw, so any reasonable seed would pass too.
func TestPipeImpairmentStatistics(t *testing.T) {
	const n = 20000
	for _, tc := range []struct {
		name    string
		imp     Impairment
		measure func(st PipeStats, got [][]byte) float64 // percent observed
		want    float64
	}{
		{"loss", Impairment{LossPercent: 10}, func(st PipeStats, got [][]byte) float64 {
			return 100 * float64(n-len(got)) / n
		}, 10},
		{"duplication", Impairment{DupPercent: 5}, func(st PipeStats, got [][]byte) float64 {
			return 100 * float64(len(got)-n) / n
		}, 5},
		{"corruption", Impairment{CorruptPercent: 2}, func(st PipeStats, got [][]byte) float64 {
			bad := 0
			for i, f := range got {
				if !slices.Equal(f, testFrame(uint32(i), 100)) {
					bad++
				}
			}
			return 100 * float64(bad) / n
		}, 2},
		// A held frame arrives late unless the next frame is held too
		// (then it is released first): p(1-p) = 16 % of frames are late.
		{"reordering", Impairment{ReorderPercent: 20}, func(st PipeStats, got [][]byte) float64 {
			late, highest := 0, -1
			for _, f := range got {
				seq := int(binary.BigEndian.Uint32(f[14:]))
				if seq < highest {
					late++
				}
				highest = max(highest, seq)
			}
			if len(got) != n {
				t.Errorf("reordering lost frames: %d of %d", len(got), n)
			}
			return 100 * float64(late) / n
		}, 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := clock.NewVirtual(time.Unix(0, 0))
			tc.imp.Seed = 42
			tc.imp.QueueLimit = 2 * n
			a, b := NewPipe(PipeConfig{Impair: tc.imp, Clock: clk}, PipeConfig{Clock: clk})
			defer a.Close()
			defer b.Close()
			for i := range n {
				if err := a.WriteFrame(0, testFrame(uint32(i), 100)); err != nil {
					t.Fatal(err)
				}
			}
			clk.Advance(time.Second) // release a frame still held for reordering
			got := drain(t, b, a, 0)
			st := a.Stats()
			pct := tc.measure(st, got)
			p := tc.want / 100
			tol := 4 * 100 * math.Sqrt(p*(1-p)/n) // 4σ of a binomial, in percent
			if pct < tc.want-tol || pct > tc.want+tol {
				t.Fatalf("observed %.2f%%, want %.2f%% ± %.2f (stats %+v)", pct, tc.want, tol, st)
			}
			if st.Sent != n || st.QueueDrops != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// runImpaired sends 2000 frames through every impairment at once on a
// virtual clock and returns what arrived, in order.
func runImpaired(t *testing.T, seed int64) [][]byte {
	clk := clock.NewVirtual(time.Unix(0, 0))
	imp := Impairment{Seed: seed, LossPercent: 5, DupPercent: 5, ReorderPercent: 10, CorruptPercent: 5,
		Delay: 10 * time.Millisecond, Jitter: 5 * time.Millisecond, RateBitsPerSec: 100e6, QueueLimit: 10000}
	a, b := NewPipe(PipeConfig{Impair: imp, Clock: clk}, PipeConfig{Clock: clk})
	defer a.Close()
	defer b.Close()
	for i := range 2000 {
		if err := a.WriteFrame(0, testFrame(uint32(i), 200)); err != nil {
			t.Fatal(err)
		}
		clk.Advance(10 * time.Microsecond)
	}
	clk.Advance(time.Second)
	return drain(t, b, a, 0)
}

func TestPipeReplayDeterminism(t *testing.T) {
	first, again, other := runImpaired(t, 1), runImpaired(t, 1), runImpaired(t, 2)
	if !slices.EqualFunc(first, again, slices.Equal) {
		t.Fatal("same seed, different frames or order")
	}
	if slices.EqualFunc(first, other, slices.Equal) {
		t.Fatal("different seeds gave identical runs")
	}
	if len(first) < 1800 || len(first) > 2200 {
		t.Fatalf("%d frames arrived", len(first))
	}
}

func TestPipeDelayAndRateOnVirtualClock(t *testing.T) {
	for _, tc := range []struct {
		name   string
		imp    Impairment
		frames int
		// delivered count after each step of the clock
		steps []time.Duration
		want  []uint64
	}{
		{"delay", Impairment{Delay: 10 * time.Millisecond}, 3,
			[]time.Duration{0, 9 * time.Millisecond, time.Millisecond}, []uint64{0, 0, 3}},
		// 1250 bytes at 1 Mbit/s take 10 ms each on the wire.
		{"rate", Impairment{RateBitsPerSec: 1e6}, 3,
			[]time.Duration{0, 10 * time.Millisecond, 10 * time.Millisecond, 9 * time.Millisecond, time.Millisecond},
			[]uint64{0, 1, 2, 2, 3}},
		{"rate plus delay", Impairment{RateBitsPerSec: 1e6, Delay: 5 * time.Millisecond}, 2,
			[]time.Duration{10 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond},
			[]uint64{0, 1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := clock.NewVirtual(time.Unix(0, 0))
			a, b := NewPipe(PipeConfig{Impair: tc.imp, Clock: clk}, PipeConfig{Clock: clk})
			defer a.Close()
			defer b.Close()
			for i := range tc.frames {
				if err := a.WriteFrame(0, testFrame(uint32(i), 1250)); err != nil {
					t.Fatal(err)
				}
			}
			for i, step := range tc.steps {
				clk.Advance(step)
				if got := a.Stats().Delivered; got != tc.want[i] {
					t.Fatalf("step %d (+%v): delivered %d, want %d", i, step, got, tc.want[i])
				}
			}
			got := drain(t, b, a, 0)
			for i, f := range got {
				if seq := binary.BigEndian.Uint32(f[14:]); seq != uint32(i) {
					t.Fatalf("frame %d has seq %d", i, seq)
				}
			}
		})
	}
}

func TestPipeQueueLimit(t *testing.T) {
	a, b := NewPipe(PipeConfig{Impair: Impairment{QueueLimit: 5}}, PipeConfig{})
	defer a.Close()
	defer b.Close()
	for i := range 8 {
		if err := a.WriteFrame(0, testFrame(uint32(i), 60)); err != nil {
			t.Fatal(err)
		}
	}
	if st := a.Stats(); st.Delivered != 5 || st.QueueDrops != 3 {
		t.Fatalf("stats %+v, want 5 delivered 3 dropped", st)
	}
	buf := make([]byte, 100)
	if _, err := b.ReadFrame(0, buf); err != nil {
		t.Fatal(err)
	}
	if err := a.WriteFrame(0, testFrame(8, 60)); err != nil {
		t.Fatal(err)
	}
	if st := a.Stats(); st.Delivered != 6 || st.QueueDrops != 3 {
		t.Fatalf("after a read: stats %+v, want 6 delivered", st)
	}
}

func TestPipeClose(t *testing.T) {
	clk := clock.NewVirtual(time.Unix(0, 0))
	a, b := NewPipe(PipeConfig{Impair: Impairment{Delay: time.Second}, Clock: clk}, PipeConfig{Clock: clk})
	errc := make(chan error)
	go func() {
		_, err := b.ReadFrame(0, make([]byte, 100))
		errc <- err
	}()
	if err := a.WriteFrame(0, testFrame(1, 60)); err != nil { // in flight when b closes
		t.Fatal(err)
	}
	testwait.Parked(t, "driver.(*PipeEnd).ReadFrame")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := testwait.Recv(t, errc, "Close to unblock the reader"); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("blocked reader got %v, want net.ErrClosed", err)
	}
	clk.Advance(2 * time.Second)
	if st := a.Stats(); st.Delivered != 0 || a.out.held.Load() != 0 {
		t.Fatalf("frame delivered to a closed end: %+v held %d", st, a.out.held.Load())
	}
	if err := b.WriteFrame(0, testFrame(2, 60)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write on closed end: %v", err)
	}
	if err := a.WriteFrame(0, testFrame(3, 60)); err != nil {
		t.Fatalf("write towards a closed peer: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	a.Close()
}

func BenchmarkPipeWriteRead(b *testing.B) {
	x, y := NewPipe(PipeConfig{}, PipeConfig{})
	defer x.Close()
	defer y.Close()
	f := testFrame(1, 1514)
	buf := make([]byte, 2048)
	b.ReportAllocs()
	b.SetBytes(int64(len(f)))
	for b.Loop() {
		if err := x.WriteFrame(0, f); err != nil {
			b.Fatal(err)
		}
		if _, err := y.ReadFrame(0, buf); err != nil {
			b.Fatal(err)
		}
	}
}

func TestPipeDelayOnRealClock(t *testing.T) {
	a, b := NewPipe(PipeConfig{Impair: Impairment{Delay: 20 * time.Millisecond}}, PipeConfig{})
	defer a.Close()
	defer b.Close()
	start := time.Now()
	for i := range 3 {
		if err := a.WriteFrame(0, testFrame(uint32(i), 60)); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 100)
	for i := range 3 {
		n, err := b.ReadFrame(0, buf)
		if err != nil || binary.BigEndian.Uint32(buf[14:n]) != uint32(i) {
			t.Fatalf("frame %d: err %v", i, err)
		}
	}
	if elapsed := time.Since(start); elapsed < 20*time.Millisecond {
		t.Fatalf("arrived after %v, want ≥ 20ms", elapsed)
	}
}
