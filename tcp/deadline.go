package tcp

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapstack/tapstack/internal/clock"
)

// deadline is a net.Conn read or write deadline on the stack's clock. It
// is a time and one timer, re-armed in place each time the deadline moves,
// the way the runtime's netpoller keeps one timer per fd: net/http moves a
// connection's read deadline several times per request (the header
// timeout, then a time in the past to abort its background read, then
// none), and a channel or timer made for every move was 3 heap objects per
// request. When the deadline passes, w is woken; the goroutines that sleep
// on it then see passed() and return.
type deadline struct {
	mu    sync.Mutex
	timer clock.Timer
	when  time.Time // zero: no deadline
	over  atomic.Bool
	clk   clock.Clock
	w     *waiter // woken when the deadline passes
}

// set moves the deadline to t (zero: none). Only a deadline that is now in
// the past wakes the sleepers: one moved later needs no wake-up, and one
// moved earlier wakes them from its timer.
func (d *deadline) set(clk clock.Clock, t time.Time, w *waiter) {
	d.mu.Lock()
	d.clk, d.w = clk, w
	d.when = t
	if t.IsZero() {
		d.over.Store(false)
		if d.timer != nil {
			d.timer.Stop()
		}
		d.mu.Unlock()
		return
	}
	dur := t.Sub(clk.Now())
	if dur <= 0 {
		d.over.Store(true)
		if d.timer != nil {
			d.timer.Stop()
		}
		d.mu.Unlock()
		w.wake()
		return
	}
	d.over.Store(false)
	if d.timer == nil {
		d.timer = clk.AfterFunc(dur, d.fire)
	} else {
		d.timer.Reset(dur)
	}
	d.mu.Unlock()
}

// fire runs from the timer. A timer that was already running when set
// re-armed it may fire early for the new deadline: it re-arms for the rest.
func (d *deadline) fire() {
	d.mu.Lock()
	if d.when.IsZero() || d.over.Load() {
		d.mu.Unlock()
		return
	}
	if now := d.clk.Now(); now.Before(d.when) {
		d.timer.Reset(d.when.Sub(now))
		d.mu.Unlock()
		return
	}
	d.over.Store(true)
	w := d.w
	d.mu.Unlock()
	w.wake()
}

// passed reports whether the deadline has passed.
func (d *deadline) passed() bool { return d.over.Load() }

func (d *deadline) stop() {
	d.mu.Lock()
	if d.timer != nil {
		d.timer.Stop()
	}
	d.mu.Unlock()
}

// lazyDeadline is a deadline made on first use: most connections never set
// one, and an idle connection should cost as little as the kernel's.
type lazyDeadline struct {
	p atomic.Pointer[deadline]
}

func (l *lazyDeadline) set(clk clock.Clock, t time.Time, w *waiter) {
	d := l.p.Load()
	if d == nil {
		if t.IsZero() {
			return // clearing a deadline that was never set
		}
		l.p.CompareAndSwap(nil, new(deadline))
		d = l.p.Load()
	}
	d.set(clk, t, w)
}

// passed reports whether the deadline has passed.
func (l *lazyDeadline) passed() bool {
	if d := l.p.Load(); d != nil {
		return d.passed()
	}
	return false
}

func (l *lazyDeadline) stop() {
	if d := l.p.Load(); d != nil {
		d.stop()
	}
}
