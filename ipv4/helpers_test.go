package ipv4

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/tapstack/tapstack/internal/clock"
	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/wire"
)

var (
	ourMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	peerMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	gwMAC   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xfe}
	ourIP   = netip.MustParseAddr("10.0.0.2")
	peerIP  = netip.MustParseAddr("10.0.0.1")
	gwIP    = netip.MustParseAddr("10.0.0.254")
	farIP   = netip.MustParseAddr("192.0.2.7")
)

type frame struct {
	dst       net.HardwareAddr
	ethertype uint16
	data      []byte
	gsoMSS    int // > 0: handed to TransmitGSO
}

// fakeDev stands in for netdev.Device: it records transmitted frames and
// queues looped-back frames until drain.
type fakeDev struct {
	mtu     int
	gsoMax  int  // GSOMax; 0: no TSO
	discard bool // benchmark mode: release without recording
	mu      sync.Mutex
	sent    []frame
	looped  []*pkt.Buffer
}

func (d *fakeDev) MAC() net.HardwareAddr { return ourMAC }
func (d *fakeDev) MTU() int              { return d.mtu }
func (d *fakeDev) GSOMax() int           { return d.gsoMax }
func (d *fakeDev) Transmit(dst net.HardwareAddr, et uint16, b *pkt.Buffer) error {
	return d.record(dst, et, b, 0)
}
func (d *fakeDev) TransmitGSO(dst net.HardwareAddr, et uint16, b *pkt.Buffer, mss int) error {
	return d.record(dst, et, b, mss)
}
func (d *fakeDev) record(dst net.HardwareAddr, et uint16, b *pkt.Buffer, mss int) error {
	if !d.discard {
		d.mu.Lock()
		d.sent = append(d.sent, frame{append(net.HardwareAddr(nil), dst...), et, append([]byte(nil), b.Bytes()...), mss})
		d.mu.Unlock()
	}
	b.Release()
	return nil
}
func (d *fakeDev) Receive(b *pkt.Buffer) bool {
	d.mu.Lock()
	d.looped = append(d.looped, b)
	d.mu.Unlock()
	return true
}

func (d *fakeDev) take() []frame {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.sent
	d.sent = nil
	return s
}

type harness struct {
	t   testing.TB
	dev *fakeDev
	l   *Layer
	clk *clock.Virtual
}

func newHarness(t testing.TB) *harness {
	return newHarnessDev(t, &fakeDev{mtu: 1500})
}

// newHarnessDev is newHarness over dev (e.g. one with GSO).
func newHarnessDev(t testing.TB, dev *fakeDev) *harness {
	clk := clock.NewVirtual(time.Unix(1_000_000, 0))
	l := newLayer(dev, Config{Clock: clk})
	if err := l.AddAddress(netip.MustParsePrefix("10.0.0.2/24")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return &harness{t: t, dev: dev, l: l, clk: clk}
}

// drain delivers looped-back frames the way netdev would (Ethernet stripped).
func (h *harness) drain() {
	for {
		h.dev.mu.Lock()
		q := h.dev.looped
		h.dev.looped = nil
		h.dev.mu.Unlock()
		if len(q) == 0 {
			return
		}
		for _, b := range q {
			b.TrimFront(wire.EthernetHeaderLen)
			h.l.ipInput(b)
			b.Release()
		}
	}
}

func (h *harness) inputIP(raw []byte) {
	b := pkt.GetRx(len(raw))
	b.SetLen(copy(b.Store(), raw))
	h.l.ipInput(b)
	b.Release()
}

func (h *harness) inputARP(raw []byte) {
	b := pkt.GetRx(len(raw))
	b.SetLen(copy(b.Store(), raw))
	h.l.arpInput(b)
	b.Release()
}

// learnPeer makes peer a REACHABLE neighbour.
func (h *harness) learnPeer(ip netip.Addr, mac net.HardwareAddr) {
	h.l.neigh.update(ip, mac, nudReachable, true)
}

func (h *harness) want(name string, v uint64) {
	h.t.Helper()
	if got := h.l.Counter(name); got != v {
		h.t.Errorf("%s = %d, want %d", name, got, v)
	}
}

func ser(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func ipLayer(src, dst netip.Addr, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: 0x4242, Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
}

func echoRequest(t testing.TB, src, dst netip.Addr, id, seq uint16, data []byte) []byte {
	return ser(t, ipLayer(src, dst, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: id, Seq: seq}, gopacket.Payload(data))
}

func arpPacket(t testing.TB, op uint16, sha net.HardwareAddr, sip netip.Addr, tha net.HardwareAddr, tip netip.Addr) []byte {
	return ser(t, &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6,
		ProtAddressSize: 4, Operation: op, SourceHwAddress: sha, SourceProtAddress: sip.AsSlice(),
		DstHwAddress: tha, DstProtAddress: tip.AsSlice()})
}

// decode parses an IPv4 packet with gopacket.
func decode(t testing.TB, data []byte) gopacket.Packet {
	t.Helper()
	p := gopacket.NewPacket(data, layers.LayerTypeIPv4, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	return p
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func payload(n int) gopacket.Payload {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func udpPacket(t testing.TB, src, dst netip.Addr, data []byte) []byte {
	ip := ipLayer(src, dst, layers.IPProtocolUDP)
	u := &layers.UDP{SrcPort: 1000, DstPort: 2000}
	u.SetNetworkLayerForChecksum(ip)
	return ser(t, ip, u, gopacket.Payload(data))
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func netipFrom4(a [4]byte) netip.Addr { return netip.AddrFrom4(a) }

func bytesPayload(b []byte) gopacket.Payload { return gopacket.Payload(b) }

var netipZero netip.Addr
