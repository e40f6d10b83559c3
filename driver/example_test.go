package driver_test

import (
	"fmt"
	"time"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/internal/clock"
)

// A lossy, slow link for a test: on a virtual clock, delayed frames arrive
// only when the test advances time, so every run is the same.
func ExampleNewPipe() {
	clk := clock.NewVirtual(time.Unix(0, 0))
	a, b := driver.NewPipe(
		driver.PipeConfig{Clock: clk, Impair: driver.Impairment{Seed: 1, Delay: 20 * time.Millisecond, LossPercent: 1}},
		driver.PipeConfig{Clock: clk})
	defer a.Close()
	defer b.Close()
	frame := make([]byte, 60)
	copy(frame, b.MAC())
	a.WriteFrame(0, frame)
	fmt.Println("delivered before 20ms:", a.Stats().Delivered)
	clk.Advance(20 * time.Millisecond)
	fmt.Println("delivered at 20ms:", a.Stats().Delivered)
	n, _ := b.ReadFrame(0, make([]byte, 1514))
	fmt.Println("read", n, "bytes")
	// Output:
	// delivered before 20ms: 0
	// delivered at 20ms: 1
	// read 60 bytes
}

// Impairing a real link in an interop test where the kernel has no netem:
// wrap it (here a pipe end stands in for a TAP) and read and write through
// the wrapper.
func ExampleNewImpaired() {
	clk := clock.NewVirtual(time.Unix(0, 0))
	tapLike, peer := driver.NewPipe(driver.PipeConfig{}, driver.PipeConfig{})
	defer peer.Close()
	link := driver.NewImpaired(tapLike, driver.ImpairConfig{
		Send:  driver.Impairment{Seed: 1, Delay: 10 * time.Millisecond},
		Recv:  driver.Impairment{Seed: 2, LossPercent: 100},
		Clock: clk,
	})
	defer link.Close()
	frame := make([]byte, 60)
	copy(frame, peer.MAC())
	link.WriteFrame(0, frame)
	clk.Advance(10 * time.Millisecond)
	n, _ := peer.ReadFrame(0, make([]byte, 1514))
	fmt.Println("peer read", n, "bytes after 10ms; sent", link.SendStats().Sent)
	// Output:
	// peer read 60 bytes after 10ms; sent 1
}
