// Package cpupin runs a function on one CPU, for tests that rely on the
// kernel handling what one CPU sent in order: a packet a thread writes to
// a veth, a loopback route or a raw socket is queued on that CPU's backlog
// (netif_rx, enqueue_to_backlog with RPS off) and that backlog is handled
// in order (process_backlog), each packet to the end. Packets written from
// two CPUs are not ordered with each other.
package cpupin

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// Run calls fn with the calling goroutine locked to its thread and the
// thread bound to one of the CPUs it may run on. The thread's affinity is
// restored afterwards, even if fn exits its goroutine (t.Fatal); if that
// fails the thread is not handed back to the scheduler.
func Run(fn func() error) (err error) {
	runtime.LockOSThread()
	var saved, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &saved); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	for cpu := 0; cpu < len(saved)*64; cpu++ {
		if saved.IsSet(cpu) {
			one.Set(cpu)
			break
		}
	}
	defer func() {
		if rerr := unix.SchedSetaffinity(0, &saved); rerr != nil {
			if err == nil {
				err = rerr
			}
			return // still locked: the goroutine's end retires the thread
		}
		runtime.UnlockOSThread()
	}()
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		return err
	}
	return fn()
}
