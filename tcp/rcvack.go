package tcp

import "time"

const (
	maxQuickAcks = 16                    // TCP_MAX_QUICKACKS
	delAckMin    = 40 * time.Millisecond // TCP_DELACK_MIN / TCP_ATO_MIN
	// fastRetransThresh is TCP_FASTRETRANS_THRESH: the dupACKs a sender
	// needs to start fast retransmit, each sent at once after a hole
	// opens or moves.
	fastRetransThresh = 3
)

// maybeAck decides between an immediate and a later ACK (Linux
// __tcp_ack_snd_check): at once for every second full segment, in quickack
// mode and when the state demands it (a hole filled, a duplicate, a FIN);
// with a hole open, at once for the first three ACKs at this rcv_nxt so
// that the sender's fast retransmit starts without delay, then compressed
// (RFC 2018 §4 leaves the rate to us; Linux's tcp_comp_sack): the sender
// loses nothing — every block goes out, the newest first — while a burst
// arriving above a hole costs one ACK per 5 % of the RTT instead of one
// per segment. Otherwise after the delayed-ACK timer.
func (c *Conn) maybeAck(out *outBatch) {
	if c.rcv.ackNow {
		c.sendAck(out)
		return
	}
	if !c.rcv.ackPending {
		return
	}
	if c.rcv.unackedBytes >= 2*max(c.rcv.mss, 536) || (c.rcv.quickAcks > 0 && !c.rcv.pingpong) {
		if c.rcv.quickAcks > 0 {
			c.rcv.quickAcks--
		}
		c.sendAck(out)
		return
	}
	q := c.rcv.ofo.q
	if q == nil {
		if c.delackAt.IsZero() {
			c.delackAt = c.s.stampAfter(delAckMin)
		}
		return
	}
	if !c.sackOn || q.compressed >= int(c.s.sys.CompSackNr.Load()) {
		c.sendAck(out)
		c.flushCompressed(q)
		return
	}
	if q.compRcvNxt != c.rcv.nxt {
		q.compRcvNxt, q.dupAcks = c.rcv.nxt, 0
	}
	if q.dupAcks < fastRetransThresh {
		q.dupAcks++
		c.sendAck(out)
		c.flushCompressed(q)
		return
	}
	delay := c.compSackDelay()
	if delay <= 0 {
		c.sendAck(out)
		c.flushCompressed(q)
		return
	}
	q.compressed++
	if at := c.s.stampAfter(delay); c.delackAt.IsZero() || at < c.delackAt {
		c.delackAt = at // the delayed-ACK timer doubles as the compression timer
	}
}

// compSackDelay is how long an ACK may be held back while a hole is open:
// 5 % of the RTT (the receiver's estimate, or the sender's when smaller),
// at most tcp_comp_sack_delay_ns; 0 without an estimate.
func (c *Conn) compSackDelay() time.Duration {
	rtt := c.rcvRTT()
	if c.rtt.srtt > 0 && (rtt == 0 || c.rtt.srtt < rtt) {
		rtt = c.rtt.srtt
	}
	return min(rtt/20, time.Duration(c.s.sys.CompSackDelayNs.Load())) // at most tcp_comp_sack_delay_ns
}

// sackCompressing reports whether the ACK now due was held back by SACK
// compression rather than delayed (Linux sends it from its own timer and
// does not count it in DelayedACKs).
func (c *Conn) sackCompressing() bool {
	return c.rcv.ofo.q != nil && c.rcv.ofo.q.compressed > 0 && c.rcv.ackPending
}

// flushCompressed counts the ACKs that the one just sent stood in for
// (TCPAckCompressed, as tcp_event_ack_sent does).
func (c *Conn) flushCompressed(q *ofoQueue) {
	if q.compressed > 0 {
		c.s.mib.add(cTCPAckCompressed, uint64(q.compressed))
		q.compressed = 0
	}
}

// enterQuickAck is tcp_enter_quickack_mode: the next ACKs go at once, as
// many as half the window holds segments (tcp_incr_quickack), and the
// connection is no longer treated as interactive.
func (c *Conn) enterQuickAck() {
	n := c.rcv.edge.diff(c.rcv.wup) / (2 * max(c.rcv.mss, 1))
	if n <= 0 {
		n = 2
	}
	c.rcv.quickAcks = max(c.rcv.quickAcks, min(n, maxQuickAcks))
	c.rcv.pingpong = false
}

// sendDupAck answers a segment that failed the sequence check
// (tcp_send_dupack): when it carried data below rcv_nxt — a
// retransmission of what we have, so probably our ACK was lost — the ACK
// carries a D-SACK for it (RFC 2883 §4.1.1) and quickack mode starts.
func (c *Conn) sendDupAck(sg *segment, out *outBatch) {
	if end := sg.end(); end != sg.seq && sg.seq.lt(c.rcv.nxt) {
		c.s.mib.inc(cDelayedACKLost)
		c.enterQuickAck()
		c.dsackSet(seqRange{sg.seq, seqMin(end, c.rcv.nxt)})
	}
	c.sendAck(out)
}
