// Package clock is the stack's only source of time. Production code uses
// Real; tests use a Virtual clock so that timers (RTO, SYN-ACK retries,
// TIME_WAIT, delayed ACK, keepalive, socket deadlines) fire deterministically
// and without sleeping.
//
// To test code built on tapstack the way tapstack tests itself, give one
// Virtual clock to every stack (stack.Config.Clock) and to the in-memory
// link between them (driver.PipeConfig.Clock), then move time with Advance:
// frames still flow at once, but no timer fires until the test says so.
// Deadlines passed to SetDeadline are read on the same clock, so compute
// them from its Now.
package clock

import "time"

// Clock tells the time and schedules callbacks; the stack calls it from many
// goroutines at once. A pending timer costs no goroutine on the Real clock
// (the runtime's timer heap scales to hundreds of thousands of timers), which
// is why the stack needs no goroutine per connection.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f once, in its own goroutine on the Real clock and in
	// the goroutine calling Advance on a Virtual clock, after d has passed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop prevents the call; it reports whether the timer was pending.
	Stop() bool
	// Reset re-arms the timer to fire after d; it reports whether the timer
	// was pending.
	Reset(d time.Duration) bool
}

// Real is the wall clock.
func Real() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
