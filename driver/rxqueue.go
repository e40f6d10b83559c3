package driver

import (
	"net"
	"sync"
	"sync/atomic"

	"github.com/tapstack/tapstack/internal/pkt"
)

// rxSet is the receive side of a link whose frames come out of an
// impairer: one queue per link queue, readers blocking on a doorbell. The
// queues' lengths are bounded by that impairer's QueueLimit (a read calls
// its release).
type rxSet struct {
	qs     []*rxQueue
	from   *impairer // the direction filling these queues
	done   chan struct{}
	closed atomic.Bool
}

func newRxSet(queues int) *rxSet {
	r := &rxSet{done: make(chan struct{})}
	for range max(queues, 1) {
		r.qs = append(r.qs, &rxQueue{ready: make(chan struct{}, 1)})
	}
	return r
}

// deliver places a frame in queue q % len, or frees it if the set is
// closed. It reports whether the frame was queued.
func (r *rxSet) deliver(q int, f *pkt.Buffer) bool {
	rq := r.qs[q%len(r.qs)]
	rq.mu.Lock()
	if r.closed.Load() {
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

// read blocks until a frame is in queue q and copies it into b (truncating
// a longer frame). After close it returns net.ErrClosed.
func (r *rxSet) read(q int, b []byte) (int, error) {
	rq := r.qs[q]
	for {
		if r.closed.Load() {
			return 0, net.ErrClosed
		}
		if f := rq.pop(); f != nil {
			n := copy(b, f.Bytes())
			f.Release()
			r.from.release()
			return n, nil
		}
		select {
		case <-rq.ready:
		case <-r.done:
		}
	}
}

// close unblocks the readers and frees the queued frames; call it once.
func (r *rxSet) close() {
	r.closed.Store(true)
	close(r.done)
	for _, rq := range r.qs {
		for f := rq.pop(); f != nil; f = rq.pop() {
			f.Release()
			r.from.release()
		}
	}
}

// rxQueue holds delivered frames until a reader takes them.
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
