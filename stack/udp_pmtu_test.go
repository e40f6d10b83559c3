package stack_test

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/testenv/testwait"
	"github.com/tapstack/tapstack/stack"
	"github.com/tapstack/tapstack/udp"
	"github.com/tapstack/tapstack/wire"
)

// fragNeeded is the ICMP a router sends back for a DF datagram from src:sport
// to dst:dport that exceeds its next-hop MTU.
func fragNeeded(router, src, dst netip.Addr, sport, dport uint16, mtu int) []byte {
	quoted := ipv4Packet(src, dst, wire.IPProtocolUDP, make([]byte, 8))
	binary.BigEndian.PutUint16(quoted[20:], sport)
	binary.BigEndian.PutUint16(quoted[22:], dport)
	binary.BigEndian.PutUint16(quoted[24:], 1208)
	icmp := make([]byte, 8+len(quoted))
	icmp[0], icmp[1] = wire.ICMPv4DestUnreach, wire.ICMPv4FragNeeded
	binary.BigEndian.PutUint16(icmp[6:], uint16(mtu))
	copy(icmp[8:], quoted)
	binary.BigEndian.PutUint16(icmp[2:], ^wire.Checksum(icmp, 0))
	return ipv4Packet(router, src, wire.IPProtocolICMP, icmp)
}

// TestUDPPathMTUDiscovery: a connected socket sends with DF while its
// datagrams fit; a router's fragmentation-needed message lowers the path MTU
// (IP_MTU), the socket's next call fails once with EMSGSIZE, and after that
// PMTUDiscWant fragments to the new MTU while PMTUDiscDo refuses what does
// not fit. A PMTUDiscDont socket is not told.
func TestUDPPathMTUDiscovery(t *testing.T) {
	p := newBoundPair(t, nil, nil)
	sink, err := p.b.ListenUDP(netip.AddrPortFrom(netip.Addr{}, 9))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	dial := func() *stack.UDPConn {
		t.Helper()
		nc, err := p.a.Dial("udp", "10.1.0.2:9")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		return nc.(*stack.UDPConn)
	}
	want, dont := dial(), dial()
	dont.SetPMTUDiscover(udp.PMTUDiscDont)
	if mtu, err := want.PathMTU(); err != nil || mtu != 1500 {
		t.Fatalf("IP_MTU before any ICMP: %d %v", mtu, err)
	}
	msg := make([]byte, 1200)
	for _, c := range []*stack.UDPConn{want, dont} {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	// A router on the way has an MTU of 1000 and says so about both.
	for _, c := range []*stack.UDPConn{want, dont} {
		p.inject(fragNeeded(udpB, udpA, udpB, c.LocalAddrPort().Port(), 9, 1000))
	}
	testwait.Until(t, "the path MTU to drop", func() bool {
		mtu, _ := want.PathMTU()
		return mtu == 1000
	})
	deadline := time.Now().Add(time.Until(testwait.Deadline(t)) / 2)
	want.SetReadDeadline(deadline)
	if _, err := want.Read(make([]byte, 1)); !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatalf("connected PMTUDiscWant socket after fragmentation needed: %v, want EMSGSIZE", err)
	}
	creates := counter(t, p.a, "IpFragCreates")
	if _, err := want.Write(msg); err != nil {
		t.Fatalf("the error is reported once: %v", err)
	}
	if d := counter(t, p.a, "IpFragCreates") - creates; d != 2 {
		t.Fatalf("1228 bytes at path MTU 1000: %d fragments, want 2", d)
	}
	// The PMTUDiscDont socket learned nothing and fragments too.
	if _, err := dont.Write(msg); err != nil {
		t.Fatalf("PMTUDiscDont socket: %v, want no error", err)
	}
	want.SetPMTUDiscover(udp.PMTUDiscDo)
	if _, err := want.Write(msg); !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatalf("PMTUDiscDo, 1228 bytes over path MTU 1000: %v, want EMSGSIZE", err)
	}
	if _, err := want.Write(msg[:1000-28]); err != nil {
		t.Fatalf("PMTUDiscDo, exactly the path MTU: %v", err)
	}
	// The sink receives, whole: two 1200-byte datagrams sent with DF before
	// the ICMP (tapstack's pipe has no router to drop them), two fragmented
	// after it, and the 972 bytes that fit.
	sink.SetReadDeadline(deadline)
	buf := make([]byte, 2000)
	for i, w := range []int{1200, 1200, 1200, 1200, 972} {
		n, _, err := sink.ReadFromUDPAddrPort(buf)
		if err != nil || n != w {
			t.Fatalf("datagram %d at the sink: %d bytes, %v; want %d", i, n, err, w)
		}
	}
}
