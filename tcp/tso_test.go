package tcp

import (
	"bytes"
	"encoding/binary"
	"math/rand"
	"net/netip"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/clock"
	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/wire"
)

// superSeg is one super-segment a fake TSO device was handed.
type superSeg struct {
	seq   uint32
	n     int // payload bytes
	mss   int
	total int // IPv4 length: 20 + header + payload
}

// tsoDevice cuts super-segments the way a TSO device does, for the fakes
// below: the header copied in front of every mss-sized piece with its own
// sequence number and checksum, PSH and FIN kept on the last piece only.
func tsoDevice(src, dst netip.Addr, super []byte, mss int, emit func(*pkt.Buffer) error) {
	h := wire.TCP(super)
	hl := h.HeaderLen()
	for off := hl; off < len(super); off += mss {
		end := min(off+mss, len(super))
		b := pkt.Get(hl + end - off)
		piece := b.Append(hl + end - off)
		copy(piece[hl:], super[off:end])
		copy(piece, super[:hl])
		binary.BigEndian.PutUint32(piece[4:], h.Seq()+uint32(off-hl))
		if end < len(super) {
			piece[13] &^= fP | fF
		}
		wire.TCP(piece).SetChecksum(0)
		wire.TCP(piece).SetChecksum(wire.TCPChecksum(src, dst, piece))
		emit(b)
	}
}

// gsoHarness is the packet-script harness over a Network with TSO: it
// records every super-segment and queues the wire segments the device
// makes of it for expect(), as if they had been sent one by one.
type gsoHarness struct {
	*harness
	gsoMax int
	refuse bool // OutputGSO fails with ErrNoGSO (TSO turned off under us)
	calls  int
	supers []superSeg
}

func newGSOHarness(t *testing.T, gsoMax int, mod func(*Sysctls)) *gsoHarness {
	g := &gsoHarness{harness: &harness{t: t, clk: clock.NewVirtual(t0), peer: hPeer}, gsoMax: gsoMax}
	sys := NewSysctls()
	if mod != nil {
		mod(sys)
	}
	g.s = New(Config{Network: g, Clock: g.clk, Sysctls: sys, Rand: rand.New(rand.NewSource(1))})
	return g
}

func (g *gsoHarness) GSOMax() int { return g.gsoMax }

func (g *gsoHarness) OutputGSO(src, dst netip.Addr, proto uint8, b *pkt.Buffer, mss int) error {
	g.calls++
	if g.refuse {
		return ErrNoGSO
	}
	defer b.Release()
	super := wire.TCP(b.Bytes())
	s := superSeg{seq: super.Seq(), n: len(super.Payload()), mss: mss, total: 20 + len(super)}
	if s.total > g.gsoMax {
		g.t.Errorf("super-segment of %d bytes exceeds GSOMax %d", s.total, g.gsoMax)
	}
	g.supers = append(g.supers, s)
	tsoDevice(src, dst, super, mss, func(p *pkt.Buffer) error { return g.Output(src, dst, proto, p) })
	return nil
}

// wireSeg is an emitted segment with its timestamp value.
type wireSeg struct {
	seq   uint32
	flags uint8
	tsval uint32
	data  []byte
}

// takeAll returns and clears every segment the stack sent.
func (g *gsoHarness) takeAll() []wireSeg {
	g.mu.Lock()
	defer g.mu.Unlock()
	var segs []wireSeg
	for _, d := range g.out {
		s := wire.TCP(d)
		var o wire.TCPOptions
		if err := wire.ParseTCPOptions(s.Options(), &o); err != nil {
			g.t.Fatal(err)
		}
		segs = append(segs, wireSeg{s.Seq(), s.Flags(), o.TSVal, s.Payload()})
	}
	g.out = nil
	return segs
}

// tsoEstab opens a connection whose peer offers timestamps, SACK and a
// window of wnd bytes (scaled by 2^7 when wscale), and lets cwnd segments go
// with a 100 µs path (so autosizing allows whole super-segments).
func (g *gsoHarness) tsoEstab(cwnd uint32, wnd int, wscale bool) (c *Conn, iss uint32, lport uint16) {
	g.t.Helper()
	c, syn := g.dial()
	iss, lport = syn.seg.Seq()+1, syn.seg.SrcPort()
	o := synOpts(1)
	if !wscale {
		o.WScale = -1
	}
	g.inject(seg{src: 80, dst: lport, seq: 5000, ack: iss, flags: fS | fA, opts: o, wnd: uint16(min(wnd, 65535))})
	g.expect().ACK()
	if wscale {
		g.ack(c, iss, lport, iss, wnd>>7)
	}
	c.SetWriteBuffer(200_000)
	c.mu.Lock()
	c.rec.cong.Cwnd, c.rec.cong.Ssthresh = cwnd, cwnd
	c.rtt.srtt, c.rtt.minRTT = 100*time.Microsecond, 100*time.Microsecond
	c.mu.Unlock()
	return c, iss, lport
}

// ack sends the peer's ACK of everything below ack with window field wnd.
func (g *gsoHarness) ack(c *Conn, iss uint32, lport uint16, ack uint32, wnd int) {
	g.inject(seg{src: 80, dst: lport, seq: 5001, ack: ack, flags: fA, wnd: uint16(wnd),
		opts: &wire.TCPOptions{WScale: -1, HasTS: true, TSVal: 2, TSEcr: 1}})
}

// writeRandom turns Nagle off (so the stream's short tail goes at once)
// and writes size random bytes to c.
func (g *gsoHarness) writeRandom(c *Conn, size int) []byte {
	g.t.Helper()
	c.SetNoDelay(true)
	data := make([]byte, size)
	rand.New(rand.NewSource(int64(size))).Read(data)
	if n, err := c.Write(data); n != size || err != nil {
		g.t.Fatalf("write %d of %d: %v", n, size, err)
	}
	return data
}

// checkStream asserts that segs carry data from offset off on, contiguous
// from seq, each at most mss bytes, with PSH only where a super-segment
// ends and one TSval per super-segment; it returns the bytes covered.
func checkStream(t *testing.T, segs []wireSeg, supers []superSeg, seq uint32, data []byte, mss int) int {
	t.Helper()
	off := 0
	for i, s := range segs {
		if s.seq != seq+uint32(off) || len(s.data) > mss || !bytes.Equal(s.data, data[off:off+len(s.data)]) {
			t.Fatalf("segment %d: seq %d len %d, want seq %d, at most %d bytes of the stream", i, s.seq, len(s.data), seq+uint32(off), mss)
		}
		off += len(s.data)
		if i > 0 && s.tsval != segs[i-1].tsval && !superEndsAt(supers, s.seq) {
			t.Fatalf("segment %d: TSval %d differs within a super-segment", i, s.tsval)
		}
	}
	return off
}

func superEndsAt(supers []superSeg, seq uint32) bool {
	for _, s := range supers {
		if s.seq+uint32(s.n) == seq {
			return true
		}
	}
	return false
}

func TestTSOBulkSuperSegments(t *testing.T) {
	g := newGSOHarness(t, 65535, nil)
	c, iss, lport := g.tsoEstab(300, 8<<20, true)
	outSegs, orig := g.s.Counter("TcpOutSegs"), g.s.Counter("TcpExtTCPOrigDataSent")
	data := g.writeRandom(c, 300_000)
	const mss = 1448
	// 65535 - 20 (IPv4) - 32 (TCP with timestamps) holds 45 segments.
	want := []int{45 * mss, 45 * mss, 45 * mss, 45 * mss, len(data) - 4*45*mss}
	if len(g.supers) != len(want) {
		t.Fatalf("super-segments %+v, want payloads %v", g.supers, want)
	}
	for i, s := range g.supers {
		if s.n != want[i] || s.mss != mss || s.total > 65535 {
			t.Fatalf("super-segment %d: %+v, want %d bytes cut at %d", i, s, want[i], mss)
		}
	}
	segs := g.takeAll()
	if got := checkStream(t, segs, g.supers, iss, data, mss); got != len(data) {
		t.Fatalf("%d bytes on the wire, want %d", got, len(data))
	}
	for i, s := range segs {
		if last := superEndsAt(g.supers, s.seq+uint32(len(s.data))); (s.flags&fP != 0) != (last && i == len(segs)-1) {
			t.Fatalf("segment %d (seq %d): PSH %v", i, s.seq, s.flags&fP != 0)
		}
	}
	// Tcp OutSegs and TCPOrigDataSent count wire segments (tcp_skb_pcount).
	if d := g.s.Counter("TcpOutSegs") - outSegs; d != uint64(len(segs)) {
		t.Fatalf("OutSegs grew by %d for %d wire segments", d, len(segs))
	}
	if d := g.s.Counter("TcpExtTCPOrigDataSent") - orig; d != uint64(len(segs)) {
		t.Fatalf("TCPOrigDataSent grew by %d for %d wire segments", d, len(segs))
	}
	g.ack(c, iss, lport, iss+uint32(len(data)), 65535)
	if c.snd.una != c.snd.nxt || !c.rtoAt.IsZero() {
		t.Fatal("the ACK of every super-segment left data outstanding")
	}
}

func TestTSOCongestionWindowLimits(t *testing.T) {
	const mss = 1448
	g := newGSOHarness(t, 65535, func(s *Sysctls) { s.CongestionControl.Store("reno") })
	c, iss, lport := g.tsoEstab(10, 8<<20, true)
	c.Write(make([]byte, 100_000))
	// tcp_cwnd_test: half of cwnd per super-segment, so two are in flight.
	sizes := func() []int {
		var n []int
		for _, s := range g.supers {
			n = append(n, s.n/mss)
		}
		g.supers = nil
		g.drain()
		return n
	}
	if got := sizes(); len(got) != 2 || got[0] != 5 || got[1] != 5 {
		t.Fatalf("initial window went out as %v segments, want [5 5]", got)
	}
	// Three segments acknowledged 1.5 ms later (past the 1 ms deferral
	// bound, before the loss probe): exactly cwnd - in flight = 3.
	g.after(1500 * time.Microsecond)
	g.ack(c, iss, lport, iss+3*mss, 65535)
	if got := sizes(); len(got) != 1 || got[0] != 3 || c.rec.cong.Cwnd != 10 {
		t.Fatalf("after ACK of 3: %v segments (cwnd %d), want [3]", got, c.rec.cong.Cwnd)
	}
	// One more acknowledged at once: a one-segment send is deferred while
	// less than a third of the window is free (tcp_tso_should_defer)...
	g.ack(c, iss, lport, iss+4*mss, 65535)
	if g.pending() != 0 {
		t.Fatalf("sent %d segments instead of deferring", g.pending())
	}
	// ... and goes out whole once the next ACK frees four.
	g.ack(c, iss, lport, iss+7*mss, 65535)
	if got := sizes(); len(got) != 1 || got[0] != 4 {
		t.Fatalf("after ACK to 7: %v segments, want [4]", got)
	}
}

func TestTSOReceiveWindowLimits(t *testing.T) {
	const mss = 1448
	g := newGSOHarness(t, 65535, nil)
	wnd := 7*mss + 100
	c, iss, lport := g.tsoEstab(100, wnd, false)
	c.Write(make([]byte, 100_000))
	// Nothing in flight: the whole window goes, its short tail included
	// (tcp_mss_split_point: Nagle holds a tail only behind unacked data).
	if len(g.supers) != 1 || g.supers[0].n != wnd {
		t.Fatalf("super-segments %+v, want one of %d bytes", g.supers, wnd)
	}
	g.supers = nil
	g.drain()
	// Two segments acknowledged, the window now ends 3 segments and 100
	// bytes past snd_nxt: 3 full segments go, the tail waits (Nagle).
	g.ack(c, iss, lport, iss+2*mss, wnd+mss+100)
	if len(g.supers) != 1 || g.supers[0].n != 3*mss || g.supers[0].seq != iss+uint32(wnd) {
		t.Fatalf("super-segments %+v, want 3 segments at %d", g.supers, iss+uint32(wnd))
	}
}

func TestTSOOffKeepsSegments(t *testing.T) {
	g := newGSOHarness(t, 0, nil)
	c, iss, _ := g.tsoEstab(200, 8<<20, true)
	data := g.writeRandom(c, 50_000)
	if g.calls != 0 {
		t.Fatalf("OutputGSO called %d times with GSOMax 0", g.calls)
	}
	segs := g.takeAll()
	if got := checkStream(t, segs, nil, iss, data, 1448); got != len(data) || len(segs) != (len(data)+1447)/1448 {
		t.Fatalf("%d bytes in %d segments", got, len(segs))
	}
}

func TestTSOSoftwareFallback(t *testing.T) {
	g := newGSOHarness(t, 65535, nil)
	g.refuse = true
	c, iss, _ := g.tsoEstab(200, 8<<20, true)
	outSegs := g.s.Counter("TcpOutSegs")
	data := g.writeRandom(c, 100_000)
	if g.calls != 2 { // 45 segments, then the other 24 and a bit
		t.Fatalf("OutputGSO called %d times, want 2", g.calls)
	}
	// harness.Output verified every checksum; the stream must be whole.
	segs := g.takeAll()
	if got := checkStream(t, segs, nil, iss, data, 1448); got != len(data) {
		t.Fatalf("%d bytes on the wire, want %d", got, len(data))
	}
	for i, s := range segs {
		want := i == len(segs)-1 // PSH marks the end of the data only
		if s.flags&fP != 0 != want || s.tsval != segs[0].tsval {
			t.Fatalf("segment %d: flags %#x TSval %d", i, s.flags, s.tsval)
		}
	}
	if d := g.s.Counter("TcpOutSegs") - outSegs; d != uint64(len(segs)) {
		t.Fatalf("OutSegs grew by %d for %d segments", d, len(segs))
	}
}

// gsoLinkEnd is a testLink end whose device segments (TSO): super-segments
// leave as mss-sized segments through the link's impairment.
type gsoLinkEnd struct {
	linkEnd
	supers, rtxSupers int
	highest           uint32
}

func (e *gsoLinkEnd) GSOMax() int { return 65535 }

func (e *gsoLinkEnd) OutputGSO(src, dst netip.Addr, proto uint8, b *pkt.Buffer, mss int) error {
	super := wire.TCP(b.Bytes())
	e.supers++
	if e.supers > 1 && int32(super.Seq()-e.highest) < 0 {
		e.rtxSupers++
	}
	e.highest = super.Seq() + uint32(len(super.Payload()))
	tsoDevice(src, dst, super, mss, func(p *pkt.Buffer) error { return e.Output(src, dst, proto, p) })
	b.Release()
	return nil
}

func TestTSOTransferRecoversLostPieces(t *testing.T) {
	l := newTestLink(21)
	end := &gsoLinkEnd{linkEnd: linkEnd{l, addrA}}
	a := New(Config{Network: end, Clock: l.clk, Sysctls: NewSysctls(), Rand: rand.New(rand.NewSource(1))})
	l.stacks[addrA] = a
	b := l.newStack(addrB, nil)
	c, s := l.pair(t, a, b)
	c.SetWriteBuffer(1 << 20)
	// Lose single pieces of super-segments (every 97th data segment) on top
	// of random loss and reordering: ACKs and SACKs then cover some of a
	// super-segment's pieces and recovery resends the others.
	n := 0
	l.drop = func(src netip.Addr, sg wire.TCP) bool {
		if src != addrA || len(sg.Payload()) == 0 {
			return false
		}
		n++
		return n%97 == 0
	}
	l.loss, l.jitter = 0.005, 300*time.Microsecond
	transfer(t, l, c, s, 8<<20, 10*time.Minute)
	if end.supers == 0 || a.Counter("TcpRetransSegs") == 0 || a.Counter("TcpExtTCPSackRecovery") == 0 {
		t.Fatalf("supers %d, retrans %d, SACK recoveries %d", end.supers, a.Counter("TcpRetransSegs"), a.Counter("TcpExtTCPSackRecovery"))
	}
	if end.rtxSupers != 0 {
		t.Fatalf("%d retransmissions went out as super-segments", end.rtxSupers)
	}
	t.Logf("%d super-segments, %d wire segments, retrans %d, timeouts %d, virtual %v", end.supers, a.Counter("TcpOutSegs"),
		a.Counter("TcpRetransSegs"), a.Counter("TcpExtTCPTimeouts"), l.clk.Now().Sub(t0))
}
