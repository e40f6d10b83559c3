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
