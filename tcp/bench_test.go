package tcp

import (
	"math/rand"
	"net/netip"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/clock"
	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/wire"
)

// queueLink passes the transmit buffers themselves between two stacks
// (no copy), delivered by pump in the benchmark goroutine: it measures
// the TCP code alone.
type queueLink struct {
	clk    *clock.Virtual
	stacks map[netip.Addr]*Stack
	q      []queued
	spare  []queued
	supers int // super-segments sent
}

type queued struct {
	src, dst netip.Addr
	b        *pkt.Buffer
	super    bool // a TSO super-segment, delivered whole (as GRO/LRO would)
}

// gsoQueueEnd is a queueEnd whose device takes TSO super-segments and
// hands them to the peer whole, its checksum vouched for: the path of two
// offloading TAPs, without the kernel in between.
type gsoQueueEnd struct{ queueEnd }

func (e *gsoQueueEnd) GSOMax() int { return 65535 }
func (e *gsoQueueEnd) OutputGSO(src, dst netip.Addr, _ uint8, b *pkt.Buffer, _ int) error {
	e.l.q = append(e.l.q, queued{src, dst, b, true})
	e.l.supers++
	return nil
}

type queueEnd struct {
	l    *queueLink
	addr netip.Addr
}

func (e *queueEnd) Route(netip.Addr) (netip.Addr, int, error) { return e.addr, 1500, nil }
func (e *queueEnd) Output(src, dst netip.Addr, _ uint8, b *pkt.Buffer) error {
	e.l.q = append(e.l.q, queued{src, dst, b, false})
	return nil
}

func (l *queueLink) pump() {
	for len(l.q) > 0 {
		q := l.q
		l.q = l.spare[:0]
		for i, p := range q {
			l.stacks[p.dst].Deliver(p.src, p.dst, p.b.Bytes(), 0, p.super)
			p.b.Release()
			q[i] = queued{}
		}
		l.spare = q
	}
}

func benchPair(b *testing.B) (*queueLink, *Conn, *Conn) {
	return benchPairOn(b, false)
}

// benchPairOn is benchPair; with tso the link takes super-segments.
func benchPairOn(b *testing.B, tso bool) (*queueLink, *Conn, *Conn) {
	l := &queueLink{clk: clock.NewVirtual(t0), stacks: map[netip.Addr]*Stack{}}
	for _, a := range []netip.Addr{addrA, addrB} {
		var n Network = &queueEnd{l, a}
		if tso {
			n = &gsoQueueEnd{queueEnd{l, a}}
		}
		l.stacks[a] = New(Config{Network: n, Clock: l.clk, Rand: rand.New(rand.NewSource(1))})
	}
	ln, err := l.stacks[addrB].Listen(netip.AddrPortFrom(addrB, 80), 16)
	if err != nil {
		b.Fatal(err)
	}
	c, err := l.stacks[addrA].connect(netip.AddrPort{}, netip.AddrPortFrom(addrB, 80))
	if err != nil {
		b.Fatal(err)
	}
	l.pump()
	s, err := ln.AcceptTCP()
	if err != nil {
		b.Fatal(err)
	}
	return l, c, s
}

// BenchmarkBulk moves 64 KB per op from one stack to the other.
func BenchmarkBulk(b *testing.B) { benchBulk(b, false) }

// BenchmarkBulkTSO is BenchmarkBulk over a link that takes TSO
// super-segments and delivers them whole with their checksum vouched for.
func BenchmarkBulkTSO(b *testing.B) { benchBulk(b, true) }

func benchBulk(b *testing.B, tso bool) {
	l, c, s := benchPairOn(b, tso)
	c.SetWriteBuffer(1 << 20)
	chunk := make([]byte, 64<<10)
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sent, got := 0, 0
		for got < len(chunk) {
			if sent < len(chunk) {
				sent += c.tryWrite(chunk[sent:])
			}
			l.pump()
			for n := s.tryRead(buf); n > 0; n = s.tryRead(buf) {
				got += n
			}
			l.pump()
			l.clk.Advance(time.Millisecond) // let delayed ACKs fire
		}
	}
	if tso && l.supers == 0 {
		b.Fatal("no super-segment was sent")
	}
}

// BenchmarkPingPong is a 1-byte request and a 1-byte response per op.
func BenchmarkPingPong(b *testing.B) {
	l, c, s := benchPair(b)
	c.SetNoDelay(true)
	s.SetNoDelay(true)
	one := []byte{1}
	buf := make([]byte, 16)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.tryWrite(one)
		l.pump()
		if s.tryRead(buf) != 1 {
			b.Fatal("server got nothing")
		}
		s.tryWrite(one)
		l.pump()
		if c.tryRead(buf) != 1 {
			b.Fatal("client got nothing")
		}
	}
}

type discardNet struct{}

func (discardNet) Route(netip.Addr) (netip.Addr, int, error) { return hLocal, 1500, nil }
func (discardNet) Output(_, _ netip.Addr, _ uint8, b *pkt.Buffer) error {
	b.Release()
	return nil
}

// BenchmarkSynFlood measures the listen path for spoofed SYNs answered with
// cookies (SYN queue full), the SYN-flood case.
func BenchmarkSynFlood(b *testing.B) {
	s := New(Config{Network: discardNet{}, Clock: clock.NewVirtual(t0), Rand: rand.New(rand.NewSource(1))})
	s.sys.Syncookies.Store(2)
	if _, err := s.Listen(netip.AddrPortFrom(hLocal, 80), 128); err != nil {
		b.Fatal(err)
	}
	segs := make([][]byte, 256)
	srcs := make([]netip.Addr, len(segs))
	for i := range segs {
		o := synOpts(uint32(i))
		hl := 20 + wire.TCPOptionsLen(o)
		seg := make([]byte, hl)
		f := wire.TCPFields{SrcPort: uint16(1024 + i), DstPort: 80, Seq: uint32(i * 7919), Flags: wire.TCPFlagSYN, Window: 64240}
		f.Encode(seg)
		wire.EncodeTCPOptions(seg[20:], o)
		srcs[i] = netip.AddrFrom4([4]byte{198, 18, 0, byte(i)})
		wire.TCP(seg).SetChecksum(wire.TCPChecksum(srcs[i], hLocal, seg))
		segs[i] = seg
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % len(segs)
		s.Deliver(srcs[k], hLocal, segs[k], 0, false)
	}
	b.StopTimer()
	if s.Counter("TcpExtSyncookiesSent") != uint64(b.N) {
		b.Fatal("not all SYNs answered with cookies")
	}
}
