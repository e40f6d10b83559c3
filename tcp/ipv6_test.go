package tcp

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/tapstack/tapstack/wire"
)

var (
	h6Local = netip.MustParseAddr("fd00::1")
	h6Peer  = netip.MustParseAddr("fd00::2")
)

func syn6(port, dport uint16, mss uint16) seg {
	return seg{src: port, dst: dport, to: h6Local, seq: 1000, flags: fS, opts: &wire.TCPOptions{MSS: mss, HasMSS: true, WScale: -1}}
}

// TestIPv6Handshake: over IPv6 the listen path is the same code: the
// SYN-ACK comes from the v6 address with the MSS an IPv6 MTU leaves (1500 −
// 40 − 20), checksummed over the v6 pseudo-header (the harness verifies
// every segment), the child carries data, and the established hash finds
// it by its v6 four-tuple.
func TestIPv6Handshake(t *testing.T) {
	h := newHarness(t, nil)
	l, err := h.s.Listen(netip.AddrPortFrom(netip.IPv6Unspecified(), 80), 8)
	if err != nil {
		t.Fatal(err)
	}
	h.injectFrom(h6Peer, syn6(5000, 80, 1440))
	e := h.expect().SYNACK().Ack(1001).MSS(1440).From(h6Local)
	h.injectFrom(h6Peer, seg{src: 5000, dst: 80, to: h6Local, seq: 1001, ack: e.seg.Seq() + 1, flags: fA, data: []byte("v6")})
	c, err := l.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	if c.LocalAddrPort() != netip.AddrPortFrom(h6Local, 80) || c.RemoteAddrPort() != netip.AddrPortFrom(h6Peer, 5000) {
		t.Fatalf("child %v → %v", c.RemoteAddrPort(), c.LocalAddrPort())
	}
	buf := make([]byte, 4)
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "v6" {
		t.Fatalf("read %q %v", buf[:n], err)
	}
	h.drain()
	if _, err := c.Write([]byte("back")); err != nil {
		t.Fatal(err)
	}
	h.expect().Payload("back").From(h6Local)
	if c.snd.mss != 1440 {
		t.Fatalf("send MSS %d, want 1440", c.snd.mss)
	}
}

// TestDualStackListener: a listener on [::] takes IPv4 connections too
// (with plain IPv4 addresses) unless IPV6_V6ONLY, and an IPv4 wildcard
// listener on the port comes first for IPv4, as compute_score ranks an
// AF_INET socket above a dual-stack one. V6Only on an IPv4 address is
// refused as Linux refuses IPV6_V6ONLY on an AF_INET socket.
func TestDualStackListener(t *testing.T) {
	h := newHarness(t, nil)
	dual, _ := h.s.Listen(netip.AddrPortFrom(netip.IPv6Unspecified(), 80), 8)
	only, err := h.s.ListenOpts(netip.AddrPortFrom(netip.IPv6Unspecified(), 81), 8, ListenOptions{V6Only: true})
	if err != nil {
		t.Fatal(err)
	}
	h.inject(seg{src: 6000, dst: 80, seq: 1000, flags: fS, opts: &wire.TCPOptions{MSS: 1460, HasMSS: true, WScale: -1}})
	e := h.expect().SYNACK().MSS(1460).From(hLocal)
	h.inject(seg{src: 6000, dst: 80, seq: 1001, ack: e.seg.Seq() + 1, flags: fA})
	if c, err := dual.AcceptTCP(); err != nil || c.LocalAddrPort() != netip.AddrPortFrom(hLocal, 80) {
		t.Fatalf("dual-stack listener's IPv4 child: %v %v", c, err)
	}
	h.inject(seg{src: 6001, dst: 81, seq: 1000, flags: fS, opts: &wire.TCPOptions{MSS: 1460, HasMSS: true, WScale: -1}})
	h.expect().RST()
	h.injectFrom(h6Peer, syn6(6002, 81, 1440))
	h.expect().SYNACK().From(h6Local)
	if syn, _ := only.QueueLens(); syn != 1 {
		t.Fatalf("V6Only listener's SYN queue %d, want its IPv6 request", syn)
	}
	v4, _ := h.s.Listen(netip.AddrPortFrom(netip.IPv4Unspecified(), 80), 8)
	h.inject(seg{src: 6003, dst: 80, seq: 1000, flags: fS, opts: &wire.TCPOptions{MSS: 1460, HasMSS: true, WScale: -1}})
	h.expect().SYNACK()
	if syn, _ := v4.QueueLens(); syn != 1 {
		t.Fatal("an IPv4 SYN went to the dual-stack listener although an IPv4 one holds the port")
	}
	if _, err := h.s.ListenOpts(netip.AddrPortFrom(hLocal, 90), 8, ListenOptions{V6Only: true}); !errors.Is(err, syscall.ENOPROTOOPT) {
		t.Fatalf("V6Only on an IPv4 address: %v, want ENOPROTOOPT", err)
	}
}

// TestIPv6Syncookies: with cookies always on, an IPv6 SYN gets a cookie
// from Linux's IPv6 MSS table (its 1280-byte minimum MTU: 1220 for a small
// MSS), and the returning ACK makes the child with the MSS the cookie
// encoded.
func TestIPv6Syncookies(t *testing.T) {
	h := newHarness(t, func(s *Sysctls) { s.Syncookies.Store(2) })
	l, _ := h.s.Listen(netip.AddrPortFrom(netip.IPv6Unspecified(), 80), 8)
	for i, tc := range []struct{ mss, want uint16 }{{536, 1220}, {1440, 1440}, {8960, 8940}} {
		p := uint16(7000 + i)
		h.injectFrom(h6Peer, syn6(p, 80, tc.mss))
		e := h.expect().SYNACK().MSS(1440) // ours; the cookie carries the peer's

		h.injectFrom(h6Peer, seg{src: p, dst: 80, to: h6Local, seq: 1001, ack: e.seg.Seq() + 1, flags: fA})
		c, err := l.AcceptTCP()
		if err != nil || c.RemoteAddrPort().Port() != p {
			t.Fatalf("cookie child for MSS %d: %v %v", tc.mss, c, err)
		}
		if c.snd.peerMSS != int(tc.want) {
			t.Fatalf("peer MSS %d from the cookie, want %d (the IPv6 table's entry for %d)", c.snd.peerMSS, tc.want, tc.mss)
		}
	}
	if h.s.Counter("TcpExtSyncookiesRecv") != 3 {
		t.Fatalf("SyncookiesRecv %d, want 3", h.s.Counter("TcpExtSyncookiesRecv"))
	}
}
