package tcp_test

import (
	"context"
	"fmt"
	"io"
	"net/netip"

	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/tcp"
)

// wire is a toy Network joining stacks in memory; in a real program the
// stack package wires tcp to the IPv4 layer instead.
type wire struct {
	addr   netip.Addr
	stacks map[netip.Addr]*tcp.Stack
	queue  chan func()
}

func (w *wire) Route(netip.Addr) (netip.Addr, int, error) { return w.addr, 1500, nil }

func (w *wire) Output(src, dst netip.Addr, proto uint8, b *pkt.Buffer) error {
	to := w.stacks[dst]
	w.queue <- func() { to.Deliver(src, dst, b.Bytes(), 0, false); b.Release() }
	return nil
}

func Example() {
	stacks := map[netip.Addr]*tcp.Stack{}
	queue := make(chan func(), 1024)
	go func() {
		for f := range queue {
			f()
		}
	}()
	server := netip.MustParseAddr("10.0.0.2")
	client := netip.MustParseAddr("10.0.0.1")
	for _, a := range []netip.Addr{server, client} {
		stacks[a] = tcp.New(tcp.Config{Network: &wire{addr: a, stacks: stacks, queue: queue}})
	}

	ln, _ := stacks[server].Listen(netip.AddrPortFrom(server, 7), 128)
	go func() {
		c, _ := ln.Accept()
		io.Copy(c, c) // echo until the client half-closes
		c.Close()
	}()

	c, err := stacks[client].Dial(context.Background(), netip.AddrPort{}, netip.AddrPortFrom(server, 7))
	if err != nil {
		panic(err)
	}
	c.Write([]byte("hello, tapstack"))
	c.CloseWrite()
	reply, _ := io.ReadAll(c)
	c.Close()
	fmt.Printf("%s\n", reply)

	var opens uint64
	stacks[server].Counters(func(name string, v uint64) {
		if name == "TcpPassiveOpens" {
			opens = v
		}
	})
	fmt.Println("TcpPassiveOpens", opens)
	// Output:
	// hello, tapstack
	// TcpPassiveOpens 1
}
