package tcp

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapstack/tapstack/internal/clock"
)

// deadline is a net.Conn read or write deadline on the stack's clock: a
// channel closed when it passes, replaced when the deadline is moved.
type deadline struct {
	mu    sync.Mutex
	timer clock.Timer
	ch    chan struct{}
	fired bool
}

func (d *deadline) set(clk clock.Clock, t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	if d.ch == nil || d.fired {
		d.ch = make(chan struct{})
		d.fired = false
	}
	if t.IsZero() {
		return
	}
	dur := t.Sub(clk.Now())
	if dur <= 0 {
		close(d.ch)
		d.fired = true
		return
	}
	ch := d.ch
	d.timer = clk.AfterFunc(dur, func() {
		d.mu.Lock()
		if d.ch == ch && !d.fired {
			close(ch)
			d.fired = true
		}
		d.mu.Unlock()
	})
}

// done returns a channel closed when the deadline has passed (nil: never).
func (d *deadline) done() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch
}

func (d *deadline) stop() {
	d.mu.Lock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	d.mu.Unlock()
}

// lazyDeadline is a deadline made on first use: most connections never set
// one, and an idle connection should cost as little as the kernel's.
type lazyDeadline struct {
	p atomic.Pointer[deadline]
}

func (l *lazyDeadline) set(clk clock.Clock, t time.Time) {
	d := l.p.Load()
	if d == nil {
		if t.IsZero() {
			return // clearing a deadline that was never set
		}
		l.p.CompareAndSwap(nil, new(deadline))
		d = l.p.Load()
	}
	d.set(clk, t)
}

// done returns a channel closed when the deadline has passed (nil: never).
func (l *lazyDeadline) done() <-chan struct{} {
	if d := l.p.Load(); d != nil {
		return d.done()
	}
	return nil
}

func (l *lazyDeadline) stop() {
	if d := l.p.Load(); d != nil {
		d.stop()
	}
}
