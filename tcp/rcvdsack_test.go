package tcp

import (
	"testing"

	"github.com/tapstack/tapstack/wire"
)

// TestDSACKBelowRcvNxt: a segment wholly below rcv_nxt (here one that
// arrives before our delayed ACK, so it passes the sequence check) is ACKed
// at once with a D-SACK for it in the first block (RFC 2883 §4.1.1;
// TCPDSACKOldSent, DelayedACKLost); while out-of-order data is held the
// SACK blocks follow it (§4.1.2). The D-SACK goes out once.
func TestDSACKBelowRcvNxt(t *testing.T) {
	p := newRcvPeer(t, false, nil)
	p.c.rcv.quickAcks = 0
	p.send(0, 500)
	p.h.expectNone() // delayed
	p.send(0, 500)
	p.h.expect().ACK().Ack(p.seq(500)).SACK(p.blk(0, 500))
	if p.counter("TcpExtTCPDSACKOldSent") != 1 || p.counter("TcpExtDelayedACKLost") != 1 {
		t.Fatalf("DSACKOldSent %d DelayedACKLost %d", p.counter("TcpExtTCPDSACKOldSent"), p.counter("TcpExtDelayedACKLost"))
	}
	p.send(2000, 100)
	p.h.expect().ACK().Ack(p.seq(500)).SACK(p.blk(2000, 2100)) // no D-SACK again
	// A segment straddling rcv_nxt: its old part is the D-SACK, the rest
	// is data (tcp_data_queue's partial packet).
	p.send(400, 200)
	p.h.expect().ACK().Ack(p.seq(600)).SACK(p.blk(400, 500), p.blk(2000, 2100))
}

// TestDSACKDupAck: the usual duplicate, below the window we last
// advertised, fails the sequence check and is answered by sendDupAck
// (tcp_send_dupack) with the D-SACK before the SACK blocks.
func TestDSACKDupAck(t *testing.T) {
	p := newRcvPeer(t, false, nil)
	p.send(0, 1000)
	p.send(2000, 100)
	p.h.drain()
	sg := &segment{seq: seqnum(p.seq(200)), flags: fA, payload: make([]byte, 300)}
	var out outBatch
	p.c.mu.Lock()
	p.c.sendDupAck(sg, &out)
	p.c.unlockSend(&out)
	p.h.expect().ACK().Ack(p.seq(1000)).SACK(p.blk(200, 500), p.blk(2000, 2100))
	if p.counter("TcpExtTCPDSACKOldSent") != 1 || p.counter("TcpExtDelayedACKLost") != 1 {
		t.Fatalf("DSACKOldSent %d DelayedACKLost %d", p.counter("TcpExtTCPDSACKOldSent"), p.counter("TcpExtDelayedACKLost"))
	}
}

// TestDSACKInsideOutOfOrder: a duplicate of data held above rcv_nxt is
// reported as a D-SACK followed by the block that holds it (RFC 2883
// §4.2.1; TCPDSACKOfoSent), and counted as TCPOFOMerge; a segment that
// covers held ranges whole counts one TCPOFOMerge each and reports the
// lowest duplicate part.
func TestDSACKInsideOutOfOrder(t *testing.T) {
	p := newRcvPeer(t, false, nil)
	p.send(1000, 500)
	p.send(2000, 500)
	p.h.drain()
	p.send(1000, 500) // retransmitted: all the bits are present
	p.h.expect().ACK().Ack(p.seq(0)).SACK(p.blk(1000, 1500), p.blk(1000, 1500), p.blk(2000, 2500))
	if p.counter("TcpExtTCPDSACKOfoSent") != 1 || p.counter("TcpExtTCPOFOMerge") != 1 {
		t.Fatalf("DSACKOfoSent %d OFOMerge %d", p.counter("TcpExtTCPDSACKOfoSent"), p.counter("TcpExtTCPOFOMerge"))
	}
	p.send(1200, 100)
	p.h.expect().SACK(p.blk(1200, 1300), p.blk(1000, 1500), p.blk(2000, 2500))
	p.send(900, 1700) // covers both ranges and the holes around them
	p.h.expect().SACK(p.blk(1000, 1500), p.blk(900, 2600))
	if got := p.counter("TcpExtTCPOFOMerge"); got != 4 {
		t.Fatalf("TCPOFOMerge %d, want 4", got)
	}
	if n := p.c.rcv.ofo.q.tree.n; n != 1 {
		t.Fatalf("%d ranges held, want 1", n)
	}
}

// TestDSACKHoleFillOverlap: the retransmission that fills the hole also
// covers data already held above it; the overlap is reported as a D-SACK
// on the ACK that fills the hole (tcp_ofo_queue's dsack_high).
func TestDSACKHoleFillOverlap(t *testing.T) {
	p := newRcvPeer(t, false, nil)
	p.send(1000, 1000)
	p.h.drain()
	p.send(0, 1500)
	p.h.expect().ACK().Ack(p.seq(2000)).SACK(p.blk(1000, 1500))
	if p.counter("TcpExtTCPDSACKOfoSent") != 0 || p.counter("TcpExtTCPDSACKOldSent") != 1 {
		// counted when set: 1000 is below rcv_nxt once the segment is queued
		t.Fatalf("DSACKOfoSent %d OldSent %d", p.counter("TcpExtTCPDSACKOfoSent"), p.counter("TcpExtTCPDSACKOldSent"))
	}
}

// TestDSACKOff: net.ipv4.tcp_dsack=0 and a connection without SACK send
// no D-SACK.
func TestDSACKOff(t *testing.T) {
	p := newRcvPeer(t, false, func(s *Sysctls) { s.Dsack.Store(0) })
	p.send(0, 1000)
	p.h.drain()
	p.send(0, 500)
	p.h.expect().ACK().Ack(p.seq(1000)).SACK()

	h := newHarness(t, nil)
	c, iss, irs := h.estab(h.listen(4), 5000, &wire.TCPOptions{MSS: 1460, HasMSS: true, WScale: -1})
	_ = c
	h.inject(seg{src: 5000, dst: 80, seq: irs + 1, ack: iss + 1, flags: fA, data: make([]byte, 100)})
	h.drain()
	h.inject(seg{src: 5000, dst: 80, seq: irs + 1, ack: iss + 1, flags: fA, data: make([]byte, 100)})
	h.expect().ACK().Ack(irs + 101).SACK()
}
