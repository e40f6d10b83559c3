package tcp

import (
	"time"

	"github.com/tapstack/tapstack/wire"
)

// xmit sends new data as the windows and Nagle allow (Linux
// tcp_push_pending_frames → tcp_write_xmit). Retransmissions are not its
// business: the ACK path and the timers send those (xmitRetransmitQueue).
func (c *Conn) xmit(out *outBatch) { c.xmitNew(out, false) }

// xmitNew is tcp_write_xmit. New data goes in TSO super-segments when the
// Network can segment (tso.go); nagleOff is F-RTO's TCP_NAGLE_OFF push.
func (c *Conn) xmitNew(out *outBatch, nagleOff bool) {
	if !c.canSendData() {
		return
	}
	mss := c.sendMSS()
	now := c.s.stampNow()
	sent := 0
	limited := false
	for !c.snd.finSent {
		quota := int(c.rec.cong.Cwnd) - c.inFlight() // tcp_cwnd_test
		if quota <= 0 {
			limited = true
			break
		}
		avail := c.dataEnd().diff(c.snd.nxt)
		room := c.snd.una.add(c.snd.wnd).diff(c.snd.nxt)
		n := min(avail, mss, max(room, 0))
		gso := 0
		if n == mss {
			// A full segment fits: with TSO, as many as the windows allow go
			// in one super-segment (tcp_write_xmit with tso_segs > 1).
			if segs := c.tsoSegs(mss); segs > 1 {
				if deferIt, cwndLim := c.tsoShouldDefer(mss, segs, quota, avail, room, now); deferIt {
					limited = limited || cwndLim
					break
				}
				if n = c.tsoSplit(mss, segs, quota, avail, room); n > mss {
					gso = mss
				}
			}
		}
		fin := c.snd.finQueued && n == avail
		if n <= 0 && !fin {
			break
		}
		if fin && n == 0 && room <= 0 {
			break // the FIN needs one byte of window too (tcp_snd_wnd_test)
		}
		if n < mss && n < avail {
			// Window-limited: sender SWS avoidance (RFC 1122 §4.2.3.4).
			if n < c.snd.maxWnd/2 || c.snd.una != c.snd.nxt {
				break
			}
		} else if n < mss && !fin && !c.noDelay && !nagleOff && c.snd.una != c.snd.nxt {
			break // Nagle (RFC 896; Linux tcp_nagle_check)
		}
		if c.snd.una == c.snd.nxt {
			c.idleRestart()
		}
		c.sendNew(out, n, fin, gso, mss, now)
		sent += pcount(n, mss)
	}
	limited = limited || c.inFlight() >= int(c.rec.cong.Cwnd)
	if sent > 0 || limited {
		c.cwndValidate(limited)
	}
	if sent > 0 {
		if c.inCwndReduction() {
			c.rec.prrOut += sent
		}
		c.scheduleLossProbe(false)
	}
	c.checkPersist()
}

// xmitProbe sends one new segment whatever the congestion window and
// Nagle say: a tail loss probe (tcp_write_xmit with push_one 2).
func (c *Conn) xmitProbe(out *outBatch) {
	mss := c.sendMSS()
	avail := c.dataEnd().diff(c.snd.nxt)
	room := c.snd.una.add(c.snd.wnd).diff(c.snd.nxt)
	n := min(avail, mss, max(room, 0))
	fin := c.snd.finQueued && n == avail
	if (n <= 0 && !fin) || (n == 0 && room <= 0) {
		return
	}
	c.sendNew(out, n, fin, 0, mss, c.s.stampNow())
	if c.inCwndReduction() {
		c.rec.prrOut++
	}
}

// sendNew sends n new bytes from snd_nxt (and the FIN) as one segment,
// or as a super-segment cut at gso bytes, and records them on the
// scoreboard (tcp_transmit_skb + tcp_event_new_data_sent).
func (c *Conn) sendNew(out *outBatch, n int, fin bool, gso, mss int, now stamp) {
	seq := c.snd.nxt
	flags := uint8(0)
	if n > 0 && n == c.dataEnd().diff(seq) {
		flags |= wire.TCPFlagPSH
	}
	if fin {
		flags |= wire.TCPFlagFIN
	}
	priorPackets := c.rec.sb.packetsOut
	c.sendSuper(out, seq, n, flags, gso)
	c.lastSend = now
	cut := max(n, 1)
	if gso > 0 {
		cut = gso
	}
	if n > 0 {
		c.s.mib.add(cTCPOrigDataSent, uint64(pcount(n, mss)))
	}
	c.recordSent(seq, n, cut, fin, now)
	c.snd.nxt = seq.add(n)
	if fin {
		c.snd.finSent, c.snd.finSeq = true, c.snd.nxt
		c.snd.nxt = c.snd.nxt.add(1)
	}
	if priorPackets == 0 || !c.tlpAt.IsZero() {
		c.rearmRTO()
	}
}

// retransmitRecord is tcp_retransmit_skb for record i: resend it (cut to
// the current MSS first if that shrank, tcp_fragment), count it in flight
// as a retransmission, and note it for undo and the write timeout. It
// reports false when the peer's window leaves no room for it.
func (c *Conn) retransmitRecord(out *outBatch, i int) bool {
	sb := &c.rec.sb
	g := sb.at(i)
	if c.snd.una.add(c.snd.wnd).diff(g.seq) <= 0 && g.seq != c.snd.una {
		return false // beyond a shrunk window; the head still goes as a probe
	}
	c.fitToMSS(i, false)
	g = sb.at(i)
	c.retransmitSkb(out, g)
	g.flags |= sbRetrans
	sb.retransOut++
	c.noteRetrans(c.tsvalAt(g.sent))
	return true
}

// retransmitLast is the tail loss probe's __tcp_retransmit_skb of the last
// segment: resent without counting as a retransmission in flight.
func (c *Conn) retransmitLast(out *outBatch) bool {
	sb := &c.rec.sb
	if sb.n == 0 {
		return false
	}
	c.fitToMSS(sb.n-1, true)
	c.retransmitSkb(out, sb.last())
	return true
}

// fitToMSS splits record i when it is longer than the current MSS (after
// a path MTU drop): keepTail keeps the record's last MSS as the record
// at the returned position, as tcp_send_loss_probe does.
func (c *Conn) fitToMSS(i int, keepTail bool) {
	sb := &c.rec.sb
	mss := c.sendMSS()
	g := sb.at(i)
	dataLen := g.len()
	if c.snd.finSent && g.end == c.snd.finSeq.add(1) {
		dataLen--
	}
	if dataLen <= mss {
		return
	}
	cut := g.seq.add(mss)
	if keepTail {
		cut = g.seq.add(dataLen - mss)
	}
	tail := *g
	tail.seq = cut
	g.end = cut
	// tcp_fragment: both halves keep the marks, and the counts follow.
	if tail.flags&sbSacked != 0 {
		sb.sackedOut++
	}
	if tail.flags&sbLost != 0 {
		sb.lostOut++
	}
	if tail.flags&sbRetrans != 0 {
		sb.retransOut++
	}
	sb.insertAfter(i, tail)
}

// retransmitSkb is __tcp_retransmit_skb: send the record's bytes again
// (with the FIN if it carries it) and restamp it.
func (c *Conn) retransmitSkb(out *outBatch, g *txSeg) {
	data := g.len()
	flags := uint8(0)
	if c.snd.finSent && g.end == c.snd.finSeq.add(1) {
		data--
		flags |= wire.TCPFlagFIN
	}
	if data > 0 {
		flags |= wire.TCPFlagPSH
	}
	c.sendSegment(out, g.seq, data, flags)
	g.sent = c.s.stampNow()
	g.flags |= sbEverRetrans
	c.s.mib.inc(cRetransSegs)
	c.rec.totalRetrans++
}

// rtoDelta is tcp_rto_delta_us: how far the RTO of the head's last
// transmission is from now.
func (c *Conn) rtoDelta() time.Duration {
	if c.rec.sb.n == 0 {
		return c.rtoBackoff()
	}
	return time.Duration(c.rec.sb.at(0).sent) + c.rtoBackoff() - time.Duration(c.s.stampNow())
}

// Kinds of the retransmission timer (Linux icsk_pending): one deadline at
// a time among the RTO, the loss probe and RACK's reordering timer.
const (
	timerRTO = iota
	timerTLP
	timerREO
)

// resetXmitTimer is inet_csk_reset_xmit_timer for the retransmission
// timer: arm kind in d (at most TCP_RTO_MAX), replacing the other kinds.
func (c *Conn) resetXmitTimer(kind int, d time.Duration) {
	at := c.s.stampAfter(min(d, maxRTO))
	c.rtoAt, c.tlpAt, c.reoAt = 0, 0, 0
	switch kind {
	case timerRTO:
		c.rtoAt = at
	case timerTLP:
		c.tlpAt = at
	default:
		c.reoAt = at
	}
}

// rearmRTO is tcp_rearm_rto: the RTO from now, or, replacing a loss probe
// or reordering timer, from the head's last transmission; none when
// nothing is in flight.
func (c *Conn) rearmRTO() {
	if c.rec.sb.packetsOut == 0 {
		c.rtoAt, c.tlpAt, c.reoAt = 0, 0, 0
		return
	}
	rto := c.rtoBackoff()
	if !c.tlpAt.IsZero() || !c.reoAt.IsZero() {
		rto = max(c.rtoDelta(), time.Microsecond)
	}
	c.resetXmitTimer(timerRTO, rto)
}

// setXmitTimer is tcp_set_xmit_timer: after an ACK of new data, a loss
// probe if one may be sent, else the RTO.
func (c *Conn) setXmitTimer() {
	if !c.scheduleLossProbe(true) {
		c.rearmRTO()
	}
}
