package tcp

import (
	"testing"
	"time"

	"github.com/tapstack/tapstack/wire"
)

// TestRetransmitTimeoutTiming: with nothing acknowledged the head is
// retransmitted at the RTO and then at twice the previous interval each
// time (inet_csk_rto_backoff). The ACK of retransmitted data gives no RTT
// sample (Karn), so the backoff stays until one does (RFC 6298 §5.7:
// Linux resets icsk_backoff only in tcp_ack_update_rtt); the next ACK of
// fresh data resets it.
func TestRetransmitTimeoutTiming(t *testing.T) {
	h := newHarness(t, nil)
	c, iss, irs, lport := h.activeEstab(nil)
	c.Write([]byte("hello"))
	h.expect().ACK().Seq(iss).Payload("hello")
	start := h.clk.Now()
	var at []time.Duration
	for i := 0; i < 40; i++ {
		h.after(100 * time.Millisecond)
		for h.pending() > 0 {
			h.expect().Seq(iss).Payload("hello")
			at = append(at, h.clk.Now().Sub(start))
		}
	}
	if len(at) < 3 {
		t.Fatalf("retransmissions at %v", at)
	}
	if d1, d2 := at[1]-at[0], at[2]-at[1]; d2 != 2*d1 {
		t.Fatalf("no exponential backoff: %v", at)
	}
	if h.s.Counter("TcpExtTCPTimeouts") < 3 || h.s.Counter("TcpRetransSegs") < 3 {
		t.Fatal("counters")
	}
	h.inject(seg{src: 80, dst: lport, seq: irs, ack: iss + 5, flags: fA})
	c.mu.Lock()
	una, backoff, rtoAt, retransmits := c.snd.una, c.rtt.backoff, c.rtoAt, c.rtt.retransmits
	c.mu.Unlock()
	if una != seqnum(iss+5) || !rtoAt.IsZero() || retransmits != 0 || backoff == 0 {
		t.Fatalf("after the ACK: snd_una %d RTO armed %v retransmits %d backoff %d; want the RTO off, retransmits 0, the backoff kept",
			una, !rtoAt.IsZero(), retransmits, backoff)
	}
	c.Write([]byte("again"))
	h.expect().Seq(iss + 5).Payload("again")
	h.after(time.Millisecond)
	h.inject(seg{src: 80, dst: lport, seq: irs, ack: iss + 10, flags: fA})
	c.mu.Lock()
	backoff = c.rtt.backoff
	c.mu.Unlock()
	if backoff != 0 {
		t.Fatalf("backoff %d after an RTT sample, want 0", backoff)
	}
}

// TestFastRetransmitNewReno: without SACK each duplicate ACK stands for a
// segment that left the network (tcp_add_reno_sack); the third marks the
// head lost (tcp_newreno_mark_lost) and it is retransmitted; a partial ACK
// in recovery marks the next head lost at once (RFC 6582 §3.2).
func TestFastRetransmitNewReno(t *testing.T) {
	h := newHarness(t, nil)
	c, iss, irs, lport := h.activeEstab(nil)
	c.SetNoDelay(true)
	c.Write(make([]byte, 6*1460))
	for i := 0; i < 6; i++ {
		h.expect().Seq(iss + uint32(i*1460)).Len(1460)
	}
	s := func(i int) uint32 { return iss + uint32(i*1460) }
	h.after(time.Millisecond)
	// Segment 0 arrives, 1 is lost, 2..4 bring three duplicate ACKs.
	h.inject(seg{src: 80, dst: lport, seq: irs, ack: s(1), flags: fA})
	h.drain() // what the window let out
	for i := 0; i < 3; i++ {
		h.expectNone()
		h.inject(seg{src: 80, dst: lport, seq: irs, ack: s(1), flags: fA})
	}
	h.expect().Seq(s(1)).Len(1460)
	if h.s.Counter("TcpExtTCPFastRetrans") != 1 || h.s.Counter("TcpExtTCPRenoRecovery") != 1 {
		t.Fatalf("FastRetrans %d RenoRecovery %d", h.s.Counter("TcpExtTCPFastRetrans"), h.s.Counter("TcpExtTCPRenoRecovery"))
	}
	// Partial ACK: segment 2 is the next hole and goes at once.
	h.inject(seg{src: 80, dst: lport, seq: irs, ack: s(2), flags: fA})
	found := false
	for h.pending() > 0 {
		if e := h.expect(); e.seg.Seq() == s(2) {
			found = true
		}
	}
	if !found {
		t.Fatal("the partial ACK's hole was not retransmitted")
	}
	c.mu.Lock()
	end := c.snd.nxt
	c.mu.Unlock()
	h.inject(seg{src: 80, dst: lport, seq: irs, ack: uint32(end), flags: fA})
	// NewReno holds the state until data above high_seq is acknowledged
	// (RFC 6582 §3.2 step 5; tcp_try_undo_recovery).
	if c.rec.ca != caRecovery {
		t.Fatalf("ca state %d at snd_una == high_seq, want Recovery held", c.rec.ca)
	}
	c.Write([]byte("more"))
	h.drain()
	h.inject(seg{src: 80, dst: lport, seq: irs, ack: uint32(end) + 4, flags: fA})
	if c.rec.ca != caOpen {
		t.Fatalf("ca state %d", c.rec.ca)
	}
}

// TestSackRecovery: segments 1 and 3 are lost, the peer SACKs 2 and then
// 4..6; RACK finds both lost once three segments are SACKed above them,
// and PRR sends them one per ACK (the window is being reduced): 1 at the
// ACK that starts recovery, 3 at the next.
func TestSackRecovery(t *testing.T) {
	h := newHarness(t, nil)
	opts := &wire.TCPOptions{MSS: 1460, HasMSS: true, WScale: -1, SACKPermitted: true}
	c, iss, irs, lport := h.activeEstab(opts)
	c.SetNoDelay(true)
	c.Write(make([]byte, 8*1460))
	for i := 0; i < 8; i++ {
		h.expect().Seq(iss + uint32(i*1460))
	}
	sack := func(blocks ...wire.SACKBlock) *wire.TCPOptions {
		o := &wire.TCPOptions{WScale: -1, NumSACK: len(blocks)}
		copy(o.SACK[:], blocks)
		return o
	}
	s := func(i int) uint32 { return iss + uint32(i*1460) }
	h.after(time.Millisecond)
	h.inject(seg{src: 80, dst: lport, seq: irs, ack: s(1), flags: fA})
	h.inject(seg{src: 80, dst: lport, seq: irs, ack: s(1), flags: fA, opts: sack(wire.SACKBlock{Left: s(2), Right: s(3)})})
	h.inject(seg{src: 80, dst: lport, seq: irs, ack: s(1), flags: fA, opts: sack(wire.SACKBlock{Left: s(4), Right: s(5)}, wire.SACKBlock{Left: s(2), Right: s(3)})})
	h.expectNone()
	h.inject(seg{src: 80, dst: lport, seq: irs, ack: s(1), flags: fA, opts: sack(wire.SACKBlock{Left: s(4), Right: s(6)}, wire.SACKBlock{Left: s(2), Right: s(3)})})
	h.expect().Seq(s(1)).Len(1460)
	h.expectNone()
	h.inject(seg{src: 80, dst: lport, seq: irs, ack: s(1), flags: fA, opts: sack(wire.SACKBlock{Left: s(4), Right: s(7)}, wire.SACKBlock{Left: s(2), Right: s(3)})})
	h.expect().Seq(s(3)).Len(1460)
	if h.s.Counter("TcpExtTCPSackRecovery") != 1 {
		t.Fatal("TCPSackRecovery")
	}
	h.inject(seg{src: 80, dst: lport, seq: irs, ack: s(8), flags: fA})
	if c.rec.ca != caOpen || c.rec.sb.sackedOut != 0 || c.rec.sb.packetsOut != 0 {
		t.Fatalf("ca %d sacked %d packets %d", c.rec.ca, c.rec.sb.sackedOut, c.rec.sb.packetsOut)
	}
}

// TestPathMTUReduced: an ICMP fragmentation-needed lowers the MSS; what is
// in flight and larger than the new MSS is lost and resent cut to it
// (tcp_simple_retransmit, tcp_fragment), without a window reduction.
func TestPathMTUReduced(t *testing.T) {
	h := newHarness(t, nil)
	c, iss, _, lport := h.activeEstab(nil)
	c.SetNoDelay(true)
	c.Write(make([]byte, 2920))
	h.expect().Seq(iss).Len(1460)
	h.expect().Seq(iss + 1460).Len(1460)
	c.mu.Lock()
	ss0 := c.rec.cong.Ssthresh
	c.mu.Unlock()
	h.s.Control(3, 4, 1000, hLocal, hPeer, quote(lport, 80, iss))
	// Each 1460-byte segment becomes 960 + 500.
	h.expect().Seq(iss).Len(960)
	h.expect().Seq(iss + 960).Len(500)
	h.expect().Seq(iss + 1460).Len(960)
	h.expect().Seq(iss + 2420).Len(500)
	if c.snd.mss != 960 || c.rec.cong.Ssthresh != ss0 {
		t.Fatalf("mss %d ssthresh %d (was %d)", c.snd.mss, c.rec.cong.Ssthresh, ss0)
	}
	// A quote outside the send window is ignored.
	h.s.Control(3, 4, 600, hLocal, hPeer, quote(lport, 80, iss+100000))
	if c.snd.mss != 960 {
		t.Fatal("out-of-window ICMP accepted")
	}
}
