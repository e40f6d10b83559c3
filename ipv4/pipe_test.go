package ipv4

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
	"github.com/tapstack/tapstack/netdev"
	"github.com/tapstack/tapstack/wire"
)

// echoReplies registers an ICMP handler on l that reports echo replies.
func echoReplies(l *Layer) chan uint16 {
	ch := make(chan uint16, 16)
	l.RegisterProtocol(wire.IPProtocolICMP, func(p Packet) {
		if m, err := wire.ParseICMPv4(p.Payload); err == nil && m.Type() == wire.ICMPv4EchoReply {
			select {
			case ch <- m.Seq():
			default:
			}
		}
	})
	return ch
}

// sendEcho originates an ICMP echo request through Output.
func sendEcho(t testing.TB, l *Layer, dst netip.Addr, seq uint16) {
	b := pkt.Get(wire.ICMPv4HeaderLen + 16)
	copy(b.Append(16), "tapstack-ipv4-ok")
	wire.PrependICMPv4(b, &wire.ICMPv4Repr{Type: wire.ICMPv4Echo, Rest: wire.EchoRest(0x7a7a, seq)})
	if err := l.Output(netip.Addr{}, dst, wire.IPProtocolICMP, b); err != nil {
		t.Fatal(err)
	}
}

// TestPingOverPipe runs two IPv4 layers on netdev devices joined by the
// in-memory pipe: ARP resolves both ways and echo requests get replies,
// including one that needs fragmentation and reassembly.
func TestPingOverPipe(t *testing.T) {
	la, lb := driver.NewPipe(driver.PipeConfig{}, driver.PipeConfig{})
	da, db := netdev.New(la, netdev.Config{Shards: 2}), netdev.New(lb, netdev.Config{Shards: 2})
	a, b := New(da, Config{}), New(db, Config{})
	da.Start()
	db.Start()
	defer func() { a.Close(); b.Close(); da.Close(); db.Close() }()
	if err := a.AddAddress(netip.MustParsePrefix("10.9.0.1/24")); err != nil {
		t.Fatal(err)
	}
	if err := b.AddAddress(netip.MustParsePrefix("10.9.0.2/24")); err != nil {
		t.Fatal(err)
	}
	a.Start()
	b.Start()
	replies := echoReplies(a)
	for seq := range uint16(3) {
		sendEcho(t, a, netip.MustParseAddr("10.9.0.2"), seq)
		if got := testwait.Recv(t, replies, fmt.Sprintf("the reply to echo %d", seq)); got != seq {
			t.Fatalf("reply seq %d, want %d", got, seq)
		}
	}
	// A 4000-byte echo: fragmented by a, reassembled by b, reply fragmented
	// by b and reassembled by a.
	big := pkt.Get(4000)
	big.Append(4000)
	wire.PrependICMPv4(big, &wire.ICMPv4Repr{Type: wire.ICMPv4Echo, Rest: wire.EchoRest(1, 99)})
	if err := a.Output(netip.Addr{}, netip.MustParseAddr("10.9.0.2"), wire.IPProtocolICMP, big); err != nil {
		t.Fatal(err)
	}
	if got := testwait.Recv(t, replies, "the reply to the fragmented echo"); got != 99 {
		t.Fatalf("reply seq %d", got)
	}
	if b.Counter("IpReasmOKs") != 1 || a.Counter("IpReasmOKs") != 1 || b.Counter("IcmpOutEchoReps") != 4 {
		t.Fatalf("reasm a %d b %d, b echo replies %d", a.Counter("IpReasmOKs"), b.Counter("IpReasmOKs"), b.Counter("IcmpOutEchoReps"))
	}
	for _, n := range b.Neighbours() {
		if n.Addr == netip.MustParseAddr("10.9.0.1") && n.MAC.String() != la.MAC().String() {
			t.Fatalf("b learned %v for a, want %v", n.MAC, la.MAC())
		}
	}
}
