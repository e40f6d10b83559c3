package ipv4

import (
	"testing"

	"github.com/google/gopacket/layers"

	"github.com/tapstack/tapstack/wire"
)

func TestInputDrops(t *testing.T) {
	good := func(t *testing.T) []byte { return echoRequest(t, peerIP, ourIP, 1, 1, []byte("abcdefgh")) }
	tests := []struct {
		name    string
		mangle  func(t *testing.T) []byte
		counter string
	}{
		{"short", func(t *testing.T) []byte { return good(t)[:19] }, "IpInHdrErrors"},
		{"version 6", func(t *testing.T) []byte { b := good(t); b[0] = 0x65; return b }, "IpInHdrErrors"},
		{"ihl 4", func(t *testing.T) []byte { b := good(t); b[0] = 0x44; return b }, "IpInHdrErrors"},
		{"bad checksum", func(t *testing.T) []byte { b := good(t); b[10] ^= 0xff; return b }, "IpExtInCsumErrors"},
		{"total beyond frame", func(t *testing.T) []byte {
			b := good(t)
			h := wire.IPv4(b)
			h.SetTotalLen(h.TotalLen() + 1)
			h.SetChecksum()
			return b
		}, "IpExtInTruncatedPkts"},
		{"total below header", func(t *testing.T) []byte {
			b := good(t)
			h := wire.IPv4(b)
			h.SetTotalLen(19)
			h.SetChecksum()
			return b
		}, "IpInHdrErrors"},
		{"not ours", func(t *testing.T) []byte { return echoRequest(t, peerIP, farIP, 1, 1, nil) }, "IpInAddrErrors"},
		{"multicast source", func(t *testing.T) []byte { return echoRequest(t, mustAddr("224.0.0.1"), ourIP, 1, 1, nil) }, "IpInAddrErrors"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.inputIP(tc.mangle(t))
			h.want("IpInReceives", 1)
			h.want(tc.counter, 1)
			if tc.counter == "IpExtInCsumErrors" {
				h.want("IpInHdrErrors", 1)
			}
			h.want("IpInDelivers", 0)
			if f := h.dev.take(); len(f) != 0 {
				t.Fatalf("sent %d frames", len(f))
			}
		})
	}
}

func TestInputTrimsPaddingAndDelivers(t *testing.T) {
	h := newHarness(t)
	var got []byte
	var pk Packet
	h.l.RegisterProtocol(wire.IPProtocolUDP, func(p Packet) { got = append([]byte(nil), p.Payload...); pk = p })
	raw := udpPacket(t, peerIP, ourIP, nil)
	raw = append(raw, 0, 0, 0, 0, 0, 0) // Ethernet minimum-size padding
	h.inputIP(raw)
	if len(got) != 8 || pk.Src != peerIP || pk.Dst != ourIP || pk.TTL != 64 || len(pk.Header) != 20 {
		t.Fatalf("delivered %x %+v", got, pk)
	}
	h.want("IpInDelivers", 1)
}

func TestInputBroadcastAccepted(t *testing.T) {
	h := newHarness(t)
	n := 0
	h.l.RegisterProtocol(wire.IPProtocolUDP, func(p Packet) { n++ })
	for _, dst := range []string{"10.0.0.255", "255.255.255.255"} {
		h.inputIP(udpPacket(t, peerIP, mustAddr(dst), nil))
	}
	if n != 2 {
		t.Fatalf("delivered %d", n)
	}
	h.want("IpExtInBcastPkts", 2)
}

func TestUnknownProtocolSendsProtoUnreach(t *testing.T) {
	h := newHarness(t)
	h.learnPeer(peerIP, peerMAC)
	raw := ser(t, ipLayer(peerIP, ourIP, 200), payload(40))
	h.inputIP(raw)
	h.want("IpInUnknownProtos", 1)
	h.want("IcmpOutDestUnreachs", 1)
	f := h.dev.take()
	if len(f) != 1 {
		t.Fatalf("sent %d frames", len(f))
	}
	p := decode(t, f[0].data)
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	ic := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if ic.TypeCode != layers.CreateICMPv4TypeCode(3, 2) || ip.SrcIP.String() != "10.0.0.2" || ip.DstIP.String() != "10.0.0.1" ||
		ip.TOS != 0xc0 || string(ic.Payload) != string(raw) {
		t.Fatalf("got %v / %v payload %x", ip, ic, ic.Payload)
	}
	// To a broadcast address: no error.
	h.inputIP(ser(t, ipLayer(peerIP, mustAddr("10.0.0.255"), 200), payload(8)))
	if f := h.dev.take(); len(f) != 0 {
		t.Fatal("ICMP error sent for a broadcast")
	}
}
