package driver

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapstack/tapstack/internal/clock"
	"github.com/tapstack/tapstack/internal/pkt"
)

// DefaultQueueLimit is the frames a pipe direction holds (in flight plus
// waiting to be read) when Impairment.QueueLimit is 0; netem's default limit.
const DefaultQueueLimit = 1000

// Impairment degrades the frames one pipe end sends, in the manner of
// Linux netem. Every random decision comes from a generator seeded with
// Seed, so a failing test replays exactly when its writes are replayed.
type Impairment struct {
	Seed int64
	// Percentages (0–100) of frames lost, duplicated, held back behind the
	// next frame, and corrupted (one bit flipped after the Ethernet header).
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

// PipeConfig configures one end of a pipe.
type PipeConfig struct {
	MAC    net.HardwareAddr // nil → RandomMAC()
	MTU    int              // 0 → 1500
	Queues int              // 0 → 1
	// Impair applies to the frames this end sends.
	Impair Impairment
	// Clock times delay, jitter and rate; nil → clock.Real(). On a Virtual
	// clock a delayed frame arrives when the clock is advanced past its due
	// time, in the goroutine calling Advance.
	Clock clock.Clock
}

// PipeStats counts what happened to the frames one end sent.
type PipeStats struct {
	Sent       uint64 // WriteFrame calls accepted
	Delivered  uint64 // copies placed in the peer's receive queue
	Lost       uint64 // dropped by LossPercent
	Duplicated uint64 // extra copies made by DupPercent
	Reordered  uint64 // held back behind the next frame by ReorderPercent
	Corrupted  uint64 // a bit flipped by CorruptPercent
	QueueDrops uint64 // dropped because QueueLimit frames were held
}

// PipeEnd is one end of an in-memory Ethernet pair made by NewPipe. A frame
// written on queue q arrives on the peer's queue q % peer.Queues(): netdev
// writes each flow on its shard's queue, so a flow keeps one queue.
type PipeEnd struct {
	mac    net.HardwareAddr
	mtu    int
	rx     []*rxQueue
	out    *direction // frames this end sends
	in     *direction // frames the peer sends to us
	done   chan struct{}
	once   sync.Once
	closed atomic.Bool
}

var _ Link = (*PipeEnd)(nil)

// NewPipe returns the two ends of an in-memory Ethernet link. Closing one
// end closes only that end: its readers get net.ErrClosed and frames sent to
// it are discarded, like a cable to a switched-off host.
func NewPipe(cfgA, cfgB PipeConfig) (a, b *PipeEnd) {
	a, b = newPipeEnd(cfgA), newPipeEnd(cfgB)
	a.out = newDirection(cfgA, b)
	b.out = newDirection(cfgB, a)
	a.in, b.in = b.out, a.out
	return a, b
}

func newPipeEnd(cfg PipeConfig) *PipeEnd {
	e := &PipeEnd{mac: cfg.MAC, mtu: cfg.MTU, done: make(chan struct{})}
	if e.mac == nil {
		e.mac = RandomMAC()
	}
	if e.mtu <= 0 {
		e.mtu = 1500
	}
	for range max(cfg.Queues, 1) {
		e.rx = append(e.rx, &rxQueue{ready: make(chan struct{}, 1)})
	}
	return e
}

// Queues is the number of receive/transmit queues.
func (e *PipeEnd) Queues() int { return len(e.rx) }

// MTU is the largest IP packet the pipe carries.
func (e *PipeEnd) MTU() int { return e.mtu }

// MAC is this end's address.
func (e *PipeEnd) MAC() net.HardwareAddr { return e.mac }

// Stats counts the frames this end has sent.
func (e *PipeEnd) Stats() PipeStats {
	d := e.out
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

var errFrameSize = errors.New("driver: frame larger than MTU")

// WriteFrame sends a copy of b to the peer through this end's impairment.
func (e *PipeEnd) WriteFrame(q int, b []byte) error {
	if e.closed.Load() {
		return net.ErrClosed
	}
	if q < 0 || q >= len(e.rx) {
		return fmt.Errorf("driver: pipe: no queue %d", q)
	}
	if len(b) > e.mtu+14 {
		return fmt.Errorf("%w: %d bytes", errFrameSize, len(b))
	}
	e.out.send(q, b)
	return nil
}

// ReadFrame blocks until a frame arrives on queue q and copies it into b
// (truncating a longer frame). After Close it returns net.ErrClosed.
func (e *PipeEnd) ReadFrame(q int, b []byte) (int, error) {
	if q < 0 || q >= len(e.rx) {
		return 0, fmt.Errorf("driver: pipe: no queue %d", q)
	}
	rq := e.rx[q]
	for {
		if e.closed.Load() {
			return 0, net.ErrClosed
		}
		if f := rq.pop(); f != nil {
			n := copy(b, f.Bytes())
			f.Release()
			e.in.held.Add(-1)
			return n, nil
		}
		select {
		case <-rq.ready:
		case <-e.done:
		}
	}
}

// Close closes this end: readers return net.ErrClosed, frames waiting here
// or still on the way out are freed. It is idempotent.
func (e *PipeEnd) Close() error {
	e.once.Do(func() {
		e.closed.Store(true)
		close(e.done)
		e.out.shutdown()
		for _, rq := range e.rx {
			for f := rq.pop(); f != nil; f = rq.pop() {
				f.Release()
				e.in.held.Add(-1)
			}
		}
	})
	return nil
}

// deliver places a frame in receive queue q % Queues(), or frees it if this
// end is closed. It reports whether the frame was queued.
func (e *PipeEnd) deliver(q int, f *pkt.Buffer) bool {
	rq := e.rx[q%len(e.rx)]
	rq.mu.Lock()
	if e.closed.Load() {
		rq.mu.Unlock()
		f.Release()
		return false
	}
	rq.frames.PushBack(f)
	rq.mu.Unlock()
	select {
	case rq.ready <- struct{}{}:
	default:
	}
	return true
}

// rxQueue holds delivered frames until a reader takes them. Its length is
// bounded by the sending direction's QueueLimit.
type rxQueue struct {
	mu     sync.Mutex
	frames fifo[*pkt.Buffer]
	ready  chan struct{} // one-slot doorbell
}

func (rq *rxQueue) pop() *pkt.Buffer {
	rq.mu.Lock()
	defer rq.mu.Unlock()
	if rq.frames.Len() == 0 {
		return nil
	}
	f := rq.frames.PopFront()
	if rq.frames.Len() > 0 {
		// Several readers may share a queue: pass the doorbell on.
		select {
		case rq.ready <- struct{}{}:
		default:
		}
	}
	return f
}
