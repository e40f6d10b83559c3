package tcp

import (
	"testing"
	"time"

	"github.com/tapstack/tapstack/wire"
)

// TestOutOfOrderAckedAtOnce: with quickack mode off and no RTT estimate
// (so no SACK compression), every out-of-order segment is ACKed at once,
// the segment that fills the hole too, and in-order data after the hole
// is ACKed the usual way again (delayed).
func TestOutOfOrderAckedAtOnce(t *testing.T) {
	p := newRcvPeer(t, false, nil)
	p.c.rcv.quickAcks = 0
	p.c.rtt.srtt = 0 // the handshake's 1 µs sample on the virtual clock
	p.send(0, 100)
	p.h.expectNone()
	for k := 1; k <= 10; k++ { // [200k, 200k+100): a hole below each
		p.send(200*k, 100)
		var want []wire.SACKBlock // the newest first, four at most
		for j := k; j >= 1 && len(want) < 4; j-- {
			want = append(want, p.blk(200*j, 200*j+100))
		}
		p.h.expect().ACK().Ack(p.seq(100)).SACK(want...)
	}
	for k := 0; k < 9; k++ { // fill the holes, lowest first: each ACK at once
		p.send(100+200*k, 100)
		p.h.expect().ACK().Ack(p.seq(300 + 200*k))
	}
	p.send(1900, 100) // the last hole: rcv_nxt passes everything
	p.h.expect().ACK().Ack(p.seq(2100)).SACK()
	if p.c.hasOOO() {
		t.Fatal("out-of-order queue kept after the last hole filled")
	}
	p.send(2100, 100)
	p.h.expectNone() // delayed again
	p.h.after(delAckMin)
	p.h.expect().ACK().Ack(p.seq(2200))
}

// TestQuickAckAfterDuplicate: a retransmission of data we have says our
// ACK was lost; quickack mode (tcp_enter_quickack_mode) then ACKs the next
// in-order segments at once instead of delaying them.
func TestQuickAckAfterDuplicate(t *testing.T) {
	p := newRcvPeer(t, false, nil)
	p.c.rcv.quickAcks = 0
	p.c.rtt.srtt = 0
	p.send(0, 100)
	p.h.expectNone()
	p.send(0, 100)
	p.h.expect().ACK().Ack(p.seq(100)).SACK(p.blk(0, 100))
	if p.c.rcv.quickAcks == 0 {
		t.Fatal("no quickack mode after a duplicate")
	}
	for k := 1; k <= 3; k++ {
		p.send(100*k, 100)
		p.h.expect().ACK().Ack(p.seq(100 * (k + 1)))
	}
}

// TestSACKCompression: with a hole open and an RTT estimate, the first
// three ACKs at a given rcv_nxt go at once (the sender's dupACK threshold),
// the next are held for 5 % of the RTT and go as one ACK whose blocks
// report every arrival, newest first (TCPAckCompressed counts the ACKs
// saved); rcv_nxt moving restarts the count.
func TestSACKCompression(t *testing.T) {
	p := newRcvPeer(t, false, nil)
	p.c.rcv.quickAcks = 0
	p.c.rtt.srtt = 20 * time.Millisecond // hold ACKs up to 1 ms
	for k := 1; k <= 3; k++ {
		p.send(1000*k, 100)
		p.h.expect().ACK().Ack(p.seq(0))
	}
	p.send(4000, 100)
	p.send(4100, 100)
	p.send(4200, 100)
	p.h.expectNone()
	if !p.c.sackCompressing() {
		t.Fatal("held ACK not reported as compressed")
	}
	p.h.after(999 * time.Microsecond)
	p.h.expectNone()
	p.h.after(time.Microsecond)
	p.h.expect().ACK().Ack(p.seq(0)).SACK(p.blk(4000, 4300), p.blk(3000, 3100), p.blk(2000, 2100), p.blk(1000, 1100))
	p.h.expectNone()
	if p.c.sackCompressing() {
		t.Fatal("compressed after the ACK went")
	}
	p.send(4300, 100) // still no progress at rcv_nxt: held again
	p.h.expectNone()
	if got := p.counter("TcpExtTCPAckCompressed"); got != 3 {
		t.Fatalf("TCPAckCompressed %d, want 3", got)
	}
	p.send(0, 1000) // rcv_nxt moves: at once
	p.h.expect().ACK().Ack(p.seq(1100)).SACK(p.blk(4000, 4400), p.blk(3000, 3100), p.blk(2000, 2100))
	p.send(5000, 100)
	p.h.expect().ACK().Ack(p.seq(1100))
}

// TestSACKCompressionBounded: at most tcp_comp_sack_nr (44) ACKs are held
// in a row; the next goes at once. With tcp_comp_sack_nr=0 none is.
func TestSACKCompressionBounded(t *testing.T) {
	p := newRcvPeer(t, false, nil)
	p.c.rcv.quickAcks = 0
	p.c.rtt.srtt = 20 * time.Millisecond
	compSackNr := int(p.h.s.sys.CompSackNr.Load())
	for k := 0; k < fastRetransThresh+compSackNr+1; k++ {
		p.send(1000+100*k, 100) // each extends the same range
	}
	if got := p.h.pending(); got != fastRetransThresh+1 {
		t.Fatalf("%d ACKs for %d segments, want %d", got, fastRetransThresh+compSackNr+1, fastRetransThresh+1)
	}
}

// TestSACKCompressionNoBlockLost: while ACKs are held, a new range that
// pushes the oldest of four blocks out first sends the ACK reporting it
// (tcp_sack_new_ofo_skb), so the sender hears of every range.
func TestSACKCompressionNoBlockLost(t *testing.T) {
	p := newRcvPeer(t, false, nil)
	p.c.rcv.quickAcks = 0
	p.c.rtt.srtt = 20 * time.Millisecond
	for k := 1; k <= 4; k++ {
		p.send(1000*k, 100)
	}
	p.h.drain() // three at once; the fourth is held
	p.send(5000, 100)
	p.h.expect().ACK().SACK(p.blk(4000, 4100), p.blk(3000, 3100), p.blk(2000, 2100), p.blk(1000, 1100))
	p.h.expectNone()
	p.h.after(time.Millisecond)
	p.h.expect().ACK().SACK(p.blk(5000, 5100), p.blk(4000, 4100), p.blk(3000, 3100), p.blk(2000, 2100))
}

// TestDupAckWindowWithoutSACK: a sender without SACK counts a duplicate
// ACK only when its window is unchanged (RFC 5681 §2 (e)); so while a
// hole is open the window keeps its size although the application reads
// and the buffer grows; once the hole is filled its right edge moves on.
func TestDupAckWindowWithoutSACK(t *testing.T) {
	p := newRcvPeerWith(t, &wire.TCPOptions{MSS: 1460, HasMSS: true, WScale: 7}, nil)
	p.c.rtt.srtt = 0
	for off := 0; off < 7000; off += 1400 {
		p.send(off, 1400)
	}
	p.h.drain()
	p.send(8400, 1400)
	w := p.h.expect().ACK().Ack(p.seq(7000)).SACK().seg.Window()
	p.c.Read(make([]byte, 7000))
	p.h.drain() // a window update may go; what matters is the dupACKs
	for k := 1; k <= 3; k++ {
		p.send(8400+1400*k, 1400)
		p.h.expect().ACK().Ack(p.seq(7000)).Window(w)
	}
	p.send(7000, 1400) // fills the hole: the window opens
	e := p.h.expect().ACK().Ack(p.seq(8400 + 1400*4))
	if edge, was := e.seg.Ack()+uint32(e.seg.Window())<<7, p.seq(7000)+uint32(w)<<7; edge <= was {
		t.Fatalf("right edge %d after the hole filled, was %d", edge, was)
	}
}

// TestSACKCompressionOff: net.ipv4.tcp_comp_sack_nr=0 turns compression
// off: every segment arriving above a hole is ACKed at once.
func TestSACKCompressionOff(t *testing.T) {
	p := newRcvPeer(t, false, func(s *Sysctls) { s.CompSackNr.Store(0) })
	p.c.rcv.quickAcks = 0
	p.c.rtt.srtt = 20 * time.Millisecond
	for k := 0; k < 10; k++ {
		p.send(1000+100*k, 100)
	}
	if got := p.h.pending(); got != 10 {
		t.Fatalf("%d ACKs for 10 out-of-order segments, want 10", got)
	}
}
