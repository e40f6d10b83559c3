package tcp

import "github.com/tapstack/tapstack/tcp/congestion"

// Proportional Rate Reduction (RFC 6937, in Linux's form: tcp_init_cwnd_reduction,
// tcp_cwnd_reduction, tcp_end_cwnd_reduction). During recovery the window
// falls from its size at the loss (priorCwnd) to ssthresh in proportion to
// what the peer reports delivered, so recovery sends about ssthresh/priorCwnd
// segments per segment delivered instead of stopping and bursting; once
// in-flight is below ssthresh it grows back like slow start, at most as
// fast as delivery (the slow-start reduction bound).

// initCwndReduction is tcp_init_cwnd_reduction: one multiplicative
// decrease for the data in flight now (up to high_seq).
func (c *Conn) initCwndReduction() {
	c.rec.highSeq = c.snd.nxt
	c.rec.tlpOut = false
	c.rec.cong.CwndCnt = 0
	c.rec.priorCwnd = c.rec.cong.Cwnd
	c.rec.prrDelivered, c.rec.prrOut = 0, 0
	c.rec.cong.Ssthresh = c.rec.cc.SsThresh(c.ccSender())
}

// cwndReduction is tcp_cwnd_reduction, on each ACK of recovery: newly is
// what the ACK delivered (acknowledged or SACKed), newlyLost what it
// found lost.
func (c *Conn) cwndReduction(newly, newlyLost, flag int) {
	if newly <= 0 || c.rec.priorCwnd == 0 {
		return
	}
	c.rec.prrDelivered += newly
	inFlight := c.inFlight()
	delta := int(c.rec.cong.Ssthresh) - inFlight
	var sndcnt int
	if delta < 0 {
		// Proportional part: ssthresh/priorCwnd of what was delivered.
		dividend := uint64(c.rec.cong.Ssthresh)*uint64(c.rec.prrDelivered) + uint64(c.rec.priorCwnd) - 1
		sndcnt = int(dividend/uint64(c.rec.priorCwnd)) - c.rec.prrOut
	} else {
		// Slow-start reduction bound: grow back no faster than delivery.
		sndcnt = max(c.rec.prrDelivered-c.rec.prrOut, newly)
		if flag&flagSndUnaAdvanced != 0 && newlyLost == 0 {
			sndcnt++
		}
		sndcnt = min(delta, sndcnt)
	}
	if c.rec.prrOut == 0 {
		sndcnt = max(sndcnt, 1) // the fast retransmit goes at once
	}
	c.rec.cong.Cwnd = uint32(max(inFlight+sndcnt, 1))
}

// endCwndReduction is tcp_end_cwnd_reduction: leaving CWR, or recovery
// that was not undone, cwnd is ssthresh.
func (c *Conn) endCwndReduction() {
	if c.rec.cong.Ssthresh < infiniteSsthresh && (c.rec.ca == caCWR || c.rec.undoMarkerOK) {
		c.rec.cong.Cwnd = c.rec.cong.Ssthresh
	}
	c.rec.cc.CwndEvent(c.ccSender(), congestion.CompleteCWR)
}

// congControl is tcp_cong_control without a cong_control hook: PRR while
// the window is being reduced, else growth by the algorithm when the ACK
// may raise the window (tcp_may_raise_cwnd).
func (c *Conn) congControl(delivered, lost, flag int) {
	if c.inCwndReduction() {
		c.cwndReduction(delivered, lost, flag)
		return
	}
	if c.mayRaiseCwnd(flag) && delivered > 0 {
		s := c.ccSender()
		s.CwndLimited = c.isCwndLimited()
		c.rec.cc.CongAvoid(s, uint32(delivered))
	}
}

// mayRaiseCwnd is tcp_may_raise_cwnd: grow only on in-order delivery
// (RFC 5681), unless the path reorders more than the default tolerance,
// when any delivery counts.
func (c *Conn) mayRaiseCwnd(flag int) bool {
	if c.rec.reordering > int(c.s.sys.Reordering.Load()) {
		return flag&flagForwardProgress != 0
	}
	return flag&flagDataAcked != 0
}

// cwndValidate is tcp_cwnd_validate's record of how fully the window is
// used: cwnd-limited for the current window of data, or the most packets
// that were in flight in it (max_packets_out).
func (c *Conn) cwndValidate(limited bool) {
	if c.snd.una.geq(c.rec.cwndUsageSeq) || limited || (!c.rec.cwndLimited && c.rec.sb.packetsOut > c.rec.maxPacketsOut) {
		c.rec.cwndLimited = limited
		c.rec.maxPacketsOut = c.rec.sb.packetsOut
		c.rec.cwndUsageSeq = c.snd.nxt
	}
}

// isCwndLimited is tcp_is_cwnd_limited: the window, not the application,
// limited sending in this window of data; in slow start cwnd also grows
// until it is twice what was in flight.
func (c *Conn) isCwndLimited() bool {
	if c.rec.cwndLimited {
		return true
	}
	if c.rec.cong.Cwnd < c.rec.cong.Ssthresh {
		return int(c.rec.cong.Cwnd) < 2*c.rec.maxPacketsOut
	}
	return false
}
