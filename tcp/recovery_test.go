package tcp

import (
	"testing"

	"github.com/tapstack/tapstack/wire"
)

// sackPeer drives an established SACK+timestamp connection whose peer
// acknowledges by script: seg(k) is the k-th full segment the stack sent.
type sackPeer struct {
	h       *harness
	c       *Conn
	irs     uint32
	base    uint32 // sequence number of the first data byte
	mss     uint32
	tsval   uint32
	lastTSv uint32 // TSval of the latest segment the stack sent
}

func newSackPeer(t *testing.T, segs, queued int) *sackPeer {
	h := newHarness(t, func(s *Sysctls) { s.MaxReordering.Store(maxReordering) })
	l := h.listen(16)
	c, iss, irs := h.estab(l, 5000, synOpts(100))
	h.drain()
	p := &sackPeer{h: h, c: c, irs: irs, base: iss + 1, mss: uint32(c.mss), tsval: 200}
	c.Write(make([]byte, (segs+queued)*c.mss)) // cwnd lets segs out
	for i := 0; i < segs; i++ {
		e := h.expect().Seq(p.seg(i + 1)).Len(c.mss)
		p.lastTSv = e.opts.TSVal
	}
	h.expectNone()
	return p
}

func (p *sackPeer) seg(k int) uint32 { return p.base + uint32(k-1)*p.mss }

// ack sends an ACK up to ack with SACK blocks given as segment ranges
// [from, to] (1-based, inclusive); echo is the TSecr.
func (p *sackPeer) ack(ack uint32, echo uint32, blocks ...wire.SACKBlock) {
	p.tsval++
	o := &wire.TCPOptions{WScale: -1, HasTS: true, TSVal: p.tsval, TSEcr: echo}
	for i, b := range blocks {
		o.SACK[i] = b
		o.NumSACK++
	}
	p.h.inject(seg{src: 5000, dst: 80, seq: p.irs + 1, ack: ack, flags: fA, opts: o})
}

// segs is the SACK block covering segments from..to (1-based, inclusive).
func (p *sackPeer) segs(from, to int) wire.SACKBlock {
	return wire.SACKBlock{Left: p.seg(from), Right: p.seg(to + 1)}
}

// TestReorderingRaisesDupThresh: segments 1 and 2 arrive after 3 and 4
// (never retransmitted), so the path reorders by 4 segments (Linux
// tcp_check_sack_reordering). Afterwards three SACKed segments above a
// hole, which with the default dupthresh of 3 start recovery, are taken
// for reordering and nothing is retransmitted.
func TestReorderingRaisesDupThresh(t *testing.T) {
	p := newSackPeer(t, 10, 0)
	h, c := p.h, p.c
	p.ack(p.seg(1), p.lastTSv, p.segs(3, 4))
	p.ack(p.seg(5), p.lastTSv) // 1 and 2 arrive late
	if got := ctr(h.s, "TcpExtTCPSACKReorder"); got != 1 {
		t.Fatalf("TCPSACKReorder %d, want 1", got)
	}
	c.mu.Lock()
	thresh := c.dupThresh()
	c.mu.Unlock()
	if thresh != 4 {
		t.Fatalf("dupthresh %d after reordering of 4 segments, want 4", thresh)
	}
	h.drain() // new data the window let out
	// Segments 6..9 reordered: 7, 8 and 9 SACKed before 6.
	p.ack(p.seg(6), p.lastTSv, p.segs(7, 9))
	for h.pending() > 0 {
		if e := h.expect(); e.seg.Seq() == p.seg(6) {
			t.Fatalf("segment 6 retransmitted spuriously (dupthresh %d)", thresh)
		}
	}
	if got := ctr(h.s, "TcpRetransSegs"); got != 0 {
		t.Fatalf("TcpRetransSegs %d, want 0", got)
	}
	c.mu.Lock()
	ca := c.ca
	c.mu.Unlock()
	if ca >= caRecovery {
		t.Fatalf("entered recovery (state %d) on reordering within dupthresh", ca)
	}
}

// TestDSACKUndoRestoresCwnd: recovery starts on three SACKed segments and
// retransmits segment 1; the peer then reports with a D-SACK that it got
// segment 1 twice, so the reduction was spurious and cwnd and ssthresh
// come back (Linux tcp_try_undo_dsack).
func TestDSACKUndoRestoresCwnd(t *testing.T) {
	p := newSackPeer(t, 10, 0)
	h, c := p.h, p.c
	c.mu.Lock()
	cwnd0, ss0 := c.cwnd, c.ssthresh
	c.mu.Unlock()
	p.ack(p.seg(1), p.lastTSv, p.segs(2, 5))
	h.expect().Seq(p.seg(1)).Len(int(p.mss)) // fast retransmit
	h.drain()
	c.mu.Lock()
	reduced := c.cwnd
	c.mu.Unlock()
	if reduced >= cwnd0 {
		t.Fatalf("cwnd %d not reduced on recovery (was %d)", reduced, cwnd0)
	}
	// Everything arrived; the first block reports segment 1 twice.
	p.ack(p.seg(11), p.lastTSv, p.segs(1, 1))
	c.mu.Lock()
	cwnd, ss, ca := c.cwnd, c.ssthresh, c.ca
	c.mu.Unlock()
	if got := ctr(h.s, "TcpExtTCPDSACKUndo"); got != 1 {
		t.Fatalf("TCPDSACKUndo %d, want 1", got)
	}
	if cwnd < cwnd0 || ss != ss0 || ca != caOpen {
		t.Fatalf("after undo cwnd %d ssthresh %d state %d; want cwnd ≥ %d ssthresh %d Open", cwnd, ss, ca, cwnd0, ss0)
	}
}

// TestEifelUndoOnFullAck: the ACK that ends recovery echoes the TSval of
// the original transmission, older than the retransmission's, so the
// original was only delayed (RFC 3522; Linux tcp_try_undo_recovery).
func TestEifelUndoOnFullAck(t *testing.T) {
	p := newSackPeer(t, 10, 0)
	h, c := p.h, p.c
	c.mu.Lock()
	cwnd0 := c.cwnd
	c.mu.Unlock()
	orig := p.lastTSv
	p.ack(p.seg(1), orig, p.segs(2, 5))
	h.after(5e6) // 5 ms: the retransmission carries a newer TSval
	h.drain()
	p.ack(p.seg(6), orig, p.segs(6, 10)) // not yet full
	h.drain()
	p.ack(p.seg(11), orig-1)
	if got := ctr(h.s, "TcpExtTCPFullUndo"); got != 1 {
		t.Fatalf("TCPFullUndo %d, want 1", got)
	}
	c.mu.Lock()
	cwnd := c.cwnd
	c.mu.Unlock()
	if cwnd < cwnd0 {
		t.Fatalf("cwnd %d after undo, want ≥ %d", cwnd, cwnd0)
	}
}

// TestLostRetransmitResentBeforeRTO: the fast retransmission of segment 1
// is lost too; SACKs for data sent after it (more than dupthresh-1
// segments) show that, and segment 1 goes out again at once instead of
// after an RTO (Linux tcp_mark_lost_retrans).
func TestLostRetransmitResentBeforeRTO(t *testing.T) {
	p := newSackPeer(t, 10, 10)
	h := p.h
	p.ack(p.seg(1), p.lastTSv, p.segs(2, 5))
	h.expect().Seq(p.seg(1)) // fast retransmit, lost
	h.drain()
	// SACKs for 6..10 free the pipe; new data 11.. goes out.
	p.ack(p.seg(1), p.lastTSv, p.segs(2, 10))
	h.drain()
	// Data sent after the retransmission is SACKed: 11..14.
	p.ack(p.seg(1), p.lastTSv, p.segs(2, 14))
	found := false
	for h.pending() > 0 {
		if e := h.expect(); e.seg.Seq() == p.seg(1) {
			found = true
		}
	}
	if !found || ctr(h.s, "TcpExtTCPLostRetransmit") != 1 {
		t.Fatalf("lost retransmission not resent (resent %v, TCPLostRetransmit %d)", found, ctr(h.s, "TcpExtTCPLostRetransmit"))
	}
	if ctr(h.s, "TcpExtTCPTimeouts") != 0 {
		t.Fatal("an RTO fired")
	}
}
