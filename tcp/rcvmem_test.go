package tcp

import (
	"testing"

	"github.com/tapstack/tapstack/wire"
)

// TestOFOFloodBounded: a hostile peer sends 1-byte segments at every
// other offset across the whole window, so that each opens a range of its
// own. The out-of-order queue stops at the memory bound (bytes plus each
// range's truesize within rcvbuf + 1/16): past it every segment is a
// counted drop (PruneCalled, RcvPruned, TCPOFODrop), not ACKed, and the
// index stays bounded; in-order data still gets through.
func TestOFOFloodBounded(t *testing.T) {
	p := newRcvPeerWith(t, &wire.TCPOptions{MSS: 1460, HasMSS: true, WScale: 7, SACKPermitted: true},
		func(s *Sysctls) { s.ModerateRcvbuf.Store(0) })
	p.c.rtt.srtt = 0 // ACK each accepted segment at once, to count them
	p.send(0, 1)
	p.h.expect().ACK() // opens the whole window (the SYN-ACK's is unscaled)
	window := p.c.rcv.edge.diff(p.c.rcv.nxt)
	if window < 100000 {
		t.Fatalf("window %d", window)
	}
	sent := 0
	for off := 2; off < window; off += 2 {
		p.send(off, 1)
		sent++
	}
	acks := p.h.pending()
	p.h.drain()
	q := p.c.rcv.ofo.q
	maxRanges := p.c.rmemLimit()/(1+ofoRangeTruesize) + 1
	if q.tree.n > maxRanges || q.tree.n < maxRanges*9/10 {
		t.Fatalf("%d ranges held, want about %d", q.tree.n, maxRanges)
	}
	if cap(q.tree.nodes) > 2*maxRanges+1 {
		t.Fatalf("arena of %d nodes for %d ranges", cap(q.tree.nodes), q.tree.n)
	}
	if a := p.c.rmemAlloc(); a > p.c.rmemLimit()+1+ofoRangeTruesize {
		t.Fatalf("rmem %d over the bound %d", a, p.c.rmemLimit())
	}
	drops := sent - q.tree.n
	if got := p.counter("TcpExtTCPOFODrop"); got != uint64(drops) {
		t.Fatalf("TCPOFODrop %d, want %d (%d sent, %d kept)", got, drops, sent, q.tree.n)
	}
	if p.counter("TcpExtPruneCalled") != uint64(drops) || p.counter("TcpExtRcvPruned") != uint64(drops) {
		t.Fatalf("PruneCalled %d RcvPruned %d, want %d", p.counter("TcpExtPruneCalled"), p.counter("TcpExtRcvPruned"), drops)
	}
	if p.counter("TcpExtOfoPruned") != 0 {
		t.Fatal("pruned ranges below the incoming segments")
	}
	if acks != q.tree.n {
		t.Fatalf("%d ACKs for %d kept segments: drops must not be ACKed", acks, q.tree.n)
	}
	// In-order data is not starved: it prunes out-of-order data from the top.
	// The prune resets the SACK blocks (tcp_sack_reset), as RFC 2018 §8
	// allows a receiver that discards SACKed data.
	p.send(1, 1)
	p.h.expect().ACK().Ack(p.seq(3)).SACK()
	if p.counter("TcpExtOfoPruned") != 1 || !p.c.hasOOO() || p.c.rmemAlloc() > p.c.rmemLimit() {
		t.Fatalf("OfoPruned %d, %d ranges left, rmem %d", p.counter("TcpExtOfoPruned"), p.c.rcv.ofo.q.tree.n, p.c.rmemAlloc())
	}
	t.Logf("%d segments sent, %d kept, %d ACKs", sent, q.tree.n, acks)
}

// TestOFOPruneFromTop: under memory pressure an out-of-order segment below
// the highest ranges prunes from the top down (tcp_prune_ofo_queue: the
// furthest from delivery go first, at least rcvbuf/8 at a time) and is
// queued; the ranges below it stay, the SACK blocks restart from it
// (OfoPruned, PruneCalled).
func TestOFOPruneFromTop(t *testing.T) {
	p := newRcvPeer(t, false, func(s *Sysctls) { s.RmemDefault.Store(16384); s.ModerateRcvbuf.Store(0) })
	p.c.rtt.srtt = 0
	off := 1001
	for p.c.rmemAlloc() <= p.c.rmemLimit() {
		p.send(off, 1)
		off += 2
	}
	top := off - 2
	p.h.drain()
	before := p.c.rcv.ofo.q.tree.n
	p.send(500, 10)
	e := p.h.expect().ACK().Ack(p.seq(0))
	if e.opts.NumSACK != 1 || e.opts.SACK[0] != p.blk(500, 510) {
		t.Fatalf("SACK blocks %+v after the prune, want only the new segment's", e.opts.SACK[:e.opts.NumSACK])
	}
	q := p.c.rcv.ofo.q
	last, _ := q.tree.lastRange()
	first, _ := q.tree.first()
	if !last.end.lt(seqnum(p.seq(top))) || first != (seqRange{seqnum(p.seq(500)), seqnum(p.seq(510))}) {
		t.Fatalf("after the prune: first %v last %v (top was %d)", first, last, p.seq(top))
	}
	dropped := before + 1 - q.tree.n
	if dropped*(1+ofoRangeTruesize) < p.c.rcv.bufMax>>3 {
		t.Fatalf("pruned %d ranges, less than rcvbuf/8", dropped)
	}
	if p.counter("TcpExtOfoPruned") != 1 || p.counter("TcpExtPruneCalled") != 1 || p.counter("TcpExtTCPOFODrop") != 0 {
		t.Fatalf("OfoPruned %d PruneCalled %d OFODrop %d", p.counter("TcpExtOfoPruned"), p.counter("TcpExtPruneCalled"), p.counter("TcpExtTCPOFODrop"))
	}
	if p.c.rmemAlloc() > p.c.rmemLimit() {
		t.Fatalf("rmem %d still over %d", p.c.rmemAlloc(), p.c.rmemLimit())
	}
}

// TestRcvQDrop: in-order data beyond what the buffer now allows (it was
// shrunk with SO_RCVBUF under data already offered a window) is dropped
// once the out-of-order data is gone and unread data remains
// (TCPRcvQDrop), and ACKed at once.
func TestRcvQDrop(t *testing.T) {
	p := newRcvPeer(t, false, nil)
	for off := 0; off < 5600; off += 1400 {
		p.send(off, 1400)
	}
	p.send(7000, 1400)
	p.h.drain()
	p.c.SetReadBuffer(1024) // rcvbuf 4096 (tcp_rmem[0]), below the 5600 unread
	p.send(5600, 800)
	p.h.expect().ACK().Ack(p.seq(5600))
	if p.counter("TcpExtTCPRcvQDrop") != 1 || p.counter("TcpExtOfoPruned") != 1 || p.counter("TcpExtRcvPruned") != 1 {
		t.Fatalf("RcvQDrop %d OfoPruned %d RcvPruned %d", p.counter("TcpExtTCPRcvQDrop"), p.counter("TcpExtOfoPruned"), p.counter("TcpExtRcvPruned"))
	}
	if p.c.hasOOO() {
		t.Fatal("out-of-order data kept while in-order data is dropped")
	}
}

// TestOFOFloodAutotuned: with auto-tuning on, out-of-order arrivals grow
// the buffer (tcp_rcvbuf_grow counts the out-of-order span), so a peer
// that never fills the hole and keeps sending at the window's edge opens
// the window further — up to tcp_rmem[2] and no further. (A flood of
// adjacent 1-byte ranges meets the memory bound long before its span
// would grow anything: TestOFOFloodBounded.)
func TestOFOFloodAutotuned(t *testing.T) {
	const rmemMax = 1 << 20
	p := newRcvPeerWith(t, &wire.TCPOptions{MSS: 1460, HasMSS: true, WScale: 7, SACKPermitted: true},
		func(s *Sysctls) { s.RmemMax.Store(rmemMax) })
	p.c.rtt.srtt = 0
	p.send(0, 1)
	p.h.drain()
	off := 1000
	for round := 0; round < 100; round++ {
		edge := p.c.rcv.edge.diff(seqnum(p.irs))
		if off >= edge {
			break
		}
		for ; off < edge; off += 1000 {
			p.send(off, 1)
		}
		p.h.drain()
	}
	if p.c.rcv.bufMax != rmemMax {
		t.Fatalf("rcvbuf %d, want tcp_rmem[2] %d", p.c.rcv.bufMax, rmemMax)
	}
	if w := p.c.rcv.edge.diff(p.c.rcv.nxt); w > rmemMax {
		t.Fatalf("window %d past tcp_rmem[2]", w)
	}
	if p.c.rmemAlloc() > p.c.rmemLimit() || p.c.rcv.buf.cap() > 2*rmemMax {
		t.Fatalf("rmem %d (bound %d), ring %d", p.c.rmemAlloc(), p.c.rmemLimit(), p.c.rcv.buf.cap())
	}
}
