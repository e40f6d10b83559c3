package netdev

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/wire"
)

// l3Packet is flowFrame without its Ethernet header: a bare IPv4 packet.
func l3Packet(flow int, seq uint32) []byte { return flowFrame(flow, seq)[14:] }

func newL3Device(t testing.TB, shards int) (*Device, *driver.Channel) {
	ch := driver.NewChannel(driver.ChannelConfig{})
	d := New(ch, Config{Shards: shards})
	t.Cleanup(func() { d.Close() })
	return d, ch
}

// TestL3ReceiveDemuxesByVersion: on an L3 device the version nibble picks
// the ETH_P_IP or ETH_P_IPV6 handler, with no Ethernet header to parse or
// strip and no destination MAC to check; every drop is counted and the
// softnet identity (frames = processed + dropped + runts + other host)
// holds.
func TestL3ReceiveDemuxesByVersion(t *testing.T) {
	v6 := make([]byte, 40)
	v6[0] = 0x60
	for _, tc := range []struct {
		name     string
		packet   []byte
		accepted bool
		handler  uint16 // ethertype whose handler sees it; 0: none
		counter  string // incremented to 1 by this packet
	}{
		{"ipv4", l3Packet(1, 7), true, wire.EtherTypeIPv4, "SoftnetProcessed"},
		{"ipv6", v6, true, wire.EtherTypeIPv6, "SoftnetProcessed"},
		{"version 5", []byte{0x50, 0, 0, 0}, true, 0, "NetdevRxUnknownEthertype"},
		{"one byte of ipv4", []byte{0x45}, true, wire.EtherTypeIPv4, "SoftnetProcessed"},
		{"empty", nil, false, 0, "NetdevRxRunt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := newL3Device(t, 1)
			var got []byte
			var gotType uint16
			for _, et := range []uint16{wire.EtherTypeARP, wire.EtherTypeIPv4, wire.EtherTypeIPv6} {
				d.Handle(et, func(b *pkt.Buffer) { got, gotType = slices.Clone(b.Bytes()), et })
			}
			if ok := d.receive(buf(tc.packet), false); ok != tc.accepted {
				t.Fatalf("receive = %v", ok)
			}
			d.shards[0].netRxAction()
			c := counters(d)
			if c[tc.counter] != 1 || c["NetdevRxFrames"] != 1 || c["NetdevRxBytes"] != uint64(len(tc.packet)) {
				t.Fatalf("counters %v", c)
			}
			if c["NetdevRxFrames"] != c["SoftnetProcessed"]+c["SoftnetDropped"]+c["NetdevRxRunt"]+c["NetdevRxOtherHost"] {
				t.Fatalf("frames not accounted for: %v", c)
			}
			if gotType != tc.handler || (tc.handler != 0 && !slices.Equal(got, tc.packet)) {
				t.Fatalf("handler %#04x got % x", gotType, got)
			}
		})
	}
}

// TestL3ReaderAndTransmit runs the device over a Channel: an injected
// packet reaches its handler through the reader and the backlog, and
// Transmit hands the channel the packet without a header, whatever dst.
func TestL3ReaderAndTransmit(t *testing.T) {
	d, ch := newL3Device(t, 2)
	if !d.L3() || d.MAC() != nil || d.GSOMax() != 0 {
		t.Fatalf("L3 %v MAC %v GSOMax %d", d.L3(), d.MAC(), d.GSOMax())
	}
	got := make(chan []byte, 1)
	d.Handle(wire.EtherTypeIPv4, func(b *pkt.Buffer) { got <- slices.Clone(b.Bytes()) })
	d.Start()
	p := l3Packet(2, 1)
	if err := ch.Inject(p); err != nil {
		t.Fatal(err)
	}
	if g := <-got; !slices.Equal(g, p) {
		t.Fatalf("handler got % x", g)
	}

	b := pkt.Get(len(p))
	copy(b.Append(len(p)), p)
	if err := d.Transmit(bcastMAC, wire.EtherTypeIPv4, b); err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 2048)
	n, err := ch.Read(context.Background(), out)
	if err != nil || !slices.Equal(out[:n], p) {
		t.Fatalf("channel read % x, %v", out[:n], err)
	}
	arp := pkt.Get(28)
	arp.Append(28)
	if err := d.Transmit(bcastMAC, wire.EtherTypeARP, arp); !errors.Is(err, errNotIP) {
		t.Fatalf("ARP on an L3 device: %v", err)
	}
	big := pkt.Get(1501)
	big.Append(1501)
	if err := d.Transmit(nil, wire.EtherTypeIPv4, big); !errors.Is(err, errTooBig) {
		t.Fatalf("1501 bytes: %v", err)
	}
	if err := d.TransmitGSO(nil, wire.EtherTypeIPv4, pkt.Get(0), 1000); !errors.Is(err, ErrNoGSO) {
		t.Fatalf("TransmitGSO: %v", err)
	}
	c := counters(d)
	if c["NetdevTxFrames"] != 1 || c["NetdevTxBytes"] != uint64(len(p)) || c["NetdevTxErrors"] != 3 {
		t.Fatalf("counters %v", c)
	}
}

// TestL3LoopbackReceiveDropsEthernetHeader: Receive, the stack's loopback
// entry, takes an Ethernet-framed packet on an L3 device too and queues the
// bare packet.
func TestL3LoopbackReceiveDropsEthernetHeader(t *testing.T) {
	d, _ := newL3Device(t, 1)
	var got []byte
	d.Handle(wire.EtherTypeIPv4, func(b *pkt.Buffer) { got = slices.Clone(b.Bytes()) })
	f := flowFrame(1, 3)
	copy(f, otherMAC) // not checked: the frame never left the stack
	if !d.Receive(buf(f)) {
		t.Fatal("loopback frame dropped")
	}
	if d.Receive(buf(f[:13])) {
		t.Fatal("runt loopback frame accepted")
	}
	d.shards[0].netRxAction()
	if !slices.Equal(got, f[14:]) {
		t.Fatalf("handler got % x", got)
	}
	if c := counters(d); c["NetdevRxRunt"] != 1 || c["SoftnetProcessed"] != 1 {
		t.Fatalf("counters %v", c)
	}
}

// TestFlowHashL3MatchesFlowHash: a bare packet lands on the shard its
// Ethernet frame would, so both kinds of device spread flows alike.
func TestFlowHashL3MatchesFlowHash(t *testing.T) {
	a, b := [4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}
	for _, f := range [][]byte{
		ipv4Frame(ourMAC, wire.IPProtocolTCP, a, b, 1, 80, 0, 0),
		ipv4Frame(ourMAC, wire.IPProtocolTCP, b, a, 80, 1, 0, 0),
		ipv4Frame(ourMAC, wire.IPProtocolUDP, a, b, 5353, 53, 0, 0),
		ipv4Frame(ourMAC, wire.IPProtocolUDP, a, b, 1, 53, 0x2000, 0),
		ipv4Frame(ourMAC, 1, a, b, 3, 4, 0, 0),
	} {
		want, ok := flowHash(f, 99)
		got, okL3 := flowHashL3(f[14:], 99)
		if !ok || !okL3 || got != want {
			t.Fatalf("flowHashL3 %#x %v, flowHash %#x %v", got, okL3, want, ok)
		}
	}
	for _, p := range [][]byte{nil, {0x45}, l3Packet(1, 0)[:19], {0x60, 0, 0, 0}} {
		if _, ok := flowHashL3(p, 1); ok {
			t.Fatalf("hashed % x", p)
		}
	}
}

// TestL3BacklogAndShards: flows spread over the shards by flowHashL3, the
// backlog bound drops what exceeds it (softnet dropped) exactly as on an
// Ethernet device.
func TestL3BacklogAndShards(t *testing.T) {
	d, _ := newL3Device(t, 4)
	d.sysctls.MaxBacklog.Store(3)
	d.Handle(wire.EtherTypeIPv4, func(*pkt.Buffer) {})
	used := map[int]bool{}
	for flow := range 32 {
		d.receive(buf(l3Packet(flow, 0)), false)
		for i, s := range d.Softnet() {
			used[i] = used[i] || s.BacklogLen > 0
		}
	}
	if len(used) < 2 {
		t.Fatalf("32 flows on shards %v", used)
	}
	var dropped, queued uint64
	for _, s := range d.Softnet() {
		dropped += s.Dropped
		queued += uint64(s.BacklogLen)
		if s.BacklogLen > 4 {
			t.Fatalf("backlog of %d past netdev_max_backlog 3", s.BacklogLen)
		}
	}
	if dropped+queued != 32 || dropped == 0 {
		t.Fatalf("dropped %d queued %d", dropped, queued)
	}
	for _, s := range d.shards {
		s.netRxAction()
	}
	if c := counters(d); c["SoftnetProcessed"] != queued || c["SoftnetDropped"] != dropped {
		t.Fatalf("counters %v", c)
	}
}

// FuzzL3Receive feeds arbitrary bytes to an L3 device's receive path and
// its polls: a bad packet is counted, never a panic, and every packet is
// accounted for.
func FuzzL3Receive(f *testing.F) {
	f.Add(l3Packet(1, 1))
	f.Add([]byte{0x60, 0, 0, 0})
	f.Add([]byte{})
	f.Add([]byte{0x4f})
	d, _ := newL3Device(f, 2)
	for _, et := range []uint16{wire.EtherTypeIPv4, wire.EtherTypeIPv6} {
		d.Handle(et, func(b *pkt.Buffer) {
			if len(b.Bytes()) == 0 || l3EtherType(b.Bytes()) != et {
				panic("handler got a packet of another version")
			}
		})
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d.receive(buf(data), false)
		for _, s := range d.shards {
			s.netRxAction()
		}
		c := counters(d)
		if c["NetdevRxFrames"] != c["SoftnetProcessed"]+c["SoftnetDropped"]+c["NetdevRxRunt"]+c["NetdevRxOtherHost"] {
			t.Fatalf("frames not accounted for: %v", c)
		}
	})
}
