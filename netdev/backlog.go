package netdev

import (
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapstack/tapstack/internal/pkt"
)

// shard is the analogue of one CPU's softnet_data: a bounded input queue
// (the backlog), the flag saying its poll is scheduled, a worker that plays
// the NET_RX softirq, and the softnet_stat counters.
type shard struct {
	id  int
	dev *Device

	mu        sync.Mutex
	ring      []*pkt.Buffer // FIFO of whole Ethernet frames
	head, n   int
	scheduled bool // NAPI_STATE_SCHED of the backlog: the worker owes a poll
	closed    bool
	wake      chan struct{} // one slot: the raised softirq

	batch []*pkt.Buffer // the process_queue of one round, touched by the worker only

	processed   atomic.Uint64
	dropped     atomic.Uint64
	timeSqueeze atomic.Uint64
	rxFrames    atomic.Uint64
	rxBytes     atomic.Uint64
	txFrames    atomic.Uint64
	txBytes     atomic.Uint64
	txErrors    atomic.Uint64

	_ [64]byte // keep shards off each other's cache lines
}

func newShard(d *Device, id int, maxBacklog int64) *shard {
	return &shard{
		id:    id,
		dev:   d,
		ring:  make([]*pkt.Buffer, max(maxBacklog, 0)+1),
		wake:  make(chan struct{}, 1),
		batch: make([]*pkt.Buffer, 0, max(d.sysctls.DevWeight.Load(), 1)),
	}
}

// enqueueToBacklog queues a frame, dropping it when the backlog already
// holds more than netdev_max_backlog frames (enqueue_to_backlog). raise
// reports that this call scheduled the poll (NAPI_STATE_SCHED was clear):
// the caller now owns it and must run it (softirq) or hand it to the
// worker (ksoftirqd); until the poll empties the backlog nobody else does.
func (s *shard) enqueueToBacklog(b *pkt.Buffer) (queued, raise bool) {
	limit := max(s.dev.sysctls.MaxBacklog.Load(), 0)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		b.Release()
		return false, false
	}
	if int64(s.n) > limit {
		s.mu.Unlock()
		s.dropped.Add(1)
		s.dev.evBacklogDrop.Log(slog.Int("shard", s.id), slog.Int64("netdev_max_backlog", limit))
		b.Release()
		return false, false
	}
	if s.n == len(s.ring) {
		s.grow(limit + 1)
	}
	s.ring[(s.head+s.n)%len(s.ring)] = b
	s.n++
	raise = !s.scheduled
	s.scheduled = true
	s.mu.Unlock()
	return true, raise
}

// wakeWorker hands the poll the caller owns to the shard's worker
// (wakeup_softirqd). At most one hand-off is outstanding per ownership, so
// the one-slot channel never holds a stale token.
func (s *shard) wakeWorker() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// softirq runs the poll the caller owns on the caller's goroutine, as a
// CPU runs NET_RX at local_bh_enable after netif_rx (do_softirq); a poll
// that ends with work left goes to the worker, as __do_softirq wakes
// ksoftirqd, so the caller returns to reading its queue.
func (s *shard) softirq() {
	if _, squeezed := s.netRxAction(); squeezed {
		s.wakeWorker()
	}
}

// grow enlarges the ring after netdev_max_backlog was raised, never beyond
// the new bound (the caller has checked n ≤ limit < bound).
func (s *shard) grow(bound int64) {
	size := min(max(2*int64(len(s.ring)), 64), bound)
	ring := make([]*pkt.Buffer, size)
	for i := range s.n {
		ring[i] = s.ring[(s.head+i)%len(s.ring)]
	}
	s.ring, s.head = ring, 0
}

// processBacklog handles at most quota frames (process_backlog). Unlike
// Linux, which splices the whole input queue into process_queue, it takes
// only those quota frames off the ring, so the backlog bound counts every
// frame not yet being handled. more
// reports frames left behind; when none are, the poll is complete and the
// next enqueue raises the worker again (napi_complete).
func (s *shard) processBacklog(quota int) (work int, more bool) {
	s.mu.Lock()
	k := min(s.n, quota)
	for range k {
		s.batch = append(s.batch, s.ring[s.head])
		s.ring[s.head] = nil
		s.head = (s.head + 1) % len(s.ring)
	}
	s.n -= k
	s.mu.Unlock()
	for i, b := range s.batch {
		s.dev.deliver(b)
		b.Release()
		s.batch[i] = nil
	}
	s.batch = s.batch[:0]
	s.processed.Add(uint64(k))
	// napi_complete only after the round is delivered: the poll may run on
	// any goroutine that raises it, and two must never deliver one
	// shard's frames at once (that would reorder a flow).
	s.mu.Lock()
	more = s.n > 0
	if !more {
		s.scheduled = false
	}
	s.mu.Unlock()
	return k, more
}

// netRxAction runs one softirq poll: rounds of up to dev_weight frames
// until the backlog is empty or netdev_budget frames or netdev_budget_usecs
// have been spent (net_rx_action). Stopping with work left is a time squeeze.
func (s *shard) netRxAction() (work int, squeezed bool) {
	sc := s.dev.sysctls
	budget := max(sc.Budget.Load(), 1)
	weight := int(max(sc.DevWeight.Load(), 1))
	clk := s.dev.clk
	timeLimit := clk.Now().Add(time.Duration(max(sc.BudgetUsecs.Load(), 0)) * time.Microsecond)
	for {
		n, more := s.processBacklog(weight)
		work += n
		budget -= int64(n)
		if !more {
			return work, false
		}
		if budget <= 0 || !clk.Now().Before(timeLimit) {
			s.timeSqueeze.Add(1)
			return work, true
		}
	}
}

// worker is the shard's NET_RX softirq: it sleeps until raised, polls, and
// after a time squeeze yields the processor before polling again, as
// ksoftirqd lets other tasks run.
func (s *shard) worker() {
	defer s.dev.wg.Done()
	for {
		select {
		case <-s.wake:
		case <-s.dev.quit:
			return
		}
		for {
			if _, squeezed := s.netRxAction(); !squeezed {
				break
			}
			runtime.Gosched()
			select {
			case <-s.dev.quit:
				return
			default:
			}
		}
	}
}

// purge frees the queued frames once the workers are gone (flush_backlog).
func (s *shard) purge() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for ; s.n > 0; s.n-- {
		s.ring[s.head].Release()
		s.ring[s.head] = nil
		s.head = (s.head + 1) % len(s.ring)
	}
}

func (s *shard) backlogLen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}
