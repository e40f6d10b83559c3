// Package testwait is how the tests wait: on a condition, never on the
// wall clock. A test that sleeps "long enough" or gives up after a fixed
// time passes on a quiet machine and fails on a loaded one; here a wait
// lasts until what it waits for has happened. The only bound is the test
// binary's own (go test -timeout): a condition that never comes is a hang,
// reported shortly before that deadline with what was awaited, instead of
// a failure on a slow machine.
package testwait

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"
	"time"
)

// grace is how long before the test binary's deadline a wait gives up and
// reports, so that the report (and the test's cleanups) come before the
// binary's panic.
const grace = 30 * time.Second

// Deadline is when the waits of t give up: shortly before the test
// binary's deadline; the zero time when there is none (-timeout 0).
func Deadline(t testing.TB) time.Time {
	d, ok := t.(interface{ Deadline() (time.Time, bool) })
	if !ok {
		return time.Time{}
	}
	end, ok := d.Deadline()
	if !ok {
		return time.Time{}
	}
	if left := time.Until(end); left < 2*grace {
		return end.Add(-left / 2)
	}
	return end.Add(-grace)
}

// Context is done at Deadline(t) or when t ends: for commands and dials
// that must not outlive the test but have no time bound of their own.
func Context(t testing.TB) context.Context {
	ctx := t.Context()
	if end := Deadline(t); !end.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, end)
		t.Cleanup(cancel)
	}
	return ctx
}

// poller sleeps between checks: 1 ms at first, doubling to 50 ms, so a
// quick condition is seen quickly and a slow one (an ip(8) or ss(8) run
// per check) costs little.
type poller struct {
	end time.Time
	d   time.Duration
}

func newPoller(t testing.TB) *poller { return &poller{end: Deadline(t), d: time.Millisecond} }

// next sleeps and reports false once the deadline has passed.
func (p *poller) next() bool {
	if !p.end.IsZero() && time.Now().After(p.end) {
		return false
	}
	time.Sleep(p.d)
	p.d = min(2*p.d, 50*time.Millisecond)
	return true
}

// Until waits until cond holds. what names the condition in the report.
func Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for p := newPoller(t); !cond(); {
		if !p.next() {
			t.Fatalf("still waiting for %s at the test deadline", what)
		}
	}
}

// UntilState waits until cond holds; cond also describes the state it
// saw, which the report quotes if the wait never ends.
func UntilState(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	for p := newPoller(t); ; {
		ok, state := cond()
		if ok {
			return
		}
		if !p.next() {
			t.Fatalf("still waiting for %s at the test deadline; last seen: %s", what, state)
		}
	}
}

// Recv waits for a value from ch.
func Recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	var stop <-chan time.Time
	if end := Deadline(t); !end.IsZero() {
		timer := time.NewTimer(time.Until(end))
		defer timer.Stop()
		stop = timer.C
	}
	select {
	case v := <-ch:
		return v
	case <-stop:
		t.Fatalf("still waiting for %s at the test deadline", what)
	}
	var zero T
	return zero
}

// Parked waits until some goroutine is blocked (on a channel, a select, a
// lock or a condition variable) inside a function whose qualified name
// contains fn, e.g. "tcp.(*Conn).Read": the way to know that a call is
// really waiting before the test does what should end the wait.
func Parked(t testing.TB, fn string) {
	t.Helper()
	Until(t, "a goroutine blocked in "+fn, func() bool { return parked(fn) })
}

// parked scans the goroutine dump: each goroutine is a paragraph headed
// "goroutine N [state]:"; a goroutine in a waiting state has a state other
// than running, runnable or syscall.
func parked(fn string) bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		header, body, _ := strings.Cut(string(g), "\n")
		_, state, _ := strings.Cut(header, "[")
		state, _, _ = strings.Cut(state, "]")
		state, _, _ = strings.Cut(state, ",")
		switch state {
		case "running", "runnable", "syscall", "":
			continue
		}
		if strings.Contains(body, fn+"(") {
			return true
		}
	}
	return false
}
