package clock

import (
	"container/heap"
	"sync"
	"time"
)

// Virtual is a manually advanced clock. Timers fire, in deadline order (ties
// in creation order), inside Advance, in the caller's goroutine, with no
// lock held, so a callback may itself create, reset or stop timers.
type Virtual struct {
	mu  sync.Mutex
	now time.Time
	seq uint64
	q   timerHeap
}

// NewVirtual returns a virtual clock reading start.
func NewVirtual(start time.Time) *Virtual { return &Virtual{now: start} }

// Now returns the virtual time.
func (v *Virtual) Now() time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.now
}

// AfterFunc schedules f at Now()+d.
func (v *Virtual) AfterFunc(d time.Duration, f func()) Timer {
	t := &virtualTimer{clock: v, f: f, index: -1}
	v.mu.Lock()
	v.schedule(t, d)
	v.mu.Unlock()
	return t
}

func (v *Virtual) schedule(t *virtualTimer, d time.Duration) {
	if d < 0 {
		d = 0
	}
	v.seq++
	t.when = v.now.Add(d)
	t.seq = v.seq
	heap.Push(&v.q, t)
}

// Advance moves time forward by d, firing every timer that falls due on the
// way, each at its own deadline (Now() inside a callback reads the deadline).
func (v *Virtual) Advance(d time.Duration) {
	v.mu.Lock()
	end := v.now.Add(d)
	for {
		if len(v.q) == 0 || v.q[0].when.After(end) {
			break
		}
		t := heap.Pop(&v.q).(*virtualTimer)
		if t.when.After(v.now) {
			v.now = t.when
		}
		f := t.f
		v.mu.Unlock()
		f()
		v.mu.Lock()
	}
	if end.After(v.now) {
		v.now = end
	}
	v.mu.Unlock()
}

// Next reports how long until the earliest pending timer, and whether any is
// pending. Tests use it to step from event to event.
func (v *Virtual) Next() (time.Duration, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.q) == 0 {
		return 0, false
	}
	return v.q[0].when.Sub(v.now), true
}

// Pending returns the number of armed timers.
func (v *Virtual) Pending() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.q)
}

type virtualTimer struct {
	clock *Virtual
	f     func()
	when  time.Time
	seq   uint64
	index int // position in the heap, -1 when not pending
}

func (t *virtualTimer) Stop() bool {
	v := t.clock
	v.mu.Lock()
	defer v.mu.Unlock()
	if t.index < 0 {
		return false
	}
	heap.Remove(&v.q, t.index)
	return true
}

func (t *virtualTimer) Reset(d time.Duration) bool {
	v := t.clock
	v.mu.Lock()
	defer v.mu.Unlock()
	pending := t.index >= 0
	if pending {
		heap.Remove(&v.q, t.index)
	}
	v.schedule(t, d)
	return pending
}

type timerHeap []*virtualTimer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].when.Equal(h[j].when) {
		return h[i].seq < h[j].seq
	}
	return h[i].when.Before(h[j].when)
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *timerHeap) Push(x any) {
	t := x.(*virtualTimer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.index = -1
	return t
}
