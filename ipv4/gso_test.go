package ipv4

import (
	"bytes"
	"encoding/binary"
	"errors"
	"syscall"
	"testing"

	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/netdev"
	"github.com/tapstack/tapstack/wire"
)

// tcpSuper is a TCP segment (20-byte header, ports 5000→80, ACK) with n
// payload bytes and a garbage checksum, as TSO lets TCP leave it.
func tcpSuper(n int) *pkt.Buffer {
	b := pkt.Get(wire.TCPMinHeaderLen + n)
	s := b.Append(wire.TCPMinHeaderLen + n)
	binary.BigEndian.PutUint16(s[0:], 5000)
	binary.BigEndian.PutUint16(s[2:], 80)
	binary.BigEndian.PutUint32(s[4:], 1)
	s[12] = 5 << 4
	s[13] = 0x10
	binary.BigEndian.PutUint16(s[14:], 65535)
	binary.BigEndian.PutUint16(s[16:], 0xdead)
	for i := range n {
		s[wire.TCPMinHeaderLen+i] = byte(i * 7)
	}
	return b
}

func gsoHarness(t *testing.T, devGSOMax int) *harness {
	return newHarnessDev(t, &fakeDev{mtu: 1500, gsoMax: devGSOMax})
}

func TestGSOMax(t *testing.T) {
	for _, tc := range []struct{ dev, want int }{
		{0, 0},
		{14, 0},
		{9014, 9000},
		{14 + 65535, 65535},
		{1 << 20, 65535},
	} {
		if got := gsoHarness(t, tc.dev).l.GSOMax(); got != tc.want {
			t.Errorf("device GSOMax %d: layer GSOMax %d, want %d", tc.dev, got, tc.want)
		}
	}
}

// TestOutputGSOHeader: one super-packet reaches TransmitGSO with the MSS,
// the resolved MAC and an IPv4 header covering all of it (DF, TTL 64,
// valid checksum), counted once; the next packet's ID skips one per segment.
func TestOutputGSOHeader(t *testing.T) {
	h := gsoHarness(t, 14+65535)
	h.learnPeer(peerIP, peerMAC)
	const n, mss = 64000, 1448
	if err := h.l.OutputGSO(netipZero, peerIP, wire.IPProtocolTCP, tcpSuper(n), mss); err != nil {
		t.Fatal(err)
	}
	if err := h.l.Output(ourIP, peerIP, wire.IPProtocolTCP, tcpSuper(10)); err != nil {
		t.Fatal(err)
	}
	f := h.dev.take()
	if len(f) != 2 {
		t.Fatalf("%d frames", len(f))
	}
	ip := wire.IPv4(f[0].data)
	switch {
	case f[0].gsoMSS != mss || !bytes.Equal(f[0].dst, peerMAC) || f[0].ethertype != wire.EtherTypeIPv4:
		t.Fatalf("frame to %v ethertype %#x mss %d", f[0].dst, f[0].ethertype, f[0].gsoMSS)
	case len(f[0].data) != 20+20+n || int(ip.TotalLen()) != len(f[0].data):
		t.Fatalf("%d bytes, total length %d", len(f[0].data), ip.TotalLen())
	case !ip.ChecksumValid() || !ip.DF() || ip.IsFragment() || ip.TTL() != 64 || ip.Protocol() != wire.IPProtocolTCP:
		t.Fatalf("header % x", ip.Header())
	case ip.Src() != ourIP || ip.Dst() != peerIP:
		t.Fatalf("%v → %v", ip.Src(), ip.Dst())
	case !bytes.Equal(ip.Payload()[20:100], tcpSuper(80).Bytes()[20:]):
		t.Fatal("payload changed")
	}
	if f[1].gsoMSS != 0 {
		t.Fatalf("Output went through TransmitGSO (mss %d)", f[1].gsoMSS)
	}
	segs := uint16((n + mss - 1) / mss)
	if next := wire.IPv4(f[1].data).ID(); next-ip.ID() != segs {
		t.Fatalf("IDs %d then %d: want %d reserved for the segments", ip.ID(), next, segs)
	}
	h.want("IpOutRequests", 2)
	h.want("IpExtOutOctets", uint64(20+20+n+20+20+10))
}

func TestOutputGSOErrors(t *testing.T) {
	short := func() *pkt.Buffer { b := pkt.Get(10); b.Append(10); return b }
	badOffset := func() *pkt.Buffer { b := tcpSuper(20); b.Bytes()[12] = 15 << 4; return b } // 60-byte header in 40
	tests := []struct {
		name   string
		devGSO int
		dst    string
		proto  uint8
		b      func() *pkt.Buffer
		mss    int
		want   error
		is     error // an errno or sentinel the error must match, if any
	}{
		{"no GSO", 0, "10.0.0.1", wire.IPProtocolTCP, func() *pkt.Buffer { return tcpSuper(5000) }, 1448, ErrNoGSO, netdev.ErrNoGSO},
		{"UDP", 65549, "10.0.0.1", wire.IPProtocolUDP, func() *pkt.Buffer { return tcpSuper(5000) }, 1448, errGSOProto, nil},
		{"mss 0", 65549, "10.0.0.1", wire.IPProtocolTCP, func() *pkt.Buffer { return tcpSuper(5000) }, 0, errGSOMSS, nil},
		{"short header", 65549, "10.0.0.1", wire.IPProtocolTCP, short, 1448, errGSOSegment, nil},
		{"data offset past end", 65549, "10.0.0.1", wire.IPProtocolTCP, badOffset, 1448, errGSOSegment, nil},
		{"segment over MTU", 65549, "10.0.0.1", wire.IPProtocolTCP, func() *pkt.Buffer { return tcpSuper(5000) }, 1461, ErrMsgSize, syscall.EMSGSIZE},
		{"over device GSOMax", 9014, "10.0.0.1", wire.IPProtocolTCP, func() *pkt.Buffer { return tcpSuper(9000) }, 1448, ErrMsgSize, syscall.EMSGSIZE},
		{"broadcast", 65549, "10.0.0.255", wire.IPProtocolTCP, func() *pkt.Buffer { return tcpSuper(5000) }, 1448, errGSOCast, nil},
		{"no route", 65549, "192.0.2.7", wire.IPProtocolTCP, func() *pkt.Buffer { return tcpSuper(5000) }, 1448, ErrNoRoute, syscall.ENETUNREACH},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := gsoHarness(t, tc.devGSO)
			h.learnPeer(peerIP, peerMAC)
			err := h.l.OutputGSO(netipZero, mustAddr(tc.dst), tc.proto, tc.b(), tc.mss)
			if !errors.Is(err, tc.want) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if f := h.dev.take(); len(f) != 0 {
				t.Fatalf("%d frames sent", len(f))
			}
			h.want("IpOutRequests", 0)
		})
	}
	h := gsoHarness(t, 65549)
	h.l.Close()
	if err := h.l.OutputGSO(netipZero, peerIP, wire.IPProtocolTCP, tcpSuper(100), 1448); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// TestOutputGSOPathMTU: a learned path MTU bounds the MSS a super-packet
// may be cut at.
func TestOutputGSOPathMTU(t *testing.T) {
	h := gsoHarness(t, 65549)
	h.learnPeer(peerIP, peerMAC)
	h.l.updatePMTU(peerIP, 1400)
	if err := h.l.OutputGSO(netipZero, peerIP, wire.IPProtocolTCP, tcpSuper(8000), 1448); !errors.Is(err, ErrMsgSize) {
		t.Fatalf("mss 1448 over a 1400-byte path: %v", err)
	}
	if err := h.l.OutputGSO(netipZero, peerIP, wire.IPProtocolTCP, tcpSuper(8000), 1360); err != nil {
		t.Fatal(err)
	}
	if f := h.dev.take(); len(f) != 1 || f[0].gsoMSS != 1360 {
		t.Fatalf("frames %d", len(f))
	}
}

// TestOutputGSOAwaitsARP: a super-packet queued while the neighbour is
// resolved still goes to TransmitGSO with its MSS once the reply arrives.
func TestOutputGSOAwaitsARP(t *testing.T) {
	h := gsoHarness(t, 65549)
	if err := h.l.OutputGSO(netipZero, peerIP, wire.IPProtocolTCP, tcpSuper(30000), 1448); err != nil {
		t.Fatal(err)
	}
	if err := h.l.Output(netipZero, peerIP, wire.IPProtocolTCP, tcpSuper(100)); err != nil {
		t.Fatal(err)
	}
	f := h.dev.take()
	if len(f) != 1 || f[0].ethertype != wire.EtherTypeARP {
		t.Fatalf("before resolution: %d frames", len(f))
	}
	if q := h.l.Neighbours(); len(q) != 1 || q[0].Queued != 2 {
		t.Fatalf("neighbours %+v", q)
	}
	h.inputARP(arpPacket(t, 2, peerMAC, peerIP, ourMAC, ourIP))
	f = h.dev.take()
	if len(f) != 2 || f[0].gsoMSS != 1448 || len(f[0].data) != 20+20+30000 || f[1].gsoMSS != 0 || !bytes.Equal(f[0].dst, peerMAC) {
		t.Fatalf("after resolution: %+v", f)
	}
}

// TestOutputGSOLocal: a super-packet to our own address loops back whole
// with its TCP checksum completed here, and input delivers it as one
// packet.
func TestOutputGSOLocal(t *testing.T) {
	h := gsoHarness(t, 65549)
	var got []byte
	var ok bool
	h.l.RegisterProtocol(wire.IPProtocolTCP, func(p Packet) {
		got = append([]byte(nil), p.Payload...)
		ok = wire.TCP(p.Payload).VerifyChecksum(p.Src, p.Dst)
	})
	if err := h.l.OutputGSO(netipZero, ourIP, wire.IPProtocolTCP, tcpSuper(60000), 1448); err != nil {
		t.Fatal(err)
	}
	h.drain()
	if len(got) != 20+60000 || !ok {
		t.Fatalf("delivered %d bytes, checksum ok %v", len(got), ok)
	}
	h.want("IpInDelivers", 1)
}

// TestInputSuperPacket: a 64 KB TCP packet, as an offload TAP hands up
// after completing its checksum (what GRO builds), is delivered whole to
// TCP although the link MTU is 1500: IPv4 input has no MTU check (ip_rcv
// has none either), nothing is dropped and reassembly is not involved.
func TestInputSuperPacket(t *testing.T) {
	h := newHarness(t)
	const n = 65535 - 40
	seg := tcpSuper(n)
	s := wire.TCP(seg.Bytes())
	s.SetChecksum(0)
	s.SetChecksum(wire.TCPChecksum(peerIP, ourIP, s))
	r := wire.IPv4Repr{ID: 7, DF: true, TTL: 64, Protocol: wire.IPProtocolTCP, Src: peerIP, Dst: ourIP}
	wire.PrependIPv4(seg, &r)
	raw := append([]byte(nil), seg.Bytes()...)
	seg.Release()

	var got []Packet
	var payload []byte
	h.l.RegisterProtocol(wire.IPProtocolTCP, func(p Packet) {
		got = append(got, p)
		payload = append([]byte(nil), p.Payload...)
	})
	h.inputIP(raw)
	if len(got) != 1 || len(payload) != 20+n || !wire.TCP(payload).VerifyChecksum(peerIP, ourIP) {
		t.Fatalf("%d deliveries, %d bytes", len(got), len(payload))
	}
	h.want("IpInReceives", 1)
	h.want("IpInDelivers", 1)
	h.want("IpExtInOctets", 65535)
	for _, name := range []string{"IpInHdrErrors", "IpInDiscards", "IpExtInTruncatedPkts", "IpReasmReqds", "IpInAddrErrors"} {
		h.want(name, 0)
	}
}

// BenchmarkOutputGSO: a 64 KB super-packet through the IPv4 layer costs
// no allocation.
func BenchmarkOutputGSO(b *testing.B) {
	h := newHarnessDev(b, &fakeDev{mtu: 1500, gsoMax: 65549, discard: true})
	h.learnPeer(peerIP, peerMAC)
	b.ReportAllocs()
	for b.Loop() {
		sb := pkt.Get(64000)
		sb.Append(64000)[12] = 5 << 4
		if err := h.l.OutputGSO(ourIP, peerIP, wire.IPProtocolTCP, sb, 1448); err != nil {
			b.Fatal(err)
		}
	}
}
