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
	"fmt"
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

// SecondsLeft is the time until Deadline(t) in whole seconds (at least 1;
// a day without a deadline): the timeout to give a tool that insists on
// one (ping -w, curl --max-time), so that it waits as long as the test.
func SecondsLeft(t testing.TB) int {
	end := Deadline(t)
	if end.IsZero() {
		return 86400
	}
	return max(int(time.Until(end)/time.Second), 1)
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

// UntilReport waits until cond holds; if it never does, the report names
// what and quotes report(), which is called only then (for a state that
// is costly to describe).
func UntilReport(t testing.TB, what string, cond func() bool, report func() string) {
	t.Helper()
	for p := newPoller(t); !cond(); {
		if !p.next() {
			t.Fatalf("still waiting for %s at the test deadline; %s", what, report())
		}
	}
}

// Recv waits for a value from ch.
func Recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	v, _ := RecvOK(t, ch, what)
	return v
}

// RecvOK waits for a value from ch, or for ch to be closed (ok false).
func RecvOK[T any](t testing.TB, ch <-chan T, what string) (v T, ok bool) {
	t.Helper()
	var stop <-chan time.Time
	if end := Deadline(t); !end.IsZero() {
		timer := time.NewTimer(time.Until(end))
		defer timer.Stop()
		stop = timer.C
	}
	select {
	case v, ok = <-ch:
		return v, ok
	case <-stop:
		t.Fatalf("still waiting for %s at the test deadline", what)
	}
	return v, false
}

// Parked waits until some goroutine is blocked (on a channel, a select, a
// lock, a condition variable, the network poller or a system call) inside
// a function whose qualified name contains fn, e.g. "tcp.(*Conn).Read":
// the way to know that a call is really waiting before the test does what
// should end the wait.
func Parked(t testing.TB, fn string) {
	t.Helper()
	ParkedN(t, fn, 1)
}

// ParkedN waits until n goroutines are blocked inside fn (see Parked).
func ParkedN(t testing.TB, fn string, n int) {
	t.Helper()
	UntilState(t, fmt.Sprintf("%d goroutines blocked in %s", n, fn), func() (bool, string) {
		k := parked(fn)
		return k >= n, fmt.Sprintf("%d blocked", k)
	})
}

// parked counts, in the goroutine dump, the goroutines in a waiting state
// inside fn. Each goroutine is a paragraph headed "goroutine N [state]:";
// a waiting one has a state other than running or runnable ("syscall"
// included: a read of a device the poller does not handle blocks there).
func parked(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	n := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		header, body, _ := strings.Cut(string(g), "\n")
		_, state, _ := strings.Cut(header, "[")
		state, _, _ = strings.Cut(state, "]")
		state, _, _ = strings.Cut(state, ",")
		switch state {
		case "running", "runnable", "":
			continue
		}
		if strings.Contains(body, fn+"(") || strings.Contains(body, fn+".func") { // the function or a closure in it
			n++
		}
	}
	return n
}
