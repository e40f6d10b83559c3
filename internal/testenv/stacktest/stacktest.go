// Package stacktest holds the fixtures the tests of the packages above
// stack share (admin, metrics): stacks over an in-memory pipe in a known
// state.
package stacktest

import (
	"net/netip"
	"testing"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
	"github.com/tapstack/tapstack/stack"
)

// FullAcceptQueue returns a server stack at net.1 of net (a /24 such as
// "10.2.0.0/24") with a listener on port 80, backlog 2, that never accepts,
// and three connections from a client stack at net.2: the accept queue
// holds 3 (backlog+1). Both stacks close when the test ends.
func FullAcceptQueue(t testing.TB, network string) *stack.Stack {
	t.Helper()
	pfx := netip.MustParsePrefix(network)
	srvAddr := pfx.Addr().Next()
	cliAddr := srvAddr.Next()
	la, lb := driver.NewPipe(driver.PipeConfig{}, driver.PipeConfig{})
	srv, err := stack.New(stack.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cli, err := stack.New(stack.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	if err := srv.Attach(la, netip.PrefixFrom(srvAddr, pfx.Bits())); err != nil {
		t.Fatal(err)
	}
	if err := cli.Attach(lb, netip.PrefixFrom(cliAddr, pfx.Bits())); err != nil {
		t.Fatal(err)
	}
	ln, err := srv.ListenTCP(netip.AddrPortFrom(srvAddr, 80), 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	for range 3 {
		c, err := cli.Dial("tcp", netip.AddrPortFrom(srvAddr, 80).String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	// The last handshake completes on the server when its ACK arrives.
	testwait.Until(t, "three connections in the accept queue", func() bool { _, acceptq := ln.QueueLens(); return acceptq == 3 })
	return srv
}
