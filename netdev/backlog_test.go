package netdev

import (
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/clock"
	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/wire"
)

// TestBacklogOverflowExactDrops floods shard 0 while its worker is not
// running: exactly max+1 frames fit, the rest are counted as dropped; then
// raising netdev_max_backlog live lets the backlog grow to the new bound,
// and once the workers start every queued frame is processed exactly once,
// in order.
func TestBacklogOverflowExactDrops(t *testing.T) {
	for _, tc := range []struct {
		name          string
		max, n        int64
		raisedMax, n2 int64 // then set max to raisedMax and send n2 more
	}{
		{"default 1000", 1000, 1500, 1000, 0},
		{"max 0 still fits one", 0, 5, 0, 0},
		{"under the limit", 100, 101, 100, 0},
		{"live increase", 100, 300, 250, 300},
		{"live decrease", 100, 150, 10, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			link, peer := newTestPipe(1)
			defer peer.Close()
			sc := NewSysctls()
			sc.MaxBacklog.Store(tc.max)
			d := New(link, Config{Shards: 2, Sysctls: sc})
			var mu sync.Mutex
			seen := map[uint32]int{}
			var order []uint32
			d.Handle(wire.EtherTypeARP, func(b *pkt.Buffer) {
				seq := binary.BigEndian.Uint32(b.Bytes())
				mu.Lock()
				seen[seq]++
				order = append(order, seq)
				mu.Unlock()
			})
			var accepted []uint32
			send := func(from, n int64) {
				for i := from; i < from+n; i++ {
					if d.Receive(buf(arpFrame(uint32(i)))) {
						accepted = append(accepted, uint32(i))
					}
				}
			}
			send(0, tc.n)
			wantQueued := min(tc.n, tc.max+1)
			if st := d.Softnet()[0]; st.BacklogLen != int(wantQueued) || st.Dropped != uint64(tc.n-wantQueued) {
				t.Fatalf("after %d frames: %+v, want backlog %d dropped %d", tc.n, st, wantQueued, tc.n-wantQueued)
			}
			sc.MaxBacklog.Store(tc.raisedMax)
			send(tc.n, tc.n2)
			// Linux checks qlen > max before inserting: max+1 frames fit.
			wantQueued2 := max(wantQueued, min(wantQueued+tc.n2, tc.raisedMax+1))
			wantDropped := uint64(tc.n + tc.n2 - wantQueued2)
			st := d.Softnet()
			if st[0].BacklogLen != int(wantQueued2) || st[0].Dropped != wantDropped || int64(len(accepted)) != wantQueued2 {
				t.Fatalf("after the sysctl change: %+v accepted %d, want backlog %d dropped %d",
					st[0], len(accepted), wantQueued2, wantDropped)
			}
			if c := int64(len(d.shards[0].ring)); c > max(tc.max, tc.raisedMax)+1 {
				t.Fatalf("ring grew to %d slots, bound %d", c, max(tc.max, tc.raisedMax)+1)
			}
			if st[1] != (SoftnetStat{}) {
				t.Fatalf("shard 1 touched: %+v", st[1])
			}

			d.Start()
			waitFor(t, "backlog to drain", func() bool { return d.Softnet()[0].Processed == uint64(wantQueued2) })
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(order) != len(accepted) {
				t.Fatalf("processed %d frames, accepted %d", len(order), len(accepted))
			}
			for i, seq := range accepted {
				if order[i] != seq || seen[seq] != 1 {
					t.Fatalf("frame %d: got seq %d (seen %d times), want %d", i, order[i], seen[seq], seq)
				}
			}
			c := counters(d)
			if c["SoftnetDropped"] != wantDropped || c["SoftnetProcessed"] != uint64(wantQueued2) ||
				c["NetdevRxFrames"] != uint64(tc.n+tc.n2) {
				t.Fatalf("counters %v", c)
			}
		})
	}
}

// TestNetRxActionBudget runs single polls (no worker goroutines) and checks
// how many frames dev_weight, netdev_budget and netdev_budget_usecs allow,
// and when the poll counts a time squeeze.
func TestNetRxActionBudget(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		weight, budget, usecs int64
		queued                int
		perFrame              time.Duration // virtual time each frame costs
		wantWork              int
		wantSqueeze           bool
	}{
		// The last round may overshoot the budget: rounds are whole
		// dev_weight quanta, as napi_poll is called with the full weight.
		{"defaults flood", 64, 300, 2000, 1000, 0, 320, true},
		{"defaults light", 64, 300, 2000, 100, 0, 100, false},
		{"exactly the budget rounds", 64, 300, 2000, 320, 0, 320, false},
		{"small weight", 10, 25, 2000, 100, 0, 30, true},
		{"weight above budget", 64, 10, 2000, 100, 0, 64, true},
		{"time limit after one round", 64, 300, 2000, 1000, time.Millisecond, 64, true},
		{"time limit after two rounds", 8, 300, 10000, 1000, time.Millisecond, 16, true},
		{"zero usecs is one round", 64, 300, 0, 1000, 0, 64, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			link, peer := newTestPipe(1)
			defer peer.Close()
			clk := clock.NewVirtual(time.Unix(0, 0))
			sc := NewSysctls()
			sc.DevWeight.Store(tc.weight)
			sc.Budget.Store(tc.budget)
			sc.BudgetUsecs.Store(tc.usecs)
			d := New(link, Config{Shards: 1, Sysctls: sc, Clock: clk})
			defer d.Close()
			handled := 0
			d.Handle(wire.EtherTypeARP, func(*pkt.Buffer) {
				handled++
				clk.Advance(tc.perFrame)
			})
			for i := range tc.queued {
				d.Receive(buf(arpFrame(uint32(i))))
			}
			work, squeezed := d.shards[0].netRxAction()
			if work != tc.wantWork || squeezed != tc.wantSqueeze || handled != work {
				t.Fatalf("poll: work %d squeezed %v handled %d, want %d %v", work, squeezed, handled, tc.wantWork, tc.wantSqueeze)
			}
			st := d.Softnet()[0]
			wantSqueeze := uint64(0)
			if tc.wantSqueeze {
				wantSqueeze = 1
			}
			if st.TimeSqueeze != wantSqueeze || st.BacklogLen != tc.queued-work || st.Processed != uint64(work) {
				t.Fatalf("softnet %+v", st)
			}
		})
	}
}

// TestWorkerKeepsPollingAfterSqueeze: a worker with a tiny budget squeezes
// many times but, yielding in between, still processes everything.
func TestWorkerKeepsPollingAfterSqueeze(t *testing.T) {
	link, peer := newTestPipe(1)
	defer peer.Close()
	sc := NewSysctls()
	sc.DevWeight.Store(4)
	sc.Budget.Store(8)
	d := New(link, Config{Shards: 1, Sysctls: sc})
	var n int
	d.Handle(wire.EtherTypeARP, func(*pkt.Buffer) { n++ })
	for i := range 1001 {
		d.Receive(buf(arpFrame(uint32(i))))
	}
	d.Start()
	waitFor(t, "all frames", func() bool { return d.Softnet()[0].Processed == 1001 })
	d.Close()
	if st := d.Softnet()[0]; st.TimeSqueeze < 1001/8-1 || n != 1001 {
		t.Fatalf("softnet %+v, handled %d", st, n)
	}
}

// TestBacklogOverflowWithBlockedHandler: the worker is running but stuck in
// the handler on frame 0, so the flood that follows meets an empty backlog
// and again exactly max+1 frames fit; unblocked, the worker processes each
// accepted frame once.
func TestBacklogOverflowWithBlockedHandler(t *testing.T) {
	const maxBacklog, flood = 50, 400
	link, peer := newTestPipe(1)
	defer peer.Close()
	sc := NewSysctls()
	sc.MaxBacklog.Store(maxBacklog)
	d := New(link, Config{Shards: 1, Sysctls: sc})
	entered, release := make(chan struct{}), make(chan struct{})
	seen := map[uint32]int{}
	d.Handle(wire.EtherTypeARP, func(b *pkt.Buffer) {
		seq := binary.BigEndian.Uint32(b.Bytes())
		if seq == 0 {
			close(entered)
			<-release
		}
		seen[seq]++
	})
	d.Start()
	d.Receive(buf(arpFrame(0)))
	<-entered
	accepted := 0
	for i := 1; i <= flood; i++ {
		if d.Receive(buf(arpFrame(uint32(i)))) {
			accepted++
		}
	}
	if st := d.Softnet()[0]; accepted != maxBacklog+1 || st.Dropped != flood-(maxBacklog+1) || st.BacklogLen != maxBacklog+1 {
		t.Fatalf("accepted %d, softnet %+v", accepted, st)
	}
	close(release)
	waitFor(t, "the backlog to drain", func() bool { return d.Softnet()[0].Processed == maxBacklog+2 })
	d.Close()
	for seq := range uint32(maxBacklog + 2) {
		if seen[seq] != 1 {
			t.Fatalf("frame %d processed %d times", seq, seen[seq])
		}
	}
	if len(seen) != maxBacklog+2 {
		t.Fatalf("%d distinct frames processed", len(seen))
	}
}
