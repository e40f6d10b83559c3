package ipv4

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/wire"
)

func TestEchoReplyBytesExact(t *testing.T) {
	h := newHarness(t)
	data := []byte("0123456789abcdefghijklmnopqrstuvwxyz!")
	req := echoRequest(t, peerIP, ourIP, 0xbeef, 3, data)
	wire.IPv4(req).SetTOS(0x10)
	wire.IPv4(req).SetChecksum()
	h.inputIP(req)
	// The peer is unknown: the reply waits for ARP resolution.
	f := h.dev.take()
	if len(f) != 1 || f[0].ethertype != wire.EtherTypeARP || !bytes.Equal(f[0].dst, wire.BroadcastMAC) {
		t.Fatalf("want one broadcast ARP request, got %+v", f)
	}
	h.inputARP(arpPacket(t, 2, peerMAC, peerIP, ourMAC, ourIP))
	f = h.dev.take()
	if len(f) != 1 || f[0].ethertype != wire.EtherTypeIPv4 || !bytes.Equal(f[0].dst, peerMAC) {
		t.Fatalf("want the echo reply to %v, got %+v", peerMAC, f)
	}
	got := f[0].data
	id := wire.IPv4(got).ID()
	want := ser(t, &layers.IPv4{Version: 4, IHL: 5, TOS: 0x10, TTL: 64, Id: id, Protocol: layers.IPProtocolICMPv4,
		SrcIP: ourIP.AsSlice(), DstIP: peerIP.AsSlice()},
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(0, 0), Id: 0xbeef, Seq: 3}, gopacket.Payload(data))
	if !bytes.Equal(got, want) {
		t.Fatalf("reply\n got %x\nwant %x", got, want)
	}
	h.want("IcmpInEchos", 1)
	h.want("IcmpOutEchoReps", 1)
	h.want("IcmpMsgInType8", 1)
	h.want("IcmpMsgOutType0", 1)
	h.want("IcmpInMsgs", 1)
	h.want("IcmpOutMsgs", 1)
	h.want("IpOutRequests", 1)
}

func TestEchoIgnoreAllAndBroadcast(t *testing.T) {
	h := newHarness(t)
	h.learnPeer(peerIP, peerMAC)
	h.l.sys.IcmpEchoIgnoreAll.Store(1)
	h.inputIP(echoRequest(t, peerIP, ourIP, 1, 1, nil))
	h.l.sys.IcmpEchoIgnoreAll.Store(0)
	h.inputIP(echoRequest(t, peerIP, mustAddr("10.0.0.255"), 1, 2, nil))
	if f := h.dev.take(); len(f) != 0 {
		t.Fatalf("sent %d frames", len(f))
	}
	h.want("IcmpInEchos", 2)
	h.want("IcmpInErrors", 1) // the broadcast one
	h.inputIP(echoRequest(t, peerIP, ourIP, 1, 3, nil))
	if f := h.dev.take(); len(f) != 1 {
		t.Fatalf("sent %d frames", len(f))
	}
}

func TestICMPBadChecksum(t *testing.T) {
	h := newHarness(t)
	req := echoRequest(t, peerIP, ourIP, 1, 1, []byte("x"))
	req[len(req)-1] ^= 0xff
	h.inputIP(req)
	h.want("IcmpInCsumErrors", 1)
	h.want("IcmpInErrors", 1)
	h.want("IcmpInEchos", 0)
}

func TestFragNeededReachesControlAndPMTU(t *testing.T) {
	h := newHarness(t)
	var got []ControlMessage
	h.l.RegisterControl(wire.IPProtocolTCP, func(m ControlMessage) {
		m.Quoted = append([]byte(nil), m.Quoted...)
		got = append(got, m)
	})
	// Our TCP segment to farIP as a router quotes it.
	orig := ser(t, ipLayer(ourIP, farIP, layers.IPProtocolTCP), payload(20))
	msg := ser(t, ipLayer(mustAddr("10.0.0.254"), ourIP, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 4), Seq: 1280}, gopacket.Payload(orig[:28]))
	h.inputIP(msg)
	if len(got) != 1 || got[0].MTU != 1280 || got[0].Dst != farIP || got[0].Src != ourIP || got[0].Proto != 6 ||
		!bytes.Equal(got[0].Quoted, orig[20:28]) {
		t.Fatalf("control %+v", got)
	}
	if err := h.l.AddRoute(mustPrefix("0.0.0.0/0"), gwIP); err != nil {
		t.Fatal(err)
	}
	if _, mtu, err := h.l.Route(farIP); err != nil || mtu != 1280 {
		t.Fatalf("Route mtu %d err %v", mtu, err)
	}
	h.clk.Advance(601 * time.Second) // mtu_expires
	if _, mtu, _ := h.l.Route(farIP); mtu != 1500 {
		t.Fatalf("PMTU did not expire: %d", mtu)
	}
	// A quote of a packet that is not ours is ignored.
	other := ser(t, ipLayer(farIP, peerIP, layers.IPProtocolTCP), payload(20))
	h.inputIP(ser(t, ipLayer(gwIP, ourIP, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 4), Seq: 1280}, gopacket.Payload(other[:28])))
	if len(got) != 1 {
		t.Fatal("bogus error delivered")
	}
}

func TestNoICMPErrorAboutICMPErrorOrLaterFragment(t *testing.T) {
	h := newHarness(t)
	h.learnPeer(peerIP, peerMAC)
	// An ICMP error with an unknown inner protocol is still never answered;
	// use a protocol-unreachable candidate: a later fragment of proto 200.
	frag := ipLayer(peerIP, ourIP, 200)
	frag.FragOffset = 100
	h.l.icmpSend(ser(t, frag, payload(16)), wire.ICMPv4DestUnreach, wire.ICMPv4ProtoUnreach, 0)
	// A protocol-unreachable for an ICMP error: build a dest-unreach whose
	// carrier is addressed to us, then corrupt nothing; icmpSend must refuse.
	errMsg := ser(t, ipLayer(peerIP, ourIP, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 3)}, payload(28))
	h.l.icmpSend(errMsg, wire.ICMPv4DestUnreach, wire.ICMPv4ProtoUnreach, 0)
	if f := h.dev.take(); len(f) != 0 {
		t.Fatalf("sent %d frames", len(f))
	}
	// An echo request is a legitimate subject.
	h.l.icmpSend(echoRequest(t, peerIP, ourIP, 1, 1, nil), wire.ICMPv4DestUnreach, wire.ICMPv4ProtoUnreach, 0)
	if f := h.dev.take(); len(f) != 1 {
		t.Fatalf("sent %d frames", len(f))
	}
}

func TestICMPErrorRateLimit(t *testing.T) {
	h := newHarness(t)
	h.learnPeer(peerIP, peerMAC)
	for range 10 {
		h.inputIP(ser(t, ipLayer(peerIP, ourIP, 200), payload(8)))
	}
	if n := len(h.dev.take()); n != 6 { // XRLIM_BURST_FACTOR
		t.Fatalf("sent %d errors in a burst, want 6", n)
	}
	h.want("IcmpOutRateLimitHost", 4)
	h.clk.Advance(time.Second)
	for range 3 {
		h.inputIP(ser(t, ipLayer(peerIP, ourIP, 200), payload(8)))
	}
	if n := len(h.dev.take()); n != 1 {
		t.Fatalf("sent %d errors after 1 s, want 1", n)
	}
}

func TestEchoZeroAllocs(t *testing.T) {
	h := newHarness(t)
	h.dev.discard = true
	h.learnPeer(peerIP, peerMAC)
	req := echoRequest(t, peerIP, ourIP, 1, 1, make([]byte, 56))
	b := pkt.GetRx(len(req))
	defer b.Release()
	n := testing.AllocsPerRun(1000, func() {
		b.SetLen(copy(b.Store(), req))
		h.l.ipInput(b)
	})
	if n != 0 {
		t.Fatalf("%v allocs per echo", n)
	}
}

// BenchmarkEcho measures an echo request → reply through the IPv4 handler
// (validation, ICMP, reply build, route, neighbour, transmit).
func BenchmarkEcho(b *testing.B) {
	h := newHarness(b)
	h.dev.discard = true
	h.learnPeer(peerIP, peerMAC)
	req := echoRequest(b, peerIP, ourIP, 1, 1, make([]byte, 56))
	buf := pkt.GetRx(len(req))
	defer buf.Release()
	b.ReportAllocs()
	b.SetBytes(int64(len(req)))
	for b.Loop() {
		buf.SetLen(copy(buf.Store(), req))
		h.l.ipInput(buf)
	}
	if h.l.Counter("IcmpOutEchoReps") == 0 {
		b.Fatal("no replies")
	}
}
