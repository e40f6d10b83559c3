package sockwait

import (
	"fmt"
	"sync"
	"testing"

	"github.com/tapstack/tapstack/internal/testenv/testwait"
)

// TestWaiterFirstSleepNeverBlocks: the first Get, racing with wakes from
// another goroutine, returns a channel that is ready (a recheck) and never
// blocks itself, however the wakes interleave with the channel's creation.
func TestWaiterFirstSleepNeverBlocks(t *testing.T) {
	for i := range 20000 {
		var w Waiter
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				w.Wake()
			}
		}()
		got := make(chan chan struct{}, 1)
		go func() { got <- w.Get() }()
		ch := testwait.Recv(t, got, fmt.Sprintf("iteration %d: get to return (a get that blocks is the bug)", i))
		// Nobody else takes from the channel: the token get left (or a
		// wake's) must be there now.
		select {
		case <-ch:
		default:
			t.Fatalf("iteration %d: the first sleep was not a recheck", i)
		}
		wg.Wait()
	}
}
