package netdev

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/wire"
)

func TestFlowHash(t *testing.T) {
	a, b := [4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}
	const mf = 0x2000
	hash := func(f []byte) uint32 {
		h, ok := flowHash(f, 12345)
		if !ok {
			t.Fatalf("frame not hashed")
		}
		return h
	}
	for _, tc := range []struct {
		name   string
		x, y   []byte
		sameOK bool // must x and y hash alike?
	}{
		{"tcp: other port, other flow", ipv4Frame(ourMAC, wire.IPProtocolTCP, a, b, 1, 80, 0, 0), ipv4Frame(ourMAC, wire.IPProtocolTCP, a, b, 2, 80, 0, 0), false},
		{"udp: other port, other flow", ipv4Frame(ourMAC, wire.IPProtocolUDP, a, b, 1, 53, 0, 0), ipv4Frame(ourMAC, wire.IPProtocolUDP, a, b, 2, 53, 0, 0), false},
		{"tcp: reverse direction, same flow", ipv4Frame(ourMAC, wire.IPProtocolTCP, a, b, 1, 80, 0, 0), ipv4Frame(ourMAC, wire.IPProtocolTCP, b, a, 80, 1, 0, 0), true},
		{"first fragment ignores ports", ipv4Frame(ourMAC, wire.IPProtocolUDP, a, b, 1, 53, mf, 0), ipv4Frame(ourMAC, wire.IPProtocolUDP, a, b, 2, 54, mf, 0), true},
		{"later fragment matches first", ipv4Frame(ourMAC, wire.IPProtocolUDP, a, b, 1, 53, mf, 0), ipv4Frame(ourMAC, wire.IPProtocolUDP, a, b, 7, 7, 185, 0), true},
		{"icmp ignores ports", ipv4Frame(ourMAC, 1, a, b, 1, 1, 0, 0), ipv4Frame(ourMAC, 1, a, b, 2, 2, 0, 0), true},
		{"protocol matters", ipv4Frame(ourMAC, 1, a, b, 0, 0, 0, 0), ipv4Frame(ourMAC, 47, a, b, 0, 0, 0, 0), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if same := hash(tc.x) == hash(tc.y); same != tc.sameOK {
				t.Fatalf("same hash = %v, want %v", same, tc.sameOK)
			}
		})
	}
	for _, f := range [][]byte{arpFrame(1), ipv4Frame(ourMAC, 6, a, b, 1, 2, 0, 0)[:14+19]} {
		if _, ok := flowHash(f, 1); ok {
			t.Fatalf("hashed a non-IPv4 or truncated frame % x", f[:16])
		}
	}
}

func TestReceiveDrops(t *testing.T) {
	unknown := arpFrame(0)
	binary.BigEndian.PutUint16(unknown[12:], 0x86dd)
	multicast := arpFrame(0)
	copy(multicast, []byte{0x01, 0x00, 0x5e, 0, 0, 1})
	otherHost := flowFrame(1, 0)
	copy(otherHost, otherMAC)
	for _, tc := range []struct {
		name     string
		frame    []byte
		accepted bool
		counter  string // incremented to 1 by this frame
	}{
		{"runt", make([]byte, 13), false, "NetdevRxRunt"},
		{"empty", nil, false, "NetdevRxRunt"},
		{"unicast to another host", otherHost, false, "NetdevRxOtherHost"},
		{"unknown ethertype", unknown, true, "NetdevRxUnknownEthertype"},
		{"unicast to us", flowFrame(1, 0), true, "SoftnetProcessed"},
		{"broadcast", arpFrame(0), true, "SoftnetProcessed"},
		{"multicast", multicast, true, "SoftnetProcessed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			link, peer := newTestPipe(1)
			defer peer.Close()
			d := New(link, Config{Shards: 1})
			defer d.Close()
			handled := 0
			for _, et := range []uint16{wire.EtherTypeARP, wire.EtherTypeIPv4} {
				d.Handle(et, func(*pkt.Buffer) { handled++ })
			}
			if got := d.Receive(buf(tc.frame)); got != tc.accepted {
				t.Fatalf("Receive = %v", got)
			}
			d.shards[0].netRxAction()
			c := counters(d)
			if c[tc.counter] != 1 || c["NetdevRxFrames"] != 1 || c["NetdevRxBytes"] != uint64(len(tc.frame)) {
				t.Fatalf("counters %v", c)
			}
			if wantHandled := tc.counter == "SoftnetProcessed"; (handled == 1) != wantHandled {
				t.Fatalf("handled %d", handled)
			}
		})
	}
}

func TestHandlerSeesL3PacketAndShard(t *testing.T) {
	link, peer := newTestPipe(1)
	defer peer.Close()
	d := New(link, Config{Shards: 4})
	defer d.Close()
	var got []byte
	shard := -1
	d.Handle(wire.EtherTypeIPv4, func(b *pkt.Buffer) { got, shard = slices.Clone(b.Bytes()), b.Shard })
	f := flowFrame(3, 99)
	d.Receive(buf(f))
	for _, s := range d.shards {
		s.netRxAction()
	}
	if !slices.Equal(got, f[14:]) || shard < 0 || d.Softnet()[shard].Processed != 1 {
		t.Fatalf("handler got % x on shard %d", got, shard)
	}
}

// TestFlowOrderAcrossShards sends interleaved frames of 16 flows through a
// 4-queue pipe into 4 shards: each flow stays on one shard and in order,
// and the flows spread over several shards.
// TestFlowOrderAcrossShards: four readers race into four shards, polls
// run inline on the readers or on the workers and, with a budget of 8
// frames, change hands between them all the time; each flow still reaches
// its handler in order, on one shard.
func TestFlowOrderAcrossShards(t *testing.T) {
	for _, threaded := range []bool{false, true} {
		t.Run(fmt.Sprintf("threaded=%v", threaded), func(t *testing.T) { testFlowOrder(t, threaded) })
	}
}

func testFlowOrder(t *testing.T, threaded bool) {
	const flows, perFlow = 16, 500
	link, peer := newTestPipe(4)
	defer peer.Close()
	sc := NewSysctls()
	sc.MaxBacklog.Store(flows * perFlow)
	sc.DevWeight.Store(3)
	sc.Budget.Store(8)
	d := New(link, Config{Shards: 4, Sysctls: sc, Threaded: threaded})
	var mu sync.Mutex
	next := make([]uint32, flows)
	shardOf := make([]int, flows)
	for i := range shardOf {
		shardOf[i] = -1
	}
	var bad []string
	d.Handle(wire.EtherTypeIPv4, func(b *pkt.Buffer) {
		p := b.Bytes()
		flow := int(binary.BigEndian.Uint16(p[20:])) - 40000
		seq := binary.BigEndian.Uint32(p[28:])
		mu.Lock()
		defer mu.Unlock()
		if seq != next[flow] || (shardOf[flow] >= 0 && shardOf[flow] != b.Shard) {
			bad = append(bad, "flow out of order or moved shard")
		}
		next[flow], shardOf[flow] = seq+1, b.Shard
	})
	d.Start()
	for seq := range uint32(perFlow) {
		for flow := range flows {
			// Each flow keeps one link queue, as a NIC's RSS would; the
			// four reader goroutines race, so from there order is netdev's job.
			if err := peer.WriteFrame(flow%4, flowFrame(flow, seq)); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, "all frames", func() bool {
		var n uint64
		for _, st := range d.Softnet() {
			n += st.Processed
		}
		return n == flows*perFlow
	})
	d.Close()
	if len(bad) > 0 {
		t.Fatalf("%d violations, first: %s", len(bad), bad[0])
	}
	used := map[int]bool{}
	for _, s := range shardOf {
		used[s] = true
	}
	if len(used) < 2 {
		t.Fatalf("16 flows all on shards %v", used)
	}
}

func TestTransmit(t *testing.T) {
	link, peer := newTestPipe(2)
	defer peer.Close()
	d := New(link, Config{Shards: 2})
	defer d.Close()
	payload := []byte("an IPv4 packet, more or less")
	for _, tc := range []struct {
		name    string
		dst     net.HardwareAddr
		size    int
		shard   int
		wantErr bool
	}{
		{"fits", peerMAC, len(payload), 0, false},
		{"queue from shard", bcastMAC, len(payload), 3, false},
		{"MTU exactly", peerMAC, 1500, 1, false},
		{"over MTU", peerMAC, 1501, 0, true},
		{"bad MAC", net.HardwareAddr{1, 2, 3}, 10, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := pkt.Get(tc.size)
			copy(b.Append(tc.size), payload)
			b.Shard = tc.shard
			err := d.Transmit(tc.dst, wire.EtherTypeIPv4, b)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Transmit: %v", err)
			}
			if tc.wantErr {
				return
			}
			frame := make([]byte, 2048)
			n, err := peer.ReadFrame(tc.shard%2, frame)
			if err != nil {
				t.Fatal(err)
			}
			frame = frame[:n]
			if n != 14+tc.size || !slices.Equal(frame[0:6], tc.dst) || !slices.Equal(frame[6:12], ourMAC) ||
				binary.BigEndian.Uint16(frame[12:]) != wire.EtherTypeIPv4 || !slices.Equal(frame[14:14+min(tc.size, len(payload))], payload[:min(tc.size, len(payload))]) {
				t.Fatalf("frame % x", frame[:min(n, 40)])
			}
		})
	}
	c := counters(d)
	if c["NetdevTxFrames"] != 3 || c["NetdevTxErrors"] != 2 || c["NetdevTxBytes"] != uint64(3*14+2*len(payload)+1500) {
		t.Fatalf("counters %v", c)
	}
	d.Close()
	b := pkt.Get(10)
	b.Append(10)
	if err := d.Transmit(peerMAC, wire.EtherTypeIPv4, b); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Transmit after Close: %v", err)
	}
}

func TestCloseStopsEveryGoroutine(t *testing.T) {
	for _, tc := range []struct {
		name          string
		queues, shard int
		start         bool
	}{
		{"started", 4, 4, true},
		{"never started", 2, 3, false},
		{"one queue many shards", 1, 8, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			baseline := runtime.NumGoroutine()
			link, peer := newTestPipe(tc.queues)
			d := New(link, Config{Shards: tc.shard})
			d.Handle(wire.EtherTypeIPv4, func(*pkt.Buffer) {})
			if tc.start {
				d.Start()
			}
			for i := range 100 {
				peer.WriteFrame(i%tc.queues, flowFrame(i, 0))
				d.Receive(buf(flowFrame(i, 1)))
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			if err := d.Close(); err != nil {
				t.Fatal("second Close:", err)
			}
			d.Start() // after Close: starts nothing
			peer.Close()
			waitFor(t, "the device's goroutines to end", func() bool { return runtime.NumGoroutine() <= baseline })
			if d.Receive(buf(flowFrame(1, 1))) {
				t.Fatal("Receive after Close accepted a frame")
			}
		})
	}
}

func TestCountersOrder(t *testing.T) {
	link, peer := newTestPipe(1)
	defer peer.Close()
	d := New(link, Config{Shards: 1})
	defer d.Close()
	var names []string
	d.Counters(func(name string, _ uint64) { names = append(names, name) })
	want := []string{"NetdevRxFrames", "NetdevRxBytes", "NetdevRxRunt", "NetdevRxOtherHost", "NetdevRxUnknownEthertype",
		"NetdevRxErrors", "NetdevTxFrames", "NetdevTxBytes", "NetdevTxErrors", "NetdevTxQueueFull",
		"SoftnetProcessed", "SoftnetDropped", "SoftnetTimeSqueeze"}
	if !slices.Equal(names, want) {
		t.Fatalf("names %v", names)
	}
}

// vouchingLink marks every frame it reads with RxInfo.ChecksumValid, as the
// offload TAP does for the kernel's CHECKSUM_PARTIAL frames.
type vouchingLink struct{ *driver.PipeEnd }

func (l vouchingLink) ReadFrameInfo(q int, b []byte) (int, driver.RxInfo, error) {
	n, err := l.ReadFrame(q, b)
	return n, driver.RxInfo{ChecksumValid: n%2 == 0}, err
}

// TestReaderCarriesRxInfo: what the link vouches for reaches the handler on
// the buffer (ChecksumValid), frame by frame, and a plain link vouches for
// nothing.
func TestReaderCarriesRxInfo(t *testing.T) {
	for _, vouch := range []bool{false, true} {
		link, peer := newTestPipe(1)
		var l driver.Link = link
		if vouch {
			l = vouchingLink{link}
		}
		d := New(l, Config{Shards: 1})
		got := make(chan [2]int, 8)
		d.Handle(wire.EtherTypeIPv4, func(b *pkt.Buffer) {
			v := 0
			if b.ChecksumValid {
				v = 1
			}
			got <- [2]int{len(b.Bytes()) + wire.EthernetHeaderLen, v}
		})
		d.Start()
		even, odd := flowFrame(1, 1), append(flowFrame(1, 2), 0)
		for _, f := range [][]byte{even, odd} {
			if err := peer.WriteFrame(0, f); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range [][]byte{even, odd} {
			g := <-got
			want := vouch && len(f)%2 == 0
			if g[0] != len(f) || (g[1] == 1) != want {
				t.Errorf("vouching link %v: frame of %d bytes arrived as %d bytes, ChecksumValid %v, want %v", vouch, len(f), g[0], g[1] == 1, want)
			}
		}
		d.Close()
		peer.Close()
	}
}
