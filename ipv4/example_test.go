package ipv4_test

import (
	"fmt"
	"net/netip"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/ipv4"
	"github.com/tapstack/tapstack/netdev"
	"github.com/tapstack/tapstack/wire"
)

// Two hosts on an in-memory Ethernet: one pings the other through Output
// and sees the reply through its ICMP protocol handler.
func Example() {
	linkA, linkB := driver.NewPipe(driver.PipeConfig{}, driver.PipeConfig{})
	devA, devB := netdev.New(linkA, netdev.Config{}), netdev.New(linkB, netdev.Config{})
	a, b := ipv4.New(devA, ipv4.Config{}), ipv4.New(devB, ipv4.Config{})
	defer devA.Close()
	defer devB.Close()
	a.AddAddress(netip.MustParsePrefix("192.168.7.1/24"))
	b.AddAddress(netip.MustParsePrefix("192.168.7.2/24"))

	replies := make(chan string, 1)
	a.RegisterProtocol(wire.IPProtocolICMP, func(p ipv4.Packet) {
		if m, err := wire.ParseICMPv4(p.Payload); err == nil && m.Type() == wire.ICMPv4EchoReply {
			replies <- fmt.Sprintf("reply from %v seq %d: %s", p.Src, m.Seq(), m.Payload())
		}
	})
	devA.Start()
	devB.Start()

	req := pkt.Get(wire.ICMPv4HeaderLen + 5)
	copy(req.Append(5), "hello")
	wire.PrependICMPv4(req, &wire.ICMPv4Repr{Type: wire.ICMPv4Echo, Rest: wire.EchoRest(1, 1)})
	if err := a.Output(netip.Addr{}, netip.MustParseAddr("192.168.7.2"), wire.IPProtocolICMP, req); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(<-replies)
	// Output: reply from 192.168.7.2 seq 1: hello
}
