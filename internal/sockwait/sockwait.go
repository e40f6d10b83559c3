// Package sockwait holds what the sockets of every transport share for
// blocking calls: a one-slot wake-up channel made on first use (Waiter) and
// a net.Conn deadline on the stack's clock that wakes it (Deadline), and
// the pair of each that a socket holds (Waits).
package sockwait

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapstack/tapstack/internal/clock"
)

// Waiter is a one-slot wake-up channel made on first use: an idle
// connection that nobody reads or writes never pays for one (96 bytes
// each), the way a Linux socket's wait queue costs nothing until a task
// sleeps on it.
type Waiter struct {
	ch atomic.Pointer[chan struct{}]
}

// Get returns the channel to sleep on, making it if needed. A wake that
// comes before the channel exists is not lost: the sleeper re-checks its
// condition after get and before sleeping (every caller loops).
func (w *Waiter) Get() chan struct{} {
	if p := w.ch.Load(); p != nil {
		return *p
	}
	ch := make(chan struct{}, 1)
	if w.ch.CompareAndSwap(nil, &ch) {
		// A wake may have come before the channel existed: make the first
		// sleep a recheck. (A wake since the swap may have filled the slot
		// already, so never block here.)
		select {
		case ch <- struct{}{}:
		default:
		}
		return ch
	}
	return *w.ch.Load()
}

func (w *Waiter) Wake() {
	if p := w.ch.Load(); p != nil {
		select {
		case *p <- struct{}{}:
		default:
		}
	}
}

// Deadline is a net.Conn read or write deadline on the stack's clock. It
// is a time and one timer, re-armed in place each time the deadline moves,
// the way the runtime's netpoller keeps one timer per fd: net/http moves a
// connection's read deadline several times per request (the header
// timeout, then a time in the past to abort its background read, then
// none), and a channel or timer made for every move was 3 heap objects per
// request. When the deadline passes, w is woken; the goroutines that sleep
// on it then see passed() and return.
type Deadline struct {
	mu    sync.Mutex
	timer clock.Timer
	when  time.Time // zero: no deadline
	over  atomic.Bool
	clk   clock.Clock
	w     *Waiter // woken when the deadline passes
}

// Set moves the deadline to t (zero: none). Only a deadline that is now in
// the past wakes the sleepers: one moved later needs no wake-up, and one
// moved earlier wakes them from its timer.
func (d *Deadline) Set(clk clock.Clock, t time.Time, w *Waiter) {
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
		w.Wake()
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
func (d *Deadline) fire() {
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
	w.Wake()
}

// Passed reports whether the deadline has passed.
func (d *Deadline) Passed() bool { return d.over.Load() }

func (d *Deadline) Stop() {
	d.mu.Lock()
	if d.timer != nil {
		d.timer.Stop()
	}
	d.mu.Unlock()
}

// LazyDeadline is a Deadline made on first use: most connections never set
// one, and an idle connection should cost as little as the kernel's.
type LazyDeadline struct {
	p atomic.Pointer[Deadline]
}

func (l *LazyDeadline) Set(clk clock.Clock, t time.Time, w *Waiter) {
	d := l.p.Load()
	if d == nil {
		if t.IsZero() {
			return // clearing a deadline that was never set
		}
		l.p.CompareAndSwap(nil, new(Deadline))
		d = l.p.Load()
	}
	d.Set(clk, t, w)
}

// Passed reports whether the deadline has passed.
func (l *LazyDeadline) Passed() bool {
	if d := l.p.Load(); d != nil {
		return d.Passed()
	}
	return false
}

func (l *LazyDeadline) Stop() {
	if d := l.p.Load(); d != nil {
		d.Stop()
	}
}

// Dir says which of a socket's directions a deadline applies to.
type Dir uint8

const (
	Read  Dir            = 1 << iota // SetReadDeadline
	Write                            // SetWriteDeadline
	Both  = Read | Write             // SetDeadline
)

// Waits is what every transport's socket sleeps on: a waiter for its
// readers and one for its writers, and the deadline of each direction
// (net.Conn's SetDeadline, SetReadDeadline and SetWriteDeadline, which each
// socket type forwards to Set).
type Waits struct {
	Rd, Wr     Waiter
	rdDL, wrDL LazyDeadline
}

// Set moves the deadline of the directions in d to t (zero: none), waking
// that direction's sleepers if t has passed.
func (w *Waits) Set(clk clock.Clock, t time.Time, d Dir) {
	if d&Read != 0 {
		w.rdDL.Set(clk, t, &w.Rd)
	}
	if d&Write != 0 {
		w.wrDL.Set(clk, t, &w.Wr)
	}
}

// ReadPassed and WritePassed report whether that direction's deadline has
// passed.
func (w *Waits) ReadPassed() bool  { return w.rdDL.Passed() }
func (w *Waits) WritePassed() bool { return w.wrDL.Passed() }

// Wake wakes the sleepers of both directions.
func (w *Waits) Wake() {
	w.Rd.Wake()
	w.Wr.Wake()
}

// Stop stops both deadlines' timers (the socket is closed).
func (w *Waits) Stop() {
	w.rdDL.Stop()
	w.wrDL.Stop()
}
