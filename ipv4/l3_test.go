package ipv4

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
	"github.com/tapstack/tapstack/netdev"
	"github.com/tapstack/tapstack/wire"
)

// l3Peer is an IPv4 layer on a netdev device over a Channel.
type l3Peer struct {
	ch  *driver.Channel
	dev *netdev.Device
	l   *Layer
}

func newL3Peer(t *testing.T, addr string, mtu int) *l3Peer {
	ch := driver.NewChannel(driver.ChannelConfig{MTU: mtu})
	dev := netdev.New(ch, netdev.Config{Shards: 2})
	l := New(dev, Config{})
	if err := l.AddAddress(netip.MustParsePrefix(addr)); err != nil {
		t.Fatal(err)
	}
	dev.Start()
	l.Start()
	t.Cleanup(func() { l.Close(); dev.Close() })
	return &l3Peer{ch, dev, l}
}

// bridgeL3 carries what each channel's stack sends to the other, and
// reports any packet that is not IPv4 (an ARP frame, an Ethernet header).
func bridgeL3(t *testing.T, a, b *driver.Channel) <-chan string {
	bad := make(chan string, 16)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	carry := func(from, to *driver.Channel) {
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			n, err := from.Read(ctx, buf)
			if err != nil {
				return
			}
			if n < wire.IPv4MinHeaderLen || buf[0]>>4 != 4 {
				select {
				case bad <- fmt.Sprintf("% x", buf[:min(n, 16)]):
				default:
				}
			}
			to.Inject(buf[:n])
		}
	}
	wg.Add(2)
	go carry(a, b)
	go carry(b, a)
	t.Cleanup(func() { cancel(); wg.Wait() })
	return bad
}

// TestPingOverL3Channels joins two IPv4 layers by channels that carry bare
// IP packets: echo requests get replies both ways (one fragmented and
// reassembled, one to our own address over the loopback path), yet no ARP
// is ever sent, the neighbour tables stay empty and nothing waits for
// resolution (NUD_NOARP).
func TestPingOverL3Channels(t *testing.T) {
	a := newL3Peer(t, "10.9.0.1/24", 1500)
	b := newL3Peer(t, "10.9.0.2/24", 1500)
	bad := bridgeL3(t, a.ch, b.ch)
	repliesA, repliesB := echoReplies(a.l), echoReplies(b.l)
	for seq := range uint16(3) {
		sendEcho(t, a.l, netip.MustParseAddr("10.9.0.2"), seq)
		if got := testwait.Recv(t, repliesA, fmt.Sprintf("b's reply to echo %d", seq)); got != seq {
			t.Fatalf("reply seq %d, want %d", got, seq)
		}
	}
	sendEcho(t, b.l, netip.MustParseAddr("10.9.0.1"), 9)
	if got := testwait.Recv(t, repliesB, "a's reply"); got != 9 {
		t.Fatalf("reply seq %d", got)
	}
	sendEcho(t, a.l, netip.MustParseAddr("10.9.0.1"), 11) // our own address: lo
	if got := testwait.Recv(t, repliesA, "a's reply to itself"); got != 11 {
		t.Fatalf("reply seq %d", got)
	}
	big := pkt.Get(4000)
	big.Append(4000)
	wire.PrependICMPv4(big, &wire.ICMPv4Repr{Type: wire.ICMPv4Echo, Rest: wire.EchoRest(1, 12)})
	if err := a.l.Output(netip.Addr{}, netip.MustParseAddr("10.9.0.2"), wire.IPProtocolICMP, big); err != nil {
		t.Fatal(err)
	}
	if got := testwait.Recv(t, repliesA, "b's reply to a fragmented echo"); got != 12 {
		t.Fatalf("reply seq %d", got)
	}
	if a.l.Counter("IpReasmOKs") != 1 || b.l.Counter("IpReasmOKs") != 1 {
		t.Fatalf("reassembled: a %d b %d", a.l.Counter("IpReasmOKs"), b.l.Counter("IpReasmOKs"))
	}
	select {
	case p := <-bad:
		t.Fatalf("a non-IPv4 packet crossed an L3 link: %s", p)
	default:
	}
	for _, p := range []*l3Peer{a, b} {
		if n := p.l.Neighbours(); len(n) != 0 {
			t.Fatalf("neighbour table on an L3 device: %+v", n)
		}
		if c := p.l.Counter("ArpCacheAllocs"); c != 0 {
			t.Fatalf("ArpCacheAllocs = %d", c)
		}
	}
}

// TestL3GatewayRouteSendsDirect: a route through a gateway on an L3
// device sends straight to the device too (a point-to-point link has one
// peer; nothing resolves the gateway).
func TestL3GatewayRouteSendsDirect(t *testing.T) {
	a := newL3Peer(t, "10.9.0.1/24", 1500)
	if err := a.l.AddRoute(netip.MustParsePrefix("0.0.0.0/0"), netip.MustParseAddr("10.9.0.254")); err != nil {
		t.Fatal(err)
	}
	sendEcho(t, a.l, netip.MustParseAddr("198.51.100.7"), 1)
	buf := make([]byte, 2048)
	n, err := a.ch.Read(context.Background(), buf)
	if err != nil {
		t.Fatal(err)
	}
	h, err := wire.ParseIPv4Header(buf[:n])
	if err != nil || h.Dst() != netip.MustParseAddr("198.51.100.7") || h.Protocol() != wire.IPProtocolICMP {
		t.Fatalf("sent % x (%v)", buf[:n], err)
	}
	if len(a.l.Neighbours()) != 0 {
		t.Fatalf("neighbours %+v", a.l.Neighbours())
	}
}
