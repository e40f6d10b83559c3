package ipv4

import (
	"bytes"
	"errors"
	"sync"
	"syscall"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/wire"
)

func TestRoute(t *testing.T) {
	h := newHarness(t)
	if err := h.l.AddRoute(mustPrefix("0.0.0.0/0"), farIP); err == nil {
		t.Fatal("off-link gateway accepted")
	}
	if err := h.l.AddAddress(mustPrefix("172.16.0.1/16")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		dst     string
		src     string
		mtu     int
		noRoute bool
	}{
		{"10.0.0.1", "10.0.0.2", 1500, false},
		{"172.16.9.9", "172.16.0.1", 1500, false},
		{"10.0.0.2", "10.0.0.2", loopbackMTU, false},
		{"192.0.2.7", "", 0, true},
	}
	for _, tc := range tests {
		src, mtu, err := h.l.Route(mustAddr(tc.dst))
		if tc.noRoute {
			if !errors.Is(err, syscall.ENETUNREACH) {
				t.Errorf("%s: err %v", tc.dst, err)
			}
			continue
		}
		if err != nil || src != mustAddr(tc.src) || mtu != tc.mtu {
			t.Errorf("%s: src %v mtu %d err %v", tc.dst, src, mtu, err)
		}
	}
	h.want("IpOutNoRoutes", 1)
	if err := h.l.AddRoute(mustPrefix("0.0.0.0/0"), gwIP); err != nil {
		t.Fatal(err)
	}
	if src, _, err := h.l.Route(farIP); err != nil || src != ourIP {
		t.Fatalf("default route: %v %v", src, err)
	}
	// Off-link traffic resolves the gateway's MAC, not the destination's.
	h.learnPeer(gwIP, gwMAC)
	if err := h.l.Output(netipZero, farIP, wire.IPProtocolUDP, udpBuf(8)); err != nil {
		t.Fatal(err)
	}
	f := h.dev.take()
	if len(f) != 1 || !bytes.Equal(f[0].dst, gwMAC) || wire.IPv4(f[0].data).Dst() != farIP || wire.IPv4(f[0].data).Src() != ourIP {
		t.Fatalf("frames %+v", f)
	}
}

func TestOutputHeader(t *testing.T) {
	h := newHarness(t)
	h.learnPeer(peerIP, peerMAC)
	if err := h.l.Output(ourIP, peerIP, wire.IPProtocolTCP, udpBuf(20)); err != nil {
		t.Fatal(err)
	}
	f := h.dev.take()
	ip := &layers.IPv4{}
	if err := ip.DecodeFromBytes(f[0].data, gopacket.NilDecodeFeedback); err != nil {
		t.Fatal(err)
	}
	if ip.Flags != layers.IPv4DontFragment || ip.TTL != 64 || ip.Protocol != layers.IPProtocolTCP || ip.Length != 40 ||
		!wire.IPv4(f[0].data).ChecksumValid() {
		t.Fatalf("header %+v", ip)
	}
	h.l.sys.DefaultTTL.Store(7)
	_ = h.l.Output(ourIP, peerIP, wire.IPProtocolUDP, udpBuf(20))
	f = h.dev.take()
	if wire.IPv4(f[0].data).TTL() != 7 || wire.IPv4(f[0].data).DF() {
		t.Fatalf("ttl/df %x", f[0].data[:20])
	}
}

func TestOutputFragments(t *testing.T) {
	h := newHarness(t)
	h.learnPeer(peerIP, peerMAC)
	d := datagram(4000)
	b := pkt.Get(len(d))
	copy(b.Append(len(d)), d)
	if err := h.l.Output(ourIP, peerIP, wire.IPProtocolUDP, b); err != nil {
		t.Fatal(err)
	}
	f := h.dev.take()
	if len(f) != 3 {
		t.Fatalf("%d fragments", len(f))
	}
	h.want("IpFragOKs", 1)
	h.want("IpFragCreates", 3)
	// gopacket agrees on each fragment, and our reassembly rebuilds the datagram.
	r := newHarness(t)
	var got []byte
	r.l.RegisterProtocol(wire.IPProtocolUDP, func(p Packet) { got = append([]byte(nil), p.Payload...) })
	wantOff := []uint16{0, 185, 370}
	for i, fr := range f {
		ip := decode(t, fr.data).Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if ip.FragOffset != wantOff[i] || (ip.Flags&layers.IPv4MoreFragments != 0) != (i < 2) || len(fr.data) > 1500 {
			t.Fatalf("fragment %d: %+v", i, ip)
		}
		// Deliver as if from the peer to r (swap addresses, fix checksum).
		x := wire.IPv4(bytes.Clone(fr.data))
		x.SetSrc(peerIP)
		x.SetDst(ourIP)
		x.SetChecksum()
		r.inputIP(x)
	}
	if !bytes.Equal(got, d) {
		t.Fatal("fragments do not reassemble to the datagram")
	}
	// TCP (DF) larger than the MTU is refused.
	big := pkt.Get(2000)
	big.Append(2000)
	if err := h.l.Output(ourIP, peerIP, wire.IPProtocolTCP, big); !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatalf("DF too big: %v", err)
	}
	h.want("IpFragFails", 1)
}

func TestLoopback(t *testing.T) {
	h := newHarness(t)
	var got []Packet
	h.l.RegisterProtocol(wire.IPProtocolUDP, func(p Packet) { got = append(got, p) })
	if err := h.l.Output(netipZero, ourIP, wire.IPProtocolUDP, udpBuf(3000)); err != nil {
		t.Fatal(err)
	}
	if len(h.dev.take()) != 0 {
		t.Fatal("loopback traffic reached the link")
	}
	h.drain()
	if len(got) != 1 || got[0].Src != ourIP || got[0].Dst != ourIP || len(got[0].Payload) != 3000 {
		t.Fatalf("looped %+v", got)
	}
	// Ping ourselves: the looped request is answered and the reply loops
	// back too.
	req := echoRequest(t, ourIP, ourIP, 5, 5, nil)
	b := pkt.GetRx(len(req))
	b.SetLen(copy(b.Store(), req))
	b.Loopback = true
	h.l.ipInput(b)
	b.Release()
	h.drain()
	h.want("IcmpInEchoReps", 1)

	// The same packet from the wire is a land attack: a martian source,
	// dropped and counted (fib_validate_source, accept_local=0).
	before := h.l.Counter("IpInAddrErrors")
	h.inputIP(echoRequest(t, ourIP, ourIP, 6, 6, nil))
	h.drain()
	h.want("IcmpInEchoReps", 1)
	h.want("IpInAddrErrors", before+1)
}

func TestConcurrentInputOutput(t *testing.T) {
	h := newHarness(t)
	h.dev.discard = true
	h.learnPeer(peerIP, peerMAC)
	req := echoRequest(t, peerIP, ourIP, 1, 1, make([]byte, 32))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				switch g % 2 {
				case 0:
					h.inputIP(req)
				default:
					dst := mustAddr("10.0.0.1").As4()
					dst[3] = byte(1 + i%3)
					_ = h.l.Output(netipZero, netipFrom4(dst), wire.IPProtocolUDP, udpBuf(100))
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // timers fire concurrently with the data path
		defer wg.Done()
		for range 50 {
			h.clk.Advance(100_000_000)
		}
	}()
	wg.Wait()
	h.want("IcmpOutEchoReps", 1000)
}

func TestOutputBroadcastAndMulticast(t *testing.T) {
	h := newHarness(t)
	tests := []struct{ dst, mac string }{
		{"255.255.255.255", "ff:ff:ff:ff:ff:ff"},
		{"10.0.0.255", "ff:ff:ff:ff:ff:ff"},
		{"224.0.0.251", "01:00:5e:00:00:fb"},
		{"239.129.2.3", "01:00:5e:01:02:03"},
	}
	for _, tc := range tests {
		if err := h.l.Output(netipZero, mustAddr(tc.dst), wire.IPProtocolUDP, udpBuf(8)); err != nil {
			t.Fatal(err)
		}
		f := h.dev.take()
		if len(f) != 1 || f[0].dst.String() != tc.mac || wire.IPv4(f[0].data).Src() != ourIP {
			t.Fatalf("%s: %+v", tc.dst, f)
		}
	}
	if len(h.l.Neighbours()) != 0 {
		t.Fatal("broadcast/multicast created neighbours")
	}
}

// countingOwner is a socket's send buffer: what it is still charged.
type countingOwner struct{ held int }

func (o *countingOwner) Uncharge(n int) { o.held -= n }

// TestOutputPMTUModes: a socket's IP_MTU_DISCOVER mode decides DF and what
// a datagram above the path MTU becomes, as __ip_make_skb and
// __ip_append_data do; the sender's charge is released when the last
// frame has been handed on.
func TestOutputPMTUModes(t *testing.T) {
	h := newHarness(t)
	h.learnPeer(peerIP, peerMAC)
	h.l.updatePMTU(peerIP, 1000) // learned from a router: fragmentation needed, MTU 1000
	tests := []struct {
		mode   PMTUDisc
		size   int // transport bytes
		err    error
		frames int
		df     bool
	}{
		{PMTUDiscWant, 900, nil, 1, true},   // fits the path MTU: DF, so routers can report a smaller one
		{PMTUDiscWant, 1200, nil, 2, false}, // too big: fragmented to the path MTU, DF clear
		{PMTUDiscDont, 900, nil, 1, false},
		{PMTUDiscDont, 1200, nil, 2, false},
		{PMTUDiscDo, 980, nil, 1, true},
		{PMTUDiscDo, 981, syscall.EMSGSIZE, 0, false}, // over the path MTU: refused, not sent
		{PMTUDiscProbe, 1200, nil, 1, true},           // the learned MTU is ignored: only the device's counts
		{PMTUDiscProbe, 1481, syscall.EMSGSIZE, 0, false},
	}
	for _, tc := range tests {
		reqs, fails := h.l.Counter("IpOutRequests"), h.l.Counter("IpFragFails")
		b := udpBuf(tc.size)
		o := &countingOwner{held: 5000}
		b.SetOwner(o, 5000)
		err := h.l.OutputPMTU(ourIP, peerIP, wire.IPProtocolUDP, tc.mode, b)
		f := h.dev.take()
		if !errors.Is(err, tc.err) || len(f) != tc.frames {
			t.Errorf("mode %d, %d bytes: err %v, %d frames; want %v, %d", tc.mode, tc.size, err, len(f), tc.err, tc.frames)
			continue
		}
		if o.held != 0 {
			t.Errorf("mode %d, %d bytes: the sender is still charged %d", tc.mode, tc.size, o.held)
		}
		for _, fr := range f {
			ip := wire.IPv4(fr.data)
			if ip.DF() != tc.df || len(fr.data) > 1500 || (tc.mode != PMTUDiscProbe && len(fr.data) > 1000) {
				t.Errorf("mode %d, %d bytes: frame of %d bytes DF %v, want DF %v", tc.mode, tc.size, len(fr.data), ip.DF(), tc.df)
			}
		}
		// A refused send was never sent (__ip_append_data): neither an output
		// request nor a fragmentation failure.
		wantReqs := reqs + 1
		if tc.err != nil {
			wantReqs = reqs
		}
		if got := h.l.Counter("IpOutRequests"); got != wantReqs || h.l.Counter("IpFragFails") != fails {
			t.Errorf("mode %d, %d bytes: IpOutRequests +%d, IpFragFails +%d", tc.mode, tc.size, got-reqs, h.l.Counter("IpFragFails")-fails)
		}
	}
	// A looped-back datagram is orphaned as it enters the stack.
	b := udpBuf(100)
	o := &countingOwner{held: 700}
	b.SetOwner(o, 700)
	if err := h.l.OutputPMTU(netipZero, ourIP, wire.IPProtocolUDP, PMTUDiscWant, b); err != nil || o.held != 0 {
		t.Fatalf("loopback: %v, still charged %d", err, o.held)
	}
	h.drain()
}
