// Package eventlog writes the stack's notable events — a backlog starting to
// drop, an accept queue overflowing, syncookies engaging, a neighbour
// failing to resolve — as structured log/slog lines, at most one line per
// event kind per interval, the way the kernel's net_ratelimit keeps dmesg
// readable under a flood. A line says how many occurrences it stands for.
package eventlog

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/tapstack/tapstack/internal/clock"
)

// DefaultInterval is the minimum time between two lines of one event kind.
const DefaultInterval = 5 * time.Second

// Log is a rate-limited event logger. A nil *Log, or one made from a nil
// *slog.Logger, logs nothing and costs one branch per event.
type Log struct {
	l        *slog.Logger
	clk      clock.Clock
	interval time.Duration
}

// New returns a Log writing to l; nil l gives a silent Log.
func New(l *slog.Logger, clk clock.Clock, interval time.Duration) *Log {
	if l == nil {
		return nil
	}
	if clk == nil {
		clk = clock.Real()
	}
	if interval <= 0 {
		interval = DefaultInterval
	}
	return &Log{l: l, clk: clk, interval: interval}
}

// Event is one kind of notable event (one call site), with its own limit.
type Event struct {
	log   *Log
	level slog.Level
	msg   string
	next  atomic.Int64 // unix nanoseconds before which lines are suppressed
	count atomic.Uint64
}

// Event declares an event kind with its message.
func (lg *Log) Event(level slog.Level, msg string) *Event {
	return &Event{log: lg, level: level, msg: msg}
}

// Log records one occurrence. It writes a line with attrs and the number of
// occurrences since the previous line, unless a line was written less than
// the interval ago.
func (e *Event) Log(attrs ...slog.Attr) {
	if e == nil || e.log == nil {
		return
	}
	n := e.count.Add(1)
	now := e.log.clk.Now().UnixNano()
	next := e.next.Load()
	if now < next || !e.next.CompareAndSwap(next, now+int64(e.log.interval)) {
		return
	}
	e.count.Add(-n)
	// A copy, so that attrs does not escape and a suppressed call allocates
	// nothing.
	line := make([]slog.Attr, 0, len(attrs)+1)
	line = append(append(line, attrs...), slog.Uint64("occurrences", n))
	e.log.l.LogAttrs(context.Background(), e.level, e.msg, line...)
}
