package stack_test

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"github.com/tapstack/tapstack/clock"
	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/stack"
)

// A deterministic test of the retransmission timeout. Both stacks and the
// link between them share one virtual clock; the server's end of the link is
// cut, so the client's write is never acknowledged. Its timers fire only
// when the test advances the clock: in the first virtual second a tail loss
// probe and two backed-off RTOs; within the minute tcp_retries2 gives up and
// the connection fails with ETIMEDOUT. Nothing sleeps, so the minute takes
// microseconds and the counts are the same on every run.
func ExampleConfig_clock() {
	clk := clock.NewVirtual(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	left, right := driver.NewPipe(driver.PipeConfig{Clock: clk}, driver.PipeConfig{Clock: clk})
	server, _ := stack.New(stack.Config{Clock: clk})
	defer server.Close()
	// tcp_retries2 = 3 instead of Linux's 15 gives up after seconds, not minutes.
	client, _ := stack.New(stack.Config{Clock: clk, Sysctls: map[string]string{"net.ipv4.tcp_retries2": "3"}})
	defer client.Close()
	server.Attach(left, netip.MustParsePrefix("10.9.0.1/24"))
	client.Attach(right, netip.MustParsePrefix("10.9.0.2/24"))

	ln, _ := server.Listen("tcp", ":7")
	defer ln.Close()
	c, err := client.Dial("tcp", "10.9.0.1:7")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	// Accept returns once the server has the handshake's last ACK: no frame
	// is in flight when the link is cut.
	sc, _ := ln.Accept()
	defer sc.Close()

	left.Close() // the server vanishes without a FIN or RST
	c.Write([]byte("hello"))

	counter := func(name string) uint64 { n, _ := client.Stats().Get(name); return n }
	fmt.Println("before Advance:", counter("TcpRetransSegs"), "retransmissions")
	clk.Advance(time.Second)
	fmt.Println("after 1s:", counter("TcpRetransSegs"), "retransmissions")
	clk.Advance(time.Minute)
	fmt.Println("after 1m:", counter("TcpRetransSegs"), "retransmissions,",
		counter("TcpExtTCPAbortOnTimeout"), "abort on timeout")

	_, err = c.Read(make([]byte, 1))
	var errno syscall.Errno
	if errors.As(err, &errno) {
		fmt.Println("read:", errno)
	}
	// Output:
	// before Advance: 0 retransmissions
	// after 1s: 3 retransmissions
	// after 1m: 5 retransmissions, 1 abort on timeout
	// read: connection timed out
}
