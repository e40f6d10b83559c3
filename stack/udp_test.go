package stack_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
	"github.com/tapstack/tapstack/stack"
	"github.com/tapstack/tapstack/udp"
	"github.com/tapstack/tapstack/wire"
	"golang.org/x/net/dns/dnsmessage"
)

var (
	udpA = netip.MustParseAddr("10.1.0.1")
	udpB = netip.MustParseAddr("10.1.0.2")
)

// TestUDPEcho: a connected socket on B talks to an unconnected one on A;
// each datagram arrives whole, with its sender, and is counted once.
func TestUDPEcho(t *testing.T) {
	p := newBoundPair(t, nil, nil)
	pc, err := p.a.ListenPacket("udp", ":7")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go udpEcho(pc)
	c, err := p.b.Dial("udp", "10.1.0.1:7")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(net.PacketConn); !ok {
		t.Fatal("a dialled UDP conn is not a net.PacketConn (net.Resolver needs one)")
	}
	lp := c.LocalAddr().(*net.UDPAddr)
	if lp.Port < 32768 || lp.Port > 60999 || !lp.IP.Equal(net.IPv4(10, 1, 0, 2)) {
		t.Fatalf("local address %v: want 10.1.0.2 and a port from ip_local_port_range", lp)
	}
	buf := make([]byte, 2048)
	for i := range 20 {
		msg := []byte(fmt.Sprintf("datagram %d %s", i, strings.Repeat("x", i*50)))
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(time.Until(testwait.Deadline(t)) / 2))
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != string(msg) {
			t.Fatalf("echo %d: %q %v", i, buf[:n], err)
		}
	}
	// The echo counts its send after the link took the datagram, which
	// may be after the reply has reached B: wait for the counters to get
	// there, then any over-count shows.
	testwait.Until(t, "the echo's last send to be counted", func() bool {
		return counter(t, p.a, "UdpOutDatagrams") >= 20 && counter(t, p.b, "UdpInDatagrams") >= 20
	})
	for _, s := range []*stack.Stack{p.a, p.b} {
		if in, out := counter(t, s, "UdpInDatagrams"), counter(t, s, "UdpOutDatagrams"); in != 20 || out != 20 {
			t.Errorf("UdpInDatagrams %d, UdpOutDatagrams %d, want 20 each", in, out)
		}
	}
	var sb strings.Builder
	p.a.WriteSockets(&sb)
	if !strings.Contains(sb.String(), "UNCONN") || !strings.Contains(sb.String(), "0.0.0.0:7") {
		t.Errorf("ss lists no UDP socket on :7:\n%s", sb.String())
	}
}

// TestUDPPortUnreachable: a datagram to a port nobody holds is answered
// with ICMP port unreachable (UdpNoPorts), and the connected sender's next
// call fails with ECONNREFUSED once, as on Linux.
func TestUDPPortUnreachable(t *testing.T) {
	p := newBoundPair(t, nil, nil)
	c, err := p.b.Dial("udp", "10.1.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("anyone?")); err != nil {
		t.Fatal(err)
	}
	_, err = c.Read(make([]byte, 16))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("read after port unreachable: %v, want ECONNREFUSED", err)
	}
	if n := counter(t, p.a, "UdpNoPorts"); n != 1 {
		t.Errorf("UdpNoPorts %d, want 1", n)
	}
	if n := counter(t, p.a, "IcmpOutDestUnreachs"); n != 1 {
		t.Errorf("IcmpOutDestUnreachs %d, want 1", n)
	}
	// The error is reported once: the next read waits for data.
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Read(make([]byte, 16)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("second read: %v, want the deadline", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) {
		t.Fatalf("%v is not a net.Error", err)
	}
}

// TestUDPReceiveBufferBound: a socket that never reads holds what SO_RCVBUF
// allows, counting each datagram as its bytes plus the skb overhead; the
// rest is refused and counted, and what was queued reads back in order.
func TestUDPReceiveBufferBound(t *testing.T) {
	p := newBoundPair(t, nil, nil)
	sink, err := p.a.ListenUDP(netip.AddrPortFrom(netip.Addr{}, 5000))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	sink.SetReadBuffer(4096) // sk_rcvbuf = 8192
	src, err := p.b.Dial("udp", "10.1.0.1:5000")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	// Each 100-byte datagram is charged 576 + 128 = 704 bytes; the queue
	// takes datagrams while it holds ≤ 8192: 12 (the 12th takes it to 8448).
	const sent, fit = 100, 12
	msg := make([]byte, 100)
	for i := range sent {
		binary.BigEndian.PutUint32(msg, uint32(i))
		if _, err := src.Write(msg); err != nil {
			t.Fatal(err)
		}
		// One at a time: the pipe between the stacks must not be what drops.
		testwait.Until(t, "the datagram to be accounted", func() bool {
			return counter(t, p.a, "UdpInDatagrams")+counter(t, p.a, "UdpRcvbufErrors") == uint64(i+1)
		})
	}
	if in, drop, inErr := counter(t, p.a, "UdpInDatagrams"), counter(t, p.a, "UdpRcvbufErrors"), counter(t, p.a, "UdpInErrors"); in != fit || drop != sent-fit || inErr != sent-fit {
		t.Fatalf("UdpInDatagrams %d, UdpRcvbufErrors %d, UdpInErrors %d; want %d, %d, %d", in, drop, inErr, fit, sent-fit, sent-fit)
	}
	if ss := p.a.UDPSockets(); len(ss) != 1 || ss[0].RecvQ != fit*704 || ss[0].Drops != sent-fit || ss[0].RcvBuf != 8192 {
		t.Fatalf("ss: %+v", ss)
	}
	buf := make([]byte, 200)
	for i := range fit {
		n, from, err := sink.ReadFromUDPAddrPort(buf)
		if err != nil || n != 100 || binary.BigEndian.Uint32(buf) != uint32(i) || from != src.LocalAddr().(*net.UDPAddr).AddrPort() {
			t.Fatalf("datagram %d: n %d seq %d from %v err %v", i, n, binary.BigEndian.Uint32(buf), from, err)
		}
	}
	if ss := p.a.UDPSockets(); ss[0].RecvQ != 0 {
		t.Fatalf("Recv-Q %d after reading everything", ss[0].RecvQ)
	}
}

// TestUDPBadInput: malformed datagrams are counted drops; a zero checksum
// means none and is accepted; a bad checksum is never answered with ICMP.
func TestUDPBadInput(t *testing.T) {
	p := newBoundPair(t, nil, nil)
	sink, err := p.a.ListenUDP(netip.AddrPortFrom(netip.Addr{}, 53))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	dgram := func(dport uint16, payload string, mangle func(u []byte)) []byte {
		b := pkt.Get(64)
		copy(b.Append(len(payload)), payload)
		wire.PrependUDP(b, netip.AddrPortFrom(udpB, 4000), netip.AddrPortFrom(udpA, dport))
		u := append([]byte(nil), b.Bytes()...)
		b.Release()
		if mangle != nil {
			mangle(u)
		}
		return ipv4Packet(udpB, udpA, wire.IPProtocolUDP, u)
	}
	cases := []struct {
		name                       string
		pkt                        []byte
		inErr, csum, noPort, inDgr uint64
	}{
		{"short header", ipv4Packet(udpB, udpA, wire.IPProtocolUDP, []byte{0, 1, 0, 53, 0}), 1, 0, 0, 0},
		{"length past the IP payload", dgram(53, "abc", func(u []byte) { u[5] = 40 }), 1, 0, 0, 0},
		{"length below the header", dgram(53, "abc", func(u []byte) { u[5] = 4 }), 1, 0, 0, 0},
		{"bad checksum", dgram(53, "abc", func(u []byte) { u[6] ^= 0x55 }), 1, 1, 0, 0},
		{"bad checksum to a closed port", dgram(54, "abc", func(u []byte) { u[6] ^= 0x55 }), 1, 1, 0, 0},
		{"no checksum", dgram(53, "abc", func(u []byte) { u[6], u[7] = 0, 0 }), 0, 0, 0, 1},
		{"closed port", dgram(54, "abc", nil), 0, 0, 1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			names := []string{"UdpInErrors", "UdpInCsumErrors", "UdpNoPorts", "UdpInDatagrams", "IcmpOutDestUnreachs"}
			before := map[string]uint64{"IpInDelivers": counter(t, p.a, "IpInDelivers")}
			for _, n := range names {
				before[n] = counter(t, p.a, n)
			}
			p.inject(tc.pkt)
			want := map[string]uint64{"UdpInErrors": tc.inErr, "UdpInCsumErrors": tc.csum, "UdpNoPorts": tc.noPort,
				"UdpInDatagrams": tc.inDgr, "IcmpOutDestUnreachs": tc.noPort}
			// Counters only grow: wait until each has reached what it should,
			// then any over-count shows as an inequality.
			testwait.Until(t, "the datagram to be counted", func() bool {
				for _, n := range names {
					if counter(t, p.a, n) < before[n]+want[n] {
						return false
					}
				}
				return counter(t, p.a, "IpInDelivers") >= before["IpInDelivers"]+1
			})
			for _, n := range names {
				if d := counter(t, p.a, n) - before[n]; d != want[n] {
					t.Errorf("%s +%d, want +%d", n, d, want[n])
				}
			}
		})
	}
	sink.SetReadDeadline(time.Now().Add(time.Until(testwait.Deadline(t)) / 2))
	buf := make([]byte, 16)
	if n, _, err := sink.ReadFromUDPAddrPort(buf); err != nil || string(buf[:n]) != "abc" {
		t.Fatalf("the datagram without checksum: %q %v", buf[:n], err)
	}
}

// udpEcho sends every datagram back to its sender until pc closes, through
// the net.PacketConn interface users program against.
func udpEcho(pc net.PacketConn) {
	buf := make([]byte, udp.MaxPayload)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		pc.WriteTo(buf[:n], from)
	}
}

func ipv4Packet(src, dst netip.Addr, proto uint8, payload []byte) []byte {
	p := make([]byte, 20+len(payload))
	h := wire.IPv4(p)
	h.SetVersionIHL(20)
	h.SetTotalLen(uint16(len(p)))
	h.SetID(0x4343)
	h.SetTTL(64)
	h.SetProtocol(proto)
	h.SetSrc(src)
	h.SetDst(dst)
	h.SetChecksum()
	copy(p[20:], payload)
	return p
}

// TestUDPBindRulesAndErrors: ports conflict when addresses overlap, the
// errors are the ones net returns, and a closed socket says so.
func TestUDPBindRulesAndErrors(t *testing.T) {
	p := newBoundPair(t, nil, nil)
	a, err := p.a.ListenUDP(netip.MustParseAddrPort("10.1.0.1:600"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.a.ListenUDP(netip.MustParseAddrPort("0.0.0.0:600")); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("0.0.0.0:600 over 10.1.0.1:600: %v, want EADDRINUSE", err)
	}
	if _, err := p.a.ListenPacket("tcp", ":1"); err == nil {
		t.Fatal("ListenPacket accepts tcp")
	}
	if _, err := p.a.Listen("udp", ":1"); err == nil {
		t.Fatal("Listen accepts udp")
	}
	if _, err := a.WriteToUDPAddrPort(make([]byte, udp.MaxPayload+1), netip.MustParseAddrPort("10.1.0.2:9")); !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatalf("oversized datagram: %v, want EMSGSIZE", err)
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, syscall.EDESTADDRREQ) {
		t.Fatalf("Write on an unconnected socket: %v, want EDESTADDRREQ", err)
	}
	a.Close()
	if _, _, err := a.ReadFrom(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if b, err := p.a.ListenUDP(netip.MustParseAddrPort("0.0.0.0:600")); err != nil {
		t.Fatalf("the port is free after Close: %v", err)
	} else {
		b.Close()
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.b.DialContext(ctx, "udp", "10.1.0.1:53"); !errors.Is(err, context.Canceled) {
		t.Fatalf("DialContext with a done context: %v", err)
	}
}

// TestUDPLargeDatagramsFragment: a 4 KB datagram leaves as IP fragments and
// is reassembled whole on the other side, both ways.
func TestUDPLargeDatagramsFragment(t *testing.T) {
	p := newBoundPair(t, nil, nil)
	srv, err := p.a.ListenUDP(netip.AddrPortFrom(netip.Addr{}, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go udpEcho(srv)
	c, _ := p.b.Dial("udp", "10.1.0.1:7")
	defer c.Close()
	msg := make([]byte, 4096)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	c.Write(msg)
	c.SetReadDeadline(time.Now().Add(time.Until(testwait.Deadline(t)) / 2))
	buf := make([]byte, 8192)
	n, err := c.Read(buf)
	if err != nil || n != len(msg) || string(buf[:n]) != string(msg) {
		t.Fatalf("4 KB echo: %d bytes, %v", n, err)
	}
	for _, s := range []*stack.Stack{p.a, p.b} {
		if creates, oks := counter(t, s, "IpFragCreates"), counter(t, s, "IpReasmOKs"); creates != 3 || oks != 1 {
			t.Errorf("IpFragCreates %d (want 3 for 4104 bytes at MTU 1500), IpReasmOKs %d (want 1)", creates, oks)
		}
	}
}

// TestUDPResolverOverStack: Go's own resolver (net.Resolver, PreferGo)
// resolves a name through the stack's UDP: a DNS server on the other stack
// answers.
func TestUDPResolverOverStack(t *testing.T) {
	p := newBoundPair(t, nil, nil)
	dns, err := p.a.ListenUDP(netip.AddrPortFrom(netip.Addr{}, 53))
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	go serveDNS(dns, "tapstack.test.", [4]byte{192, 0, 2, 7})
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return p.b.DialContext(ctx, network, "10.1.0.1:53")
	}}
	ctx, cancel := context.WithDeadline(context.Background(), testwait.Deadline(t))
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip4", "tapstack.test")
	if err != nil || len(addrs) != 1 || addrs[0] != netip.MustParseAddr("192.0.2.7") {
		t.Fatalf("LookupNetIP: %v %v", addrs, err)
	}
}

// serveDNS answers every A query for name with addr (and NXDOMAIN for
// others) until the socket closes.
func serveDNS(c *stack.UDPConn, name string, addr [4]byte) {
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		var m dnsmessage.Message
		if m.Unpack(buf[:n]) != nil || len(m.Questions) != 1 {
			continue
		}
		q := m.Questions[0]
		m.Header.Response, m.Header.Authoritative = true, true
		if q.Name.String() == name && q.Type == dnsmessage.TypeA {
			m.Answers = []dnsmessage.Resource{{Header: dnsmessage.ResourceHeader{Name: q.Name, Type: q.Type, Class: q.Class, TTL: 60},
				Body: &dnsmessage.AResource{A: addr}}}
		} else if q.Type == dnsmessage.TypeA {
			m.Header.RCode = dnsmessage.RCodeNameError
		}
		out, err := m.Pack()
		if err == nil {
			c.WriteToUDPAddrPort(out, from)
		}
	}
}

// FuzzUDPInput feeds arbitrary UDP payloads (and length fields) to a stack
// holding a socket: nothing panics, and every datagram is accounted for in
// exactly one of the Udp counters.
func FuzzUDPInput(f *testing.F) {
	f.Add(uint16(53), []byte("\x00\x35\x00\x35\x00\x0b\x00\x00abc"), false)
	f.Add(uint16(9), []byte("\x00\x01\x00\x09\x00\x08\x00\x00"), true)
	f.Add(uint16(53), []byte{1}, false)
	f.Fuzz(func(t *testing.T, _ uint16, payload []byte, fixCsum bool) {
		p := newBoundPair(t, nil, nil)
		sink, err := p.a.ListenUDP(netip.AddrPortFrom(netip.Addr{}, 53))
		if err != nil {
			t.Fatal(err)
		}
		defer sink.Close()
		u := append([]byte(nil), payload...)
		if fixCsum && len(u) >= 8 {
			u[6], u[7] = 0, 0 // no checksum: exercise the paths past it
		}
		if len(u) > 1400 {
			u = u[:1400]
		}
		p.inject(ipv4Packet(udpB, udpA, wire.IPProtocolUDP, u))
		udpCounted := func() uint64 {
			return counter(t, p.a, "UdpInDatagrams") + counter(t, p.a, "UdpNoPorts") + counter(t, p.a, "UdpInErrors")
		}
		testwait.Until(t, "the datagram to be accounted", func() bool { return udpCounted() >= 1 })
		if got, ip := udpCounted(), counter(t, p.a, "IpInDelivers"); got != 1 || ip != 1 {
			t.Fatalf("one datagram counted %d times by UDP, delivered %d times by IP", got, ip)
		}
	})
}
