package testwait

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestUntilWaitsForTheCondition(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 5 {
			time.Sleep(time.Millisecond)
			n.Add(1)
		}
	}()
	Until(t, "five steps", func() bool { return n.Load() == 5 })
	UntilState(t, "five steps", func() (bool, string) { return n.Load() == 5, "" })
}

func TestRecv(t *testing.T) {
	ch := make(chan int)
	go func() { ch <- 7 }()
	if v := Recv(t, ch, "a value"); v != 7 {
		t.Fatalf("got %d", v)
	}
}

//go:noinline
func blockedOnCond(c *sync.Cond, done *bool) {
	c.L.Lock()
	for !*done {
		c.Wait()
	}
	c.L.Unlock()
}

// Parked tells a goroutine that waits from one that has not got there.
func TestParked(t *testing.T) {
	if parked("testwait.blockedOnCond") != 0 {
		t.Fatal("parked before the goroutine exists")
	}
	c := sync.NewCond(new(sync.Mutex))
	done := false
	exited := make(chan struct{})
	go func() { blockedOnCond(c, &done); close(exited) }()
	Parked(t, "testwait.blockedOnCond")
	c.L.Lock()
	done = true
	c.L.Unlock()
	c.Broadcast()
	<-exited
	if parked("testwait.blockedOnCond") != 0 {
		t.Fatal("still parked after it returned")
	}
}

func TestDeadlineBeforeTheBinarys(t *testing.T) {
	end, ok := t.Deadline()
	got := Deadline(t)
	if !ok {
		if !got.IsZero() {
			t.Fatalf("no -timeout, but Deadline is %v", got)
		}
		return
	}
	if !got.Before(end) || !got.After(time.Now()) {
		t.Fatalf("Deadline %v, binary deadline %v", got, end)
	}
}
