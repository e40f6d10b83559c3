package udp

import (
	"errors"
	"net/netip"
	"sync"
	"syscall"
	"testing"

	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/wire"
)

// capNet records what the stack sends.
type capNet struct {
	mu  sync.Mutex
	out []sent
}

type sent struct {
	from, to netip.AddrPort
	data     string
}

func (n *capNet) OutputPMTU(src, dst netip.Addr, _ uint8, _ PMTUDisc, b *pkt.Buffer) error {
	u, _ := wire.ParseUDP(b.Bytes())
	n.mu.Lock()
	n.out = append(n.out, sent{netip.AddrPortFrom(src, u.SrcPort()), netip.AddrPortFrom(dst, u.DstPort()), string(u.Payload())})
	n.mu.Unlock()
	b.Release()
	return nil
}

func (n *capNet) Route(dst netip.Addr) (netip.Addr, int, error) {
	if dst.Is6() {
		return netip.MustParseAddr("fd00::1"), 1500, nil
	}
	return netip.MustParseAddr("10.0.0.2"), 1500, nil
}

func datagram(from, to netip.AddrPort, data string) []byte {
	b := pkt.Get(len(data))
	copy(b.Append(len(data)), data)
	wire.PrependUDP(b, from, to)
	return append([]byte(nil), b.Bytes()...)
}

// TestForwarderFlows: the first datagram of a flow nobody holds calls the
// handler once with its four-tuple; the endpoint it creates is bound to
// the destination the peer used and connected to the peer, holds that
// datagram and the flow's next ones, and replies from that destination.
// Two peers' flows to one destination are separate endpoints; a flow the
// handler leaves alone is dropped without ICMP (Ignored, UdpNoPorts); a
// bound socket keeps its own datagrams; Close ends the forwarding.
func TestForwarderFlows(t *testing.T) {
	n := &capNet{}
	s := New(Config{Network: n})
	dns := netip.MustParseAddrPort("10.99.0.53:53")
	peerA, peerB := netip.MustParseAddrPort("10.0.0.1:4000"), netip.MustParseAddrPort("10.0.0.1:4001")
	var calls []netip.AddrPort
	eps := map[netip.AddrPort]*Conn{}
	f, err := s.NewForwarder(func(r *ForwarderRequest) {
		local, remote := r.ID()
		if local != dns {
			t.Errorf("request for %v, want %v", local, dns)
		}
		calls = append(calls, remote)
		if remote == netip.MustParseAddrPort("10.0.0.9:9") {
			return // refused: no endpoint
		}
		c, err := r.CreateEndpoint()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.CreateEndpoint(); !errors.Is(err, errEndpointMade) {
			t.Errorf("a second CreateEndpoint: %v", err)
		}
		eps[remote] = c
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.NewForwarder(func(*ForwarderRequest) {}); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("a second forwarder: %v, want EADDRINUSE", err)
	}
	deliver := func(from netip.AddrPort, data string) Verdict {
		return s.Deliver(from.Addr(), dns.Addr(), datagram(from, dns, data), false, false)
	}
	for i, d := range []struct {
		from netip.AddrPort
		data string
	}{{peerA, "a1"}, {peerA, "a2"}, {peerB, "b1"}, {peerA, "a3"}} {
		if v := deliver(d.from, d.data); v != Delivered {
			t.Fatalf("datagram %d: %v, want Delivered", i, v)
		}
	}
	if len(calls) != 2 || calls[0] != peerA || calls[1] != peerB {
		t.Fatalf("handler calls %v, want one per flow: %v then %v", calls, peerA, peerB)
	}
	buf := make([]byte, 16)
	for peer, want := range map[netip.AddrPort][]string{peerA: {"a1", "a2", "a3"}, peerB: {"b1"}} {
		c := eps[peer]
		if c.LocalAddrPort() != dns || c.RemoteAddrPort() != peer {
			t.Fatalf("endpoint %v → %v, want %v → %v", c.LocalAddrPort(), c.RemoteAddrPort(), dns, peer)
		}
		for _, w := range want {
			k, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil || from != peer || string(buf[:k]) != w {
				t.Fatalf("flow %v read %q from %v (%v), want %q", peer, buf[:k], from, err, w)
			}
		}
		if _, err := c.Write([]byte("re")); err != nil {
			t.Fatal(err)
		}
	}
	if len(n.out) != 2 || n.out[0].from != dns || n.out[1].from != dns {
		t.Fatalf("replies %+v, want two from %v", n.out, dns)
	}
	ss := 0
	for _, si := range s.Sockets() {
		if si.Local == dns && si.State == "ESTAB" {
			ss++
		}
	}
	if ss != 2 {
		t.Fatalf("ss lists %d forwarded flows, want 2", ss)
	}

	// Refused by the handler: dropped, no ICMP asked for, counted.
	noPorts := s.Counter("UdpNoPorts")
	if v := deliver(netip.MustParseAddrPort("10.0.0.9:9"), "x"); v != Ignored || s.Counter("UdpNoPorts") != noPorts+1 {
		t.Fatalf("a refused flow: %v, NoPorts +%d; want Ignored, +1", v, s.Counter("UdpNoPorts")-noPorts)
	}
	// A socket bound to the port takes the new flows; the forwarded ones
	// stay with their endpoints.
	l, err := s.Listen(netip.AddrPortFrom(netip.IPv4Unspecified(), 53))
	if err != nil {
		t.Fatalf("binding the forwarded port: %v", err)
	}
	deliver(netip.MustParseAddrPort("10.0.0.1:4002"), "c1")
	deliver(peerA, "a4")
	if k, from, err := l.ReadFromUDPAddrPort(buf); err != nil || string(buf[:k]) != "c1" || from.Port() != 4002 {
		t.Fatalf("bound socket read %q from %v (%v)", buf[:k], from, err)
	}
	if k, _, _ := eps[peerA].ReadFromUDPAddrPort(buf); string(buf[:k]) != "a4" {
		t.Fatalf("flow A read %q, want a4", buf[:k])
	}
	if len(calls) != 3 {
		t.Fatalf("%d handler calls, want 3 (the bound socket's flow is not offered)", len(calls))
	}
	// A closed endpoint frees its four-tuple; Close ends forwarding.
	eps[peerB].Close()
	l.Close()
	deliver(peerB, "b2")
	if len(calls) != 4 || calls[3] != peerB {
		t.Fatalf("after its endpoint closed, flow B was not offered again: %v", calls)
	}
	f.Close()
	if v := deliver(netip.MustParseAddrPort("10.0.0.1:4003"), "d"); v != NoPort {
		t.Fatalf("after Close: %v, want NoPort", v)
	}
}
