package ipv4

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/tapstack/tapstack/wire"
)

// frag builds a fragment of a UDP-protocol datagram with the given ID:
// payload bytes [off, off+len(data)) of the datagram.
func frag(t testing.TB, id uint16, off int, mf bool, data []byte) []byte {
	ip := ipLayer(peerIP, ourIP, layers.IPProtocolUDP)
	ip.Id = id
	ip.FragOffset = uint16(off / 8)
	if mf {
		ip.Flags = layers.IPv4MoreFragments
	}
	return ser(t, ip, payload(0), bytesPayload(data))
}

func datagram(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func TestReassembly(t *testing.T) {
	d := datagram(3000)
	type piece struct {
		off, end int
		mf       bool
	}
	p := func(off, end int) piece { return piece{off, end, end < len(d)} }
	tests := []struct {
		name      string
		pieces    []piece
		delivered bool
		counters  map[string]uint64
	}{
		{"in order", []piece{p(0, 1480), p(1480, 2960), p(2960, 3000)}, true,
			map[string]uint64{"IpReasmReqds": 3, "IpReasmOKs": 1, "IpReasmFails": 0}},
		{"reverse", []piece{p(2960, 3000), p(1480, 2960), p(0, 1480)}, true,
			map[string]uint64{"IpReasmOKs": 1}},
		{"middle last", []piece{p(0, 1480), p(2960, 3000), p(1480, 2960)}, true, nil},
		{"exact duplicate ignored", []piece{p(0, 1480), p(0, 1480), p(1480, 2960), p(2960, 3000)}, true,
			map[string]uint64{"IpReasmReqds": 4, "IpReasmOKs": 1, "IpReasmFails": 0}},
		{"duplicate inside a run", []piece{p(0, 1480), p(1480, 2960), p(8, 2000), p(2960, 3000)}, true,
			map[string]uint64{"IpReasmOKs": 1}},
		{"partial overlap kills the datagram", []piece{p(0, 1480), p(1472, 2960), p(2960, 3000)}, false,
			map[string]uint64{"IpReasmFails": 1, "IpExtReasmOverlaps": 1, "IpReasmOKs": 0}},
		{"overlap at the front", []piece{p(1480, 2960), p(1000, 1600)}, false,
			map[string]uint64{"IpExtReasmOverlaps": 1}},
		{"two last fragments disagree", []piece{{2960, 3000, false}, {1480, 2000, false}}, false,
			map[string]uint64{"IpReasmFails": 1}},
		{"MF fragment overlapping the last", []piece{{2960, 3000, false}, {1480, 2968, true}}, false,
			map[string]uint64{"IpReasmFails": 1}},
		{"tiny fragments", func() []piece {
			var ps []piece
			for off := 0; off < 3000; off += 8 {
				ps = append(ps, p(off, min(off+8, 3000)))
			}
			return ps
		}(), true, map[string]uint64{"IpReasmOKs": 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			var got [][]byte
			h.l.RegisterProtocol(wire.IPProtocolUDP, func(pk Packet) { got = append(got, append([]byte(nil), pk.Payload...)) })
			for _, pc := range tc.pieces {
				h.inputIP(frag(t, 9, pc.off, pc.mf, d[pc.off:pc.end]))
			}
			if tc.delivered != (len(got) == 1) || len(got) > 1 {
				t.Fatalf("delivered %d datagrams", len(got))
			}
			if tc.delivered && !bytes.Equal(got[0], d) {
				t.Fatal("reassembled payload differs")
			}
			for name, v := range tc.counters {
				h.want(name, v)
			}
			if tc.delivered && h.l.reasm.memUsed() != 0 {
				t.Fatalf("memory still charged: %d", h.l.reasm.memUsed())
			}
		})
	}
}

func TestReassemblyTimeout(t *testing.T) {
	h := newHarness(t)
	h.learnPeer(peerIP, peerMAC)
	d := datagram(2000)
	h.inputIP(frag(t, 1, 0, true, d[:1480])) // first fragment only
	h.inputIP(frag(t, 2, 1480, true, d[1480:1488]))
	h.clk.Advance(29 * time.Second)
	if len(h.dev.take()) != 0 {
		t.Fatal("early expiry")
	}
	h.clk.Advance(time.Second)
	h.want("IpReasmTimeout", 2)
	h.want("IpReasmFails", 2)
	f := h.dev.take()
	if len(f) != 1 { // only the datagram whose first fragment arrived
		t.Fatalf("sent %d ICMP errors, want 1", len(f))
	}
	pk := decode(t, f[0].data)
	ic := pk.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if ic.TypeCode != layers.CreateICMPv4TypeCode(11, 1) {
		t.Fatalf("got %v", ic.TypeCode)
	}
	q := wire.IPv4(ic.Payload)
	if q.ID() != 1 || q.FragOffset() != 0 || !q.MF() {
		t.Fatalf("quote is not the first fragment: %x", ic.Payload[:20])
	}
	h.want("IcmpOutTimeExcds", 1)
	if h.l.reasm.memUsed() != 0 {
		t.Fatalf("memory still charged: %d", h.l.reasm.memUsed())
	}
}

func TestReassemblyMemoryBound(t *testing.T) {
	h := newHarness(t)
	h.l.sys.IpfragHighThresh.Store(64 << 10)
	d := datagram(1480)
	for id := range uint16(100) {
		h.inputIP(frag(t, id, 0, true, d))
	}
	used := h.l.reasm.memUsed()
	if used > 64<<10+4096 {
		t.Fatalf("reassembly uses %d bytes", used)
	}
	fails := h.l.Counter("IpReasmFails")
	if fails == 0 || fails+uint64(len(h.l.reasm.m)) != 100 {
		t.Fatalf("fails %d queues %d", fails, len(h.l.reasm.m))
	}
	// Over the threshold nothing is accepted until queues expire.
	h.clk.Advance(30 * time.Second)
	if h.l.reasm.memUsed() != 0 {
		t.Fatal("expired queues still charged")
	}
	h.inputIP(frag(t, 500, 0, true, d))
	if len(h.l.reasm.m) != 1 {
		t.Fatal("not accepting after expiry")
	}
}

func TestReassemblyOversize(t *testing.T) {
	h := newHarness(t)
	d := datagram(1480)
	h.inputIP(frag(t, 3, 0, true, d))
	h.inputIP(frag(t, 3, 65528, false, d[:100])) // ends beyond 65535
	h.want("IpReasmFails", 1)
	h.want("IpReasmOKs", 0)
}
