package tcp

import "time"

// The scoreboard is the sender's record of every segment in flight, in
// sequence order: Linux's retransmission queue (tcp_rtx_queue) with each
// skb's TCP_SKB_CB(skb)->sacked bits and skb_mstamp. Loss detection (RACK,
// the dupack rule, RTO), SACK processing, retransmission, PRR and undo all
// read and write this one structure and the four counters kept exact beside
// it, so that tcp_packets_in_flight is always what Linux would compute.
//
// A record is one wire segment: a TSO super-segment of n segments is n
// records sent at the same time, which is the state Linux reaches after
// tcp_fragment at every MSS boundary, so a SACK block or a loss never needs
// a record split. The bytes themselves stay in the send ring.

// Scoreboard bits (Linux TCPCB_SACKED_ACKED, TCPCB_SACKED_RETRANS,
// TCPCB_LOST, TCPCB_EVER_RETRANS).
const (
	sbSacked      uint8 = 1 << iota // SACKed by the peer
	sbRetrans                       // a retransmission is in flight
	sbLost                          // deemed lost
	sbEverRetrans                   // retransmitted at least once
)

// txSeg is one segment in flight.
type txSeg struct {
	seq, end  seqnum // sequence space [seq, end); a FIN counts in end
	sent      stamp  // last (re)transmission (skb_mstamp)
	delivered uint32 // tp->delivered when it was sent (tx.delivered)
	flags     uint8
}

func (g *txSeg) len() int { return g.end.diff(g.seq) }

// stamp is a time in nanoseconds since the stack's epoch: eight bytes where
// a time.Time takes twenty-four, for state kept per segment.
type stamp int64

func (s *Stack) stampNow() stamp { return stamp(s.clock.Now().Sub(s.epoch)) }

// stampAfter is the stamp d from now.
func (s *Stack) stampAfter(d time.Duration) stamp { return s.stampNow() + stamp(d) }

// stampOf converts a time (the zero time to the zero stamp).
func (s *Stack) stampOf(t time.Time) stamp {
	if t.IsZero() {
		return 0
	}
	return stamp(t.Sub(s.epoch))
}

// since is how long ago t was.
func (s *Stack) since(t stamp) time.Duration { return time.Duration(s.stampNow() - t) }

// IsZero reports an unset stamp (the epoch lies a second before the
// stack was made, so no real time is 0).
func (t stamp) IsZero() bool { return t == 0 }

// scoreboard holds the segments in [snd_una, snd_nxt) as a ring of
// records and the counters Linux keeps beside its retransmission queue.
// Counters are in segments.
type scoreboard struct {
	ring       []txSeg // power-of-two capacity, made on first send
	head, n    int
	packetsOut int // tp->packets_out
	sackedOut  int // tp->sacked_out (dupACKs without SACK, tcp_add_reno_sack)
	lostOut    int // tp->lost_out
	retransOut int // tp->retrans_out
	delivered  uint32
	// rtxHint is the index at or below which no record waits for a
	// retransmission (tp->retransmit_skb_hint).
	rtxHint int
	fack    seqnum // end of the highest SACKed record (tcp_highest_sack_seq), valid when sackedOut > 0
}

func (sb *scoreboard) at(i int) *txSeg { return &sb.ring[(sb.head+i)&(len(sb.ring)-1)] }

func (sb *scoreboard) last() *txSeg { return sb.at(sb.n - 1) }

// push appends a record for a segment just sent.
func (sb *scoreboard) push(g txSeg) {
	if sb.n == len(sb.ring) {
		sb.grow()
	}
	*sb.at(sb.n) = g
	sb.n++
	sb.packetsOut++
}

func (sb *scoreboard) grow() {
	c := max(2*len(sb.ring), 16)
	nr := make([]txSeg, c)
	for i := 0; i < sb.n; i++ {
		nr[i] = *sb.at(i)
	}
	sb.ring, sb.head = nr, 0
}

// popHead drops the first record.
func (sb *scoreboard) popHead() {
	*sb.at(0) = txSeg{}
	sb.head = (sb.head + 1) & (len(sb.ring) - 1)
	sb.n--
	sb.packetsOut--
	if sb.rtxHint > 0 {
		sb.rtxHint--
	}
}

// insertAfter puts g right after record i (tcp_fragment splitting one
// record in two). O(n), but only an MSS reduction splits records.
func (sb *scoreboard) insertAfter(i int, g txSeg) {
	if sb.n == len(sb.ring) {
		sb.grow()
	}
	for j := sb.n; j > i+1; j-- {
		*sb.at(j) = *sb.at(j - 1)
	}
	*sb.at(i + 1) = g
	sb.n++
	sb.packetsOut++
}

// find returns the index of the first record whose end is after seq
// (binary search: records are in sequence order), or sb.n.
func (sb *scoreboard) find(una, seq seqnum) int {
	off := seq.diff(una)
	lo, hi := 0, sb.n
	for lo < hi {
		m := (lo + hi) / 2
		if sb.at(m).end.diff(una) <= off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// reset forgets every record (the connection is done with them).
func (sb *scoreboard) reset() {
	*sb = scoreboard{delivered: sb.delivered}
}

// inFlight is tcp_packets_in_flight: packets_out - (sacked_out + lost_out)
// + retrans_out, in segments.
func (c *Conn) inFlight() int {
	sb := &c.rec.sb
	return max(sb.packetsOut-(sb.sackedOut+sb.lostOut)+sb.retransOut, 0)
}

// leftOut is tcp_left_out: segments SACKed or deemed lost.
func (c *Conn) leftOut() int { return c.rec.sb.sackedOut + c.rec.sb.lostOut }

// freeScoreboard forgets the send-side scoreboard.
func (c *Conn) freeScoreboard() { c.rec.sb.reset() }

// recordSent adds the records of n bytes (plus a FIN) just sent from seq,
// cut at mss, all stamped now (tcp_event_new_data_sent: packets_out grows
// by the segment count).
func (c *Conn) recordSent(seq seqnum, n, mss int, fin bool, now stamp) {
	sb := &c.rec.sb
	end := seq.add(n)
	for {
		e := seqMin(seq.add(mss), end)
		g := txSeg{seq: seq, end: e, sent: now, delivered: sb.delivered}
		seq = e
		if seq == end {
			if fin {
				g.end = g.end.add(1)
			}
			sb.push(g)
			return
		}
		sb.push(g)
	}
}

// markLost is tcp_mark_skb_lost: a SACKed record is never lost; a lost
// record whose retransmission was in flight has lost that too.
func (c *Conn) markLost(i int) {
	sb := &c.rec.sb
	g := sb.at(i)
	if g.flags&sbSacked != 0 {
		return
	}
	if i < sb.rtxHint {
		sb.rtxHint = i // tcp_verify_retransmit_hint
	}
	if g.flags&sbLost != 0 {
		if g.flags&sbRetrans != 0 {
			g.flags &^= sbRetrans
			sb.retransOut--
			c.rec.lostTotal++ // tcp_sum_lost
			c.s.mib.inc(cTCPLostRetransmit)
		}
		return
	}
	g.flags |= sbLost
	sb.lostOut++
	c.rec.lostTotal++
}

// unmarkAllLost clears every loss mark (tcp_undo_cwnd_reduction with
// unmark_loss).
func (c *Conn) unmarkAllLost() {
	sb := &c.rec.sb
	for i := 0; i < sb.n; i++ {
		sb.at(i).flags &^= sbLost
	}
	sb.lostOut = 0
	sb.rtxHint = 0
}

// anyRetransInFlight is tcp_any_retrans_done: a retransmission of this
// episode may still be in the network.
func (c *Conn) anyRetransInFlight() bool {
	if c.rec.sb.retransOut > 0 {
		return true
	}
	return c.rec.sb.n > 0 && c.rec.sb.at(0).flags&sbEverRetrans != 0
}
