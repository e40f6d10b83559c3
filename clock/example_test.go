package clock_test

import (
	"fmt"
	"time"

	"github.com/tapstack/tapstack/clock"
)

// Timers on a virtual clock fire inside Advance, in deadline order, each
// seeing Now() at its own deadline; a stopped timer never fires.
func ExampleVirtual() {
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := clock.NewVirtual(start)
	at := func(name string) func() {
		return func() { fmt.Println(name, "at", clk.Now().Sub(start)) }
	}
	clk.AfterFunc(3*time.Second, at("keepalive"))
	clk.AfterFunc(200*time.Millisecond, at("rto"))
	clk.AfterFunc(time.Second, at("never")).Stop()

	fmt.Println("pending:", clk.Pending())
	clk.Advance(5 * time.Second)
	fmt.Println("now:", clk.Now().Sub(start))
	// Output:
	// pending: 2
	// rto at 200ms
	// keepalive at 3s
	// now: 5s
}
