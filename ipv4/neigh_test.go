package ipv4

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/wire"
)

func udpBuf(n int) *pkt.Buffer {
	b := pkt.Get(n)
	b.Append(n)
	return b
}

func (h *harness) state(ip string) string {
	for _, n := range h.l.Neighbours() {
		if n.Addr == mustAddr(ip) {
			return n.State
		}
	}
	return "absent"
}

func arpOf(t *testing.T, f frame) *layers.ARP {
	t.Helper()
	if f.ethertype != wire.EtherTypeARP {
		t.Fatalf("ethertype %#x", f.ethertype)
	}
	var a layers.ARP
	if err := a.DecodeFromBytes(f.data, nil); err != nil {
		t.Fatal(err)
	}
	return &a
}

func TestARPRequestForUsIsAnsweredAndLearned(t *testing.T) {
	h := newHarness(t)
	h.inputARP(arpPacket(t, 1, peerMAC, peerIP, make([]byte, 6), ourIP))
	f := h.dev.take()
	if len(f) != 1 || !bytes.Equal(f[0].dst, peerMAC) {
		t.Fatalf("frames %+v", f)
	}
	want := arpPacket(t, 2, ourMAC, ourIP, peerMAC, peerIP)
	if !bytes.Equal(f[0].data, want) {
		t.Fatalf("reply\n got %x\nwant %x", f[0].data, want)
	}
	if s := h.state("10.0.0.1"); s != "STALE" {
		t.Fatalf("state %s", s)
	}
	// Requests for other hosts are not answered and create nothing.
	h.inputARP(arpPacket(t, 1, peerMAC, mustAddr("10.0.0.3"), make([]byte, 6), mustAddr("10.0.0.4")))
	if len(h.dev.take()) != 0 || h.state("10.0.0.3") != "absent" {
		t.Fatal("answered or learned a request for someone else")
	}
	// Malformed ARP is a counted drop.
	h.inputARP([]byte{0, 1, 8, 0})
	h.want("ArpInDiscards", 1)
}

func TestGratuitousARPOnStart(t *testing.T) {
	h := newHarness(t)
	h.l.Start()
	f := h.dev.take()
	if len(f) != 1 || !bytes.Equal(f[0].dst, wire.BroadcastMAC) {
		t.Fatalf("frames %+v", f)
	}
	a := arpOf(t, f[0])
	if a.Operation != 1 || !bytes.Equal(a.SourceProtAddress, ourIP.AsSlice()) || !bytes.Equal(a.DstProtAddress, ourIP.AsSlice()) {
		t.Fatalf("gratuitous ARP %+v", a)
	}
}

func TestARPResolutionRetransmitsThenFails(t *testing.T) {
	h := newHarness(t)
	for range 2 {
		if err := h.l.Output(ourIP, peerIP, wire.IPProtocolUDP, udpBuf(8)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 { // mcast_solicit broadcasts, retrans_time apart
		f := h.dev.take()
		if len(f) != 1 || !bytes.Equal(f[0].dst, wire.BroadcastMAC) || arpOf(t, f[0]).Operation != 1 {
			t.Fatalf("probe %d: %+v", i, f)
		}
		if s := h.state("10.0.0.1"); s != "INCOMPLETE" {
			t.Fatalf("probe %d: state %s", i, s)
		}
		h.clk.Advance(time.Second)
	}
	if f := h.dev.take(); len(f) != 0 {
		t.Fatalf("sent %d after failure", len(f))
	}
	if s := h.state("10.0.0.1"); s != "FAILED" {
		t.Fatalf("state %s", s)
	}
	h.want("ArpCacheResFailed", 1)
	// A later packet restarts resolution.
	_ = h.l.Output(ourIP, peerIP, wire.IPProtocolUDP, udpBuf(8))
	if f := h.dev.take(); len(f) != 1 || h.state("10.0.0.1") != "INCOMPLETE" {
		t.Fatalf("no new resolution: %d frames, %s", len(f), h.state("10.0.0.1"))
	}
}

func TestARPQueueBoundAndFlush(t *testing.T) {
	h := newHarness(t)
	h.l.sys.NeighUnresQlen.Store(3)
	for i := range 5 {
		b := udpBuf(1)
		b.Bytes()[0] = byte(i)
		_ = h.l.Output(ourIP, peerIP, wire.IPProtocolUDP, b)
	}
	h.want("ArpCacheUnresolvedDiscards", 2)
	h.dev.take()
	h.inputARP(arpPacket(t, 2, peerMAC, peerIP, ourMAC, ourIP))
	f := h.dev.take()
	if len(f) != 3 {
		t.Fatalf("flushed %d, want 3", len(f))
	}
	for i, fr := range f { // the oldest two were dropped
		if !bytes.Equal(fr.dst, peerMAC) || wire.IPv4(fr.data).Payload()[0] != byte(i+2) {
			t.Fatalf("frame %d: %v %x", i, fr.dst, fr.data)
		}
	}
	if s := h.state("10.0.0.1"); s != "REACHABLE" {
		t.Fatalf("state %s", s)
	}
}

func TestNeighbourReachableExpiryAndProbe(t *testing.T) {
	h := newHarness(t)
	h.learnPeer(peerIP, peerMAC)
	h.clk.Advance(46 * time.Second) // > 3/2 base_reachable_time, unused
	if s := h.state("10.0.0.1"); s != "STALE" {
		t.Fatalf("after reachable_time: %s", s)
	}
	_ = h.l.Output(ourIP, peerIP, wire.IPProtocolUDP, udpBuf(8))
	if f := h.dev.take(); len(f) != 1 || f[0].ethertype != wire.EtherTypeIPv4 {
		t.Fatalf("STALE entry must still send: %+v", f)
	}
	if s := h.state("10.0.0.1"); s != "DELAY" {
		t.Fatalf("after use: %s", s)
	}
	h.clk.Advance(5 * time.Second) // delay_first_probe_time
	f := h.dev.take()
	if len(f) != 1 || !bytes.Equal(f[0].dst, peerMAC) || arpOf(t, f[0]).Operation != 1 || h.state("10.0.0.1") != "PROBE" {
		t.Fatalf("want a unicast probe: %+v state %s", f, h.state("10.0.0.1"))
	}
	// A reply confirms the neighbour.
	h.inputARP(arpPacket(t, 2, peerMAC, peerIP, ourMAC, ourIP))
	if s := h.state("10.0.0.1"); s != "REACHABLE" {
		t.Fatalf("after reply: %s", s)
	}
	// Without replies: STALE → DELAY → PROBE ×3 → FAILED.
	h.clk.Advance(46 * time.Second)
	_ = h.l.Output(ourIP, peerIP, wire.IPProtocolUDP, udpBuf(8))
	h.clk.Advance(5*time.Second + 3*time.Second)
	if s := h.state("10.0.0.1"); s != "FAILED" {
		t.Fatalf("unanswered probes: %s", s)
	}
}

func TestNeighbourTableBound(t *testing.T) {
	h := newHarness(t)
	h.l.sys.NeighGcThresh3.Store(4)
	var errs int
	for i := range 6 {
		dst := mustAddr("10.0.0.10").As4()
		dst[3] += byte(i)
		if err := h.l.Output(ourIP, netipFrom4(dst), wire.IPProtocolUDP, udpBuf(8)); err != nil {
			errs++
		}
	}
	if errs != 2 {
		t.Fatalf("%d errors, want 2", errs)
	}
	h.want("ArpCacheTableFulls", 2)
	h.want("ArpCacheForcedGcRuns", 2)
	// Once they fail and age, forced GC makes room.
	h.clk.Advance(10 * time.Second)
	if err := h.l.Output(ourIP, mustAddr("10.0.0.100"), wire.IPProtocolUDP, udpBuf(8)); err != nil {
		t.Fatalf("after GC: %v", err)
	}
	h.want("ArpCacheDestroys", 4)
}

func TestLearnedNeighbourIsNotDemoted(t *testing.T) {
	h := newHarness(t)
	h.learnPeer(peerIP, peerMAC)
	h.inputARP(arpPacket(t, 1, peerMAC, peerIP, make([]byte, 6), ourIP))
	if s := h.state("10.0.0.1"); s != "REACHABLE" {
		t.Fatalf("request with the same MAC demoted the entry to %s", s)
	}
	h.inputARP(arpPacket(t, 1, gwMAC, peerIP, make([]byte, 6), ourIP))
	for _, n := range h.l.Neighbours() {
		if n.Addr == peerIP && (!bytes.Equal(n.MAC, gwMAC) || n.State != "STALE") {
			t.Fatalf("new MAC not learned: %+v", n)
		}
	}
}
