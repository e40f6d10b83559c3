package driver

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapstack/tapstack/internal/clock"
	"github.com/tapstack/tapstack/internal/pkt"
)

// direction carries the frames of one pipe end to the other through an
// impairment, in the manner of netem_enqueue: loss, duplication, corruption,
// reordering, rate, then delay into a time-sorted queue (tfifo_enqueue).
type direction struct {
	imp   Impairment
	clk   clock.Clock
	dst   *PipeEnd
	limit int64
	held  atomic.Int64 // accepted copies not yet read or freed

	mu        sync.Mutex
	rng       *rand.Rand
	busyUntil time.Time // rate limit: when the "wire" is free again
	tfifo     fifo[inflight]
	timer     clock.Timer // fires for the tfifo head
	timerAt   time.Time
	hasHeld   bool // a frame held back for reordering
	heldFrame inflight
	flush     clock.Timer // frees a held frame when no next frame comes
	stopped   bool
	stats     PipeStats
}

type inflight struct {
	b   *pkt.Buffer
	q   int
	due time.Time
}

func newDirection(cfg PipeConfig, dst *PipeEnd) *direction {
	d := &direction{imp: cfg.Impair, clk: cfg.Clock, dst: dst, limit: int64(cfg.Impair.QueueLimit)}
	if d.clk == nil {
		d.clk = clock.Real()
	}
	if d.limit <= 0 {
		d.limit = DefaultQueueLimit
	}
	seed := uint64(cfg.Impair.Seed)
	d.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return d
}

func (d *direction) chance(percent float64) bool {
	return percent > 0 && d.rng.Float64()*100 < percent
}

func (d *direction) send(q int, frame []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	d.stats.Sent++
	if d.chance(d.imp.LossPercent) {
		d.stats.Lost++
		return
	}
	copies := 1
	if d.chance(d.imp.DupPercent) {
		copies = 2
		d.stats.Duplicated++
	}
	now := d.clk.Now()
	for i := range copies {
		if d.held.Load() >= d.limit {
			d.stats.QueueDrops++
			continue
		}
		d.held.Add(1)
		b := pkt.Get(len(frame))
		copy(b.Append(len(frame)), frame)
		if i == 0 && d.chance(d.imp.CorruptPercent) {
			d.corrupt(b.Bytes())
			d.stats.Corrupted++
		}
		f := inflight{b: b, q: q, due: d.dueTime(now, len(frame))}
		if d.chance(d.imp.ReorderPercent) {
			d.stats.Reordered++
			d.holdBack(f)
			continue
		}
		d.enqueue(f)
		if d.hasHeld {
			// The held frame goes right behind the one that overtook it.
			h := d.heldFrame
			d.hasHeld = false
			if h.due.Before(f.due) {
				h.due = f.due
			}
			d.enqueue(h)
		}
	}
	d.pump()
}

// corrupt flips one random bit, past the Ethernet header when there is one
// so that the frame still reaches the stack and its checksums catch it.
func (d *direction) corrupt(b []byte) {
	if len(b) == 0 {
		return
	}
	start := 0
	if len(b) > 14 {
		start = 14
	}
	b[start+d.rng.IntN(len(b)-start)] ^= 1 << d.rng.IntN(8)
}

func (d *direction) dueTime(now time.Time, size int) time.Time {
	due := now
	if r := d.imp.RateBitsPerSec; r > 0 {
		start := now
		if d.busyUntil.After(start) {
			start = d.busyUntil
		}
		d.busyUntil = start.Add(time.Duration(int64(size) * 8 * int64(time.Second) / r))
		due = d.busyUntil
	}
	delay := d.imp.Delay
	if j := d.imp.Jitter; j > 0 {
		delay += time.Duration(d.rng.Int64N(int64(2*j)+1)) - j
	}
	if delay > 0 {
		due = due.Add(delay)
	}
	return due
}

// holdBack keeps f until the next frame has been queued (so that frame
// overtakes it), or at most max(Delay, 1ms) past its due time.
func (d *direction) holdBack(f inflight) {
	if d.hasHeld {
		d.enqueue(d.heldFrame)
	}
	d.heldFrame, d.hasHeld = f, true
	wait := max(d.imp.Delay, time.Millisecond) + f.due.Sub(d.clk.Now())
	if d.flush == nil {
		d.flush = d.clk.AfterFunc(wait, d.onFlush)
	} else {
		d.flush.Reset(wait)
	}
}

func (d *direction) onFlush() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.hasHeld && !d.stopped {
		d.hasHeld = false
		d.enqueue(d.heldFrame)
		d.pump()
	}
}

// enqueue inserts f in due-time order, after frames due at the same time.
func (d *direction) enqueue(f inflight) {
	d.tfifo.PushBack(f)
	for i := d.tfifo.Len() - 1; i > 0; i-- {
		prev, cur := d.tfifo.at(i-1), d.tfifo.at(i)
		if !cur.due.Before(prev.due) {
			break
		}
		*prev, *cur = *cur, *prev
	}
}

// pump delivers every frame that is due and arms the timer for the next.
func (d *direction) pump() {
	now := d.clk.Now()
	for d.tfifo.Len() > 0 && !d.tfifo.Front().due.After(now) {
		f := d.tfifo.PopFront()
		if d.dst.deliver(f.q, f.b) {
			d.stats.Delivered++
		} else {
			d.held.Add(-1)
		}
	}
	if d.tfifo.Len() == 0 {
		return
	}
	next := d.tfifo.Front().due
	if d.timer != nil && d.timerAt.Equal(next) {
		return
	}
	d.timerAt = next
	if d.timer == nil {
		d.timer = d.clk.AfterFunc(next.Sub(now), d.onTimer)
	} else {
		d.timer.Reset(next.Sub(now))
	}
}

func (d *direction) onTimer() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.timerAt = time.Time{}
	if !d.stopped {
		d.pump()
	}
}

// shutdown stops the timers and frees every frame still on the way.
func (d *direction) shutdown() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	if d.timer != nil {
		d.timer.Stop()
	}
	if d.flush != nil {
		d.flush.Stop()
	}
	for d.tfifo.Len() > 0 {
		d.tfifo.PopFront().b.Release()
		d.held.Add(-1)
	}
	if d.hasHeld {
		d.hasHeld = false
		d.heldFrame.b.Release()
		d.held.Add(-1)
	}
}
