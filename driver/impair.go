package driver

import (
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapstack/tapstack/internal/clock"
	"github.com/tapstack/tapstack/internal/pkt"
)

// DefaultQueueLimit is the frames an impaired direction holds (in flight
// plus waiting to be read) when Impairment.QueueLimit is 0; netem's default
// limit.
const DefaultQueueLimit = 1000

// Impairment degrades the frames of one direction, in the manner of Linux
// netem. Every random decision comes from a generator seeded with Seed, so
// a failing test replays exactly when its writes are replayed.
type Impairment struct {
	Seed int64
	// Percentages (0–100) of frames lost, duplicated, held back behind the
	// next frame, and corrupted (one bit flipped after the Ethernet header:
	// damage the link's frame check missed, for the stack's checksums to
	// catch; ARP frames, which carry none, are never corrupted).
	LossPercent, DupPercent, ReorderPercent, CorruptPercent float64
	// Delay each frame by Delay ± a uniform Jitter (jitter can reorder,
	// as netem's time-sorted queue does).
	Delay, Jitter time.Duration
	// RateBitsPerSec > 0 serialises frames at that rate (frame bytes × 8).
	RateBitsPerSec int64
	// QueueLimit bounds the frames in flight plus those waiting to be read;
	// beyond it frames are dropped and counted. 0 → DefaultQueueLimit.
	QueueLimit int
}

// PipeStats counts what happened to the frames of one impaired direction
// (a pipe end's sends, or one direction of an ImpairedLink).
type PipeStats struct {
	Sent       uint64 // frames accepted for sending
	Delivered  uint64 // copies handed on (to the peer's receive queue, or the wrapped link)
	Lost       uint64 // dropped by LossPercent
	Duplicated uint64 // extra copies made by DupPercent
	Reordered  uint64 // held back behind the next frame by ReorderPercent
	Corrupted  uint64 // a bit flipped by CorruptPercent
	QueueDrops uint64 // dropped because QueueLimit frames were held
}

// handOn passes a due frame on and takes ownership of f.b. delivered says
// it went on; held says it still counts against the queue limit (it waits
// in a receive queue whose reader calls impairer.release).
type handOn func(f inflight) (delivered, held bool)

// impairer carries the frames of one direction through an Impairment, in
// the manner of netem_enqueue: loss, duplication, corruption, reordering,
// rate, then delay into a time-sorted queue (tfifo_enqueue). Due frames
// are handed on outside the lock, by one goroutine at a time, in order.
// The pipe and ImpairedLink share it.
type impairer struct {
	imp   Impairment
	clk   clock.Clock
	out   handOn
	limit int64
	held  atomic.Int64 // accepted copies not yet freed or read

	mu        sync.Mutex
	rng       *rand.Rand
	busyUntil time.Time // rate limit: when the "wire" is free again
	tfifo     fifo[inflight]
	ready     fifo[inflight] // due, waiting to be handed on
	handing   bool           // a goroutine is handing frames on
	timer     clock.Timer    // fires for the tfifo head
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
	mss int // > 0: a GSO super-frame to be cut at mss
	due time.Time
}

func newImpairer(imp Impairment, clk clock.Clock, out handOn) *impairer {
	d := &impairer{imp: imp, clk: clk, out: out, limit: int64(imp.QueueLimit)}
	if d.clk == nil {
		d.clk = clock.Real()
	}
	if d.limit <= 0 {
		d.limit = DefaultQueueLimit
	}
	seed := uint64(imp.Seed)
	d.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return d
}

// release is called by the reader of a frame handed on as still held.
func (d *impairer) release() { d.held.Add(-1) }

func (d *impairer) snapshot() PipeStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

func (d *impairer) chance(percent float64) bool {
	return percent > 0 && d.rng.Float64()*100 < percent
}

// send impairs a copy of frame (the caller keeps frame).
func (d *impairer) send(q int, frame []byte, mss int) {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return
	}
	d.stats.Sent++
	if d.chance(d.imp.LossPercent) {
		d.stats.Lost++
		d.mu.Unlock()
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
		if i == 0 && d.chance(d.imp.CorruptPercent) && corruptible(frame) {
			d.corrupt(b.Bytes())
			d.stats.Corrupted++
		}
		f := inflight{b: b, q: q, mss: mss, due: d.dueTime(now, len(frame))}
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
	d.handOnReady() // unlocks
}

// corruptible reports whether a flipped bit in frame is for a checksum to
// catch. ARP has no checksum: a corrupted sender address would poison the
// peer's neighbour cache, as it would Linux's, and every packet to that
// host would then go to a MAC nobody has (NetdevRxOtherHost) until the
// entry is probed again, tens of seconds later: a stall that tests no
// checksum. ARP frames therefore pass whole.
func corruptible(frame []byte) bool {
	return len(frame) < 14 || binary.BigEndian.Uint16(frame[12:]) != 0x0806
}

// corrupt flips one random bit, past the Ethernet header when there is one
// so that the frame still reaches the stack and its checksums catch it.
func (d *impairer) corrupt(b []byte) {
	if len(b) == 0 {
		return
	}
	start := 0
	if len(b) > 14 {
		start = 14
	}
	b[start+d.rng.IntN(len(b)-start)] ^= 1 << d.rng.IntN(8)
}

func (d *impairer) dueTime(now time.Time, size int) time.Time {
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
func (d *impairer) holdBack(f inflight) {
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

func (d *impairer) onFlush() {
	d.mu.Lock()
	if d.hasHeld && !d.stopped {
		d.hasHeld = false
		d.enqueue(d.heldFrame)
		d.pump()
	}
	d.handOnReady()
}

// enqueue inserts f in due-time order, after frames due at the same time.
func (d *impairer) enqueue(f inflight) {
	d.tfifo.PushBack(f)
	for i := d.tfifo.Len() - 1; i > 0; i-- {
		prev, cur := d.tfifo.at(i-1), d.tfifo.at(i)
		if !cur.due.Before(prev.due) {
			break
		}
		*prev, *cur = *cur, *prev
	}
}

// pump moves every due frame to the ready queue and arms the timer for the
// next one. Called with d.mu held.
func (d *impairer) pump() {
	now := d.clk.Now()
	for d.tfifo.Len() > 0 && !d.tfifo.Front().due.After(now) {
		d.ready.PushBack(d.tfifo.PopFront())
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

// handOnReady is entered with d.mu held and returns with it released. It
// hands the ready frames on without holding the lock (the receiver may be
// another link or layer); if another goroutine is already doing so, that
// one takes these frames too, so order is kept.
func (d *impairer) handOnReady() {
	if d.handing {
		d.mu.Unlock()
		return
	}
	d.handing = true
	for d.ready.Len() > 0 {
		f := d.ready.PopFront()
		if d.stopped {
			f.b.Release()
			d.held.Add(-1)
			continue
		}
		d.mu.Unlock()
		delivered, held := d.out(f)
		if !held {
			d.held.Add(-1)
		}
		d.mu.Lock()
		if delivered {
			d.stats.Delivered++
		}
	}
	d.handing = false
	d.mu.Unlock()
}

func (d *impairer) onTimer() {
	d.mu.Lock()
	d.timerAt = time.Time{}
	if !d.stopped {
		d.pump()
	}
	d.handOnReady()
}

// shutdown stops the timers and frees every frame still on the way.
func (d *impairer) shutdown() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	if d.timer != nil {
		d.timer.Stop()
	}
	if d.flush != nil {
		d.flush.Stop()
	}
	for _, q := range []*fifo[inflight]{&d.tfifo, &d.ready} {
		for q.Len() > 0 {
			q.PopFront().b.Release()
			d.held.Add(-1)
		}
	}
	if d.hasHeld {
		d.hasHeld = false
		d.heldFrame.b.Release()
		d.held.Add(-1)
	}
}
