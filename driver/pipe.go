package driver

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/tapstack/tapstack/clock"
)

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

// PipeEnd is one end of an in-memory Ethernet pair made by NewPipe. A frame
// written on queue q arrives on the peer's queue q % peer.Queues(): netdev
// writes each flow on its shard's queue, so a flow keeps one queue.
type PipeEnd struct {
	mac    net.HardwareAddr
	mtu    int
	rx     *rxSet
	out    *impairer // frames this end sends
	once   sync.Once
	closed atomic.Bool
}

var _ Link = (*PipeEnd)(nil)

// NewPipe returns the two ends of an in-memory Ethernet link. Closing one
// end closes only that end: its readers get net.ErrClosed and frames sent to
// it are discarded, like a cable to a switched-off host.
func NewPipe(cfgA, cfgB PipeConfig) (a, b *PipeEnd) {
	a, b = newPipeEnd(cfgA), newPipeEnd(cfgB)
	a.out = newImpairer(cfgA.Impair, cfgA.Clock, b.handOn)
	b.out = newImpairer(cfgB.Impair, cfgB.Clock, a.handOn)
	a.rx.from, b.rx.from = b.out, a.out
	return a, b
}

func newPipeEnd(cfg PipeConfig) *PipeEnd {
	e := &PipeEnd{mac: cfg.MAC, mtu: cfg.MTU, rx: newRxSet(cfg.Queues)}
	if e.mac == nil {
		e.mac = RandomMAC()
	}
	if e.mtu <= 0 {
		e.mtu = 1500
	}
	return e
}

// handOn receives the frames the peer sent, once through its impairment.
func (e *PipeEnd) handOn(f inflight) (delivered, held bool) {
	ok := e.rx.deliver(f.q, f.b)
	return ok, ok
}

// Queues is the number of receive/transmit queues.
func (e *PipeEnd) Queues() int { return len(e.rx.qs) }

// MTU is the largest IP packet the pipe carries.
func (e *PipeEnd) MTU() int { return e.mtu }

// MAC is this end's address.
func (e *PipeEnd) MAC() net.HardwareAddr { return e.mac }

// Stats counts the frames this end has sent.
func (e *PipeEnd) Stats() PipeStats {
	return e.out.snapshot()
}

var errFrameSize = errors.New("driver: frame larger than MTU")

// WriteFrame sends a copy of b to the peer through this end's impairment.
func (e *PipeEnd) WriteFrame(q int, b []byte) error {
	if e.closed.Load() {
		return net.ErrClosed
	}
	if q < 0 || q >= len(e.rx.qs) {
		return fmt.Errorf("driver: pipe: no queue %d", q)
	}
	if len(b) > e.mtu+14 {
		return fmt.Errorf("%w: %d bytes", errFrameSize, len(b))
	}
	e.out.send(q, b, 0)
	return nil
}

// ReadFrame blocks until a frame arrives on queue q and copies it into b
// (truncating a longer frame). After Close it returns net.ErrClosed.
func (e *PipeEnd) ReadFrame(q int, b []byte) (int, error) {
	if q < 0 || q >= len(e.rx.qs) {
		return 0, fmt.Errorf("driver: pipe: no queue %d", q)
	}
	return e.rx.read(q, b)
}

// Close closes this end: readers return net.ErrClosed, frames waiting here
// or still on the way out are freed. It is idempotent.
func (e *PipeEnd) Close() error {
	e.once.Do(func() {
		e.closed.Store(true)
		e.out.shutdown()
		e.rx.close()
	})
	return nil
}
