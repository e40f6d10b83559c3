package udp

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"
)

// TestDualStackSockets: a socket on [::] takes IPv6 datagrams and, unless
// IPV6_V6ONLY, IPv4 ones for which no IPv4 socket holds the port; it
// conflicts with 0.0.0.0 on the port unless V6Only; a 0.0.0.0 socket
// never takes IPv6; an IPv6 datagram without a checksum is dropped
// (counted) while an IPv4 one is taken; replies go out over the family
// they came in on, and an IPv4 socket cannot send to an IPv6 address.
func TestDualStackSockets(t *testing.T) {
	n := &capNet{}
	s := New(Config{Network: n})
	any6 := netip.AddrPortFrom(netip.IPv6Unspecified(), 53)
	dual, err := s.Listen(any6)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Listen(netip.AddrPortFrom(netip.IPv4Unspecified(), 53)); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("0.0.0.0:53 beside a dual-stack [::]:53: %v, want EADDRINUSE", err)
	}
	v6, v4 := netip.MustParseAddrPort("[fd00::2]:4000"), netip.MustParseAddrPort("10.0.0.1:4000")
	us6, us4 := netip.MustParseAddrPort("[fd00::1]:53"), netip.MustParseAddrPort("10.0.0.2:53")
	buf := make([]byte, 16)
	for _, tc := range []struct{ from, to netip.AddrPort }{{v6, us6}, {v4, us4}} {
		if v := s.Deliver(tc.from.Addr(), tc.to.Addr(), datagram(tc.from, tc.to, "q"), false, false); v != Delivered {
			t.Fatalf("%v → %v: %v", tc.from, tc.to, v)
		}
		k, from, err := dual.ReadFromUDPAddrPort(buf)
		if err != nil || from != tc.from || string(buf[:k]) != "q" {
			t.Fatalf("dual-stack read %q from %v (%v), want q from %v", buf[:k], from, err, tc.from)
		}
		if _, err := dual.WriteToUDPAddrPort([]byte("a"), from); err != nil {
			t.Fatalf("reply to %v: %v", from, err)
		}
	}
	// The v6 datagram's checksum is over the v6 pseudo-header: the capture
	// re-parses it, and a zero checksum is refused over IPv6.
	dg := datagram(v6, us6, "z")
	dg[6], dg[7] = 0, 0
	inErr := s.Counter("UdpInErrors")
	if v := s.Deliver(v6.Addr(), us6.Addr(), dg, false, false); v != Dropped || s.Counter("UdpInErrors") != inErr+1 {
		t.Fatalf("IPv6 datagram without checksum: %v, InErrors +%d; want Dropped, +1", v, s.Counter("UdpInErrors")-inErr)
	}
	dual.Close()

	only, err := s.ListenOpts(any6, ListenOptions{V6Only: true})
	if err != nil {
		t.Fatal(err)
	}
	l4, err := s.Listen(netip.AddrPortFrom(netip.IPv4Unspecified(), 53))
	if err != nil {
		t.Fatalf("0.0.0.0:53 beside a V6Only [::]:53: %v", err)
	}
	s.Deliver(v4.Addr(), us4.Addr(), datagram(v4, us4, "4"), false, false)
	s.Deliver(v6.Addr(), us6.Addr(), datagram(v6, us6, "6"), false, false)
	if k, _, _ := l4.ReadFromUDPAddrPort(buf); string(buf[:k]) != "4" {
		t.Fatalf("0.0.0.0 socket read %q, want the IPv4 datagram", buf[:k])
	}
	if k, _, _ := only.ReadFromUDPAddrPort(buf); string(buf[:k]) != "6" {
		t.Fatalf("V6Only socket read %q, want the IPv6 datagram", buf[:k])
	}
	if _, err := l4.WriteToUDPAddrPort([]byte("x"), v6); !errors.Is(err, syscall.EAFNOSUPPORT) {
		t.Fatalf("an IPv4 socket sending to IPv6: %v, want EAFNOSUPPORT", err)
	}
	if _, err := only.WriteToUDPAddrPort([]byte("x"), v4); !errors.Is(err, syscall.ENETUNREACH) {
		t.Fatalf("a V6Only socket sending to IPv4: %v, want ENETUNREACH", err)
	}
	if _, err := s.ListenOpts(netip.AddrPortFrom(netip.IPv4Unspecified(), 99), ListenOptions{V6Only: true}); !errors.Is(err, syscall.ENOPROTOOPT) {
		t.Fatalf("V6Only on 0.0.0.0: %v, want ENOPROTOOPT", err)
	}
	if len(n.out) != 2 || n.out[0].to != v6 || n.out[0].from != netip.MustParseAddrPort("[fd00::1]:53") || n.out[1].to != v4 {
		t.Fatalf("replies %+v", n.out)
	}
}
