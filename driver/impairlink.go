package driver

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapstack/tapstack/clock"
)

// ImpairConfig configures NewImpaired.
type ImpairConfig struct {
	Send Impairment // frames written to the wrapper, on their way to the link
	Recv Impairment // frames read from the link, on their way to the reader
	// Clock times delay, jitter and rate; nil → clock.Real().
	Clock clock.Clock
}

// ImpairedLink wraps any Link (a TAP, a pipe end, a pcap tee) and degrades
// the frames in each direction with the pipe's impairment engine: a netem
// for links whose kernel has no sch_netem. One goroutine per queue reads
// the wrapped link into the receive impairment; Close stops them and the
// timers. GSO super-frames pass through the send impairment as one frame.
type ImpairedLink struct {
	inner Link
	tx    *impairer
	rx    *impairer
	rxq   *rxSet
	quit  chan struct{}
	wg    sync.WaitGroup

	closed      atomic.Bool
	closeOnce   sync.Once
	closeErr    error
	writeErrors atomic.Uint64
	readErrors  atomic.Uint64
}

var (
	_ Link           = (*ImpairedLink)(nil)
	_ LargeFrameLink = (*ImpairedLink)(nil)
	_ GSOLink        = (*ImpairedLink)(nil)
)

// Impair wraps l so that frames written to it suffer send and frames read
// from it suffer recv (see Impairment), on the real clock. The result is an
// *ImpairedLink; use NewImpaired for a virtual clock.
func Impair(l Link, send, recv Impairment) Link {
	return NewImpaired(l, ImpairConfig{Send: send, Recv: recv})
}

// NewImpaired wraps l as Impair does and starts reading its queues.
func NewImpaired(l Link, cfg ImpairConfig) *ImpairedLink {
	il := &ImpairedLink{inner: l, rxq: newRxSet(l.Queues()), quit: make(chan struct{})}
	il.tx = newImpairer(cfg.Send, cfg.Clock, il.writeInner)
	il.rx = newImpairer(cfg.Recv, cfg.Clock, il.queueRead)
	il.rxq.from = il.rx
	for q := range l.Queues() {
		il.wg.Add(1)
		go il.reader(q)
	}
	return il
}

// reader feeds queue q of the wrapped link into the receive impairment.
func (il *ImpairedLink) reader(q int) {
	defer il.wg.Done()
	buf := make([]byte, MaxFrameSize(il.inner))
	for {
		n, err := il.inner.ReadFrame(q, buf)
		if err != nil {
			if il.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			il.readErrors.Add(1)
			select { // a failing link must not spin
			case <-il.quit:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		il.rx.send(q, buf[:n], 0)
	}
}

func (il *ImpairedLink) queueRead(f inflight) (delivered, held bool) {
	ok := il.rxq.deliver(f.q, f.b)
	return ok, ok
}

func (il *ImpairedLink) writeInner(f inflight) (delivered, held bool) {
	var err error
	if f.mss > 0 {
		if g, ok := il.inner.(GSOLink); ok {
			err = g.WriteGSO(f.q, f.b.Bytes(), f.mss)
		} else {
			err = ErrNoGSO
		}
	} else {
		err = il.inner.WriteFrame(f.q, f.b.Bytes())
	}
	f.b.Release()
	if err != nil {
		il.writeErrors.Add(1)
		return false, false
	}
	return true, false
}

// Queues is the wrapped link's.
func (il *ImpairedLink) Queues() int { return il.inner.Queues() }

// MTU is the wrapped link's.
func (il *ImpairedLink) MTU() int { return il.inner.MTU() }

// MAC is the wrapped link's.
func (il *ImpairedLink) MAC() net.HardwareAddr { return il.inner.MAC() }

// L3 is the wrapped link's (see L3Link).
func (il *ImpairedLink) L3() bool { return IsL3(il.inner) }

// MaxFrameSize is the wrapped link's (see LargeFrameLink).
func (il *ImpairedLink) MaxFrameSize() int { return MaxFrameSize(il.inner) }

// GSOMax is the wrapped link's (0 when it cannot segment).
func (il *ImpairedLink) GSOMax() int { return GSOMax(il.inner) }

// Unwrap returns the wrapped link.
func (il *ImpairedLink) Unwrap() Link { return il.inner }

// SendStats counts the frames written to the wrapper.
func (il *ImpairedLink) SendStats() PipeStats { return il.tx.snapshot() }

// RecvStats counts the frames read from the wrapped link.
func (il *ImpairedLink) RecvStats() PipeStats { return il.rx.snapshot() }

// WriteErrors counts impaired frames the wrapped link refused: writes
// happen after the impairment (possibly later, on a timer), so their errors
// can only be counted.
func (il *ImpairedLink) WriteErrors() uint64 { return il.writeErrors.Load() }

// ReadErrors counts failed reads of the wrapped link (other than its close).
func (il *ImpairedLink) ReadErrors() uint64 { return il.readErrors.Load() }

// ReadFrame returns the next frame of queue q that survived the receive
// impairment. After Close it returns net.ErrClosed.
func (il *ImpairedLink) ReadFrame(q int, b []byte) (int, error) {
	if q < 0 || q >= len(il.rxq.qs) {
		return 0, fmt.Errorf("driver: impair: no queue %d", q)
	}
	return il.rxq.read(q, b)
}

// WriteFrame sends a copy of b through the send impairment to the wrapped
// link on queue q.
func (il *ImpairedLink) WriteFrame(q int, b []byte) error {
	if err := il.check(q); err != nil {
		return err
	}
	if len(b) > il.inner.MTU()+14 {
		return fmt.Errorf("%w: %d bytes", errFrameSize, len(b))
	}
	il.tx.send(q, b, 0)
	return nil
}

// WriteGSO sends a copy of the super-frame through the send impairment (as
// one frame) to the wrapped link's WriteGSO; ErrNoGSO if it has none.
func (il *ImpairedLink) WriteGSO(q int, frame []byte, mss int) error {
	if err := il.check(q); err != nil {
		return err
	}
	limit := GSOMax(il.inner)
	if limit == 0 {
		return ErrNoGSO
	}
	if len(frame) > limit || mss <= 0 {
		return fmt.Errorf("%w: %d bytes, mss %d", errFrameSize, len(frame), mss)
	}
	il.tx.send(q, frame, mss)
	return nil
}

func (il *ImpairedLink) check(q int) error {
	if il.closed.Load() {
		return net.ErrClosed
	}
	if q < 0 || q >= il.inner.Queues() {
		return fmt.Errorf("driver: impair: no queue %d", q)
	}
	return nil
}

// Close stops the impairment timers, closes the wrapped link, waits for
// the reader goroutines and frees every frame still held. Idempotent.
func (il *ImpairedLink) Close() error {
	il.closeOnce.Do(func() {
		il.closed.Store(true)
		il.tx.shutdown()
		close(il.quit)
		il.closeErr = il.inner.Close()
		il.wg.Wait()
		il.rx.shutdown()
		il.rxq.close()
	})
	return il.closeErr
}
