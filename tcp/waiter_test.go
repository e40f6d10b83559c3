package tcp

import (
	"sync"
	"testing"
	"time"
)

// TestWaiterFirstSleepNeverBlocks: the first get, racing with wakes from
// another goroutine, returns a channel that is ready (a recheck) and never
// blocks itself, however the wakes interleave with the channel's creation.
func TestWaiterFirstSleepNeverBlocks(t *testing.T) {
	for i := range 20000 {
		var w waiter
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				w.wake()
			}
		}()
		got := make(chan chan struct{}, 1)
		go func() { got <- w.get() }()
		select {
		case ch := <-got:
			select {
			case <-ch:
			case <-time.After(5 * time.Second):
				t.Fatalf("iteration %d: the first sleep was not a recheck", i)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("iteration %d: get blocked", i)
		}
		wg.Wait()
	}
}
