package tcp

import (
	"time"

	"github.com/tapstack/tapstack/tcp/congestion"
)

// The loss-recovery state machine (Linux tcp_fastretrans_alert and its
// helpers in tcp_input.c). RACK (rack.go) or, with net.ipv4.tcp_recovery=0,
// the dupack rule marks segments lost on the scoreboard; this decides the
// congestion state, one reduction per window of data, undo, and what to
// retransmit.

// rexmitKind is what an ACK asks to be sent (Linux REXMIT_*).
type rexmitKind uint8

const (
	rexmitNone rexmitKind = iota
	rexmitLost            // retransmit segments marked lost
	rexmitNew             // F-RTO: send new data first
)

func (c *Conn) setCA(st caState) {
	if c.rec.ca != st {
		c.rec.ca = st
		c.rec.cc.SetState(c.ccSender(), congestion.State(st))
	}
}

// inCwndReduction is tcp_in_cwnd_reduction: PRR is pacing the window.
func (c *Conn) inCwndReduction() bool { return c.rec.ca == caCWR || c.rec.ca == caRecovery }

// fastRetransAlert is tcp_fastretrans_alert, run for every "dubious" ACK
// (one that is a duplicate, carries SACK or D-SACK, or arrives outside the
// Open state).
func (c *Conn) fastRetransAlert(sg *segment, priorUna seqnum, numDupack int, st *ackState) rexmitKind {
	sb := &c.rec.sb
	fastRexmit := false
	doLost := numDupack > 0 || (st.flag&flagDataSacked != 0 && c.forceFastRetransmit())
	if sb.packetsOut == 0 && sb.sackedOut > 0 {
		sb.sackedOut = 0
	}
	if c.checkSackReneging(st) {
		return rexmitNone
	}
	// Exit conditions: the window of data recovery started with is acked.
	if c.rec.ca == caOpen {
		c.clearRetransStamp()
	} else if c.snd.una.geq(c.rec.highSeq) {
		switch c.rec.ca {
		case caCWR:
			if c.snd.una != c.rec.highSeq {
				c.endCwndReduction()
				c.setCA(caOpen)
			}
		case caRecovery:
			if !c.sackOn {
				sb.sackedOut = 0 // tcp_reset_reno_sack
			}
			if c.tryUndoRecovery(sg) {
				return rexmitNone
			}
			c.endCwndReduction()
		}
	}
	switch c.rec.ca {
	case caRecovery:
		if st.flag&flagSndUnaAdvanced == 0 {
			if !c.sackOn {
				c.addRenoSack(numDupack)
			}
		} else if c.tryUndoPartial(sg, priorUna, &doLost) {
			return rexmitNone
		}
		if c.tryUndoDsack() {
			c.tryToOpen()
		}
		c.identifyPacketLoss(st)
		if c.rec.ca != caRecovery {
			if !c.timeToRecover() {
				return rexmitNone
			}
			// Undone, but loss is evident: a new episode (say,
			// reordering, then a loss).
			c.enterRecovery()
		}
		// A loss found inside the recovery window is repaired within
		// it: no second reduction (RFC 6675 §5, RFC 6937).
	case caLoss:
		rexmit := c.processLoss(sg, st.flag, numDupack)
		c.identifyPacketLoss(st)
		if c.rec.ca != caOpen && st.flag&flagLostRetrans == 0 {
			return rexmit
		}
		// Undone, or a retransmission was lost: the state may change.
		if !c.defaultAlert(numDupack, st) {
			return rexmit
		}
		fastRexmit = true
	default:
		if !c.defaultAlert(numDupack, st) {
			return rexmitNone
		}
		fastRexmit = true
	}
	if !c.rackOn() && doLost {
		c.updateScoreboard(fastRexmit)
	}
	return rexmitLost
}

// defaultAlert is the Open/Disorder/CWR arm of tcp_fastretrans_alert: note
// dupacks, undo on D-SACK, detect losses, and enter recovery when one is
// proven. It reports whether recovery transmissions are due.
func (c *Conn) defaultAlert(numDupack int, st *ackState) bool {
	if !c.sackOn {
		if st.flag&flagSndUnaAdvanced != 0 {
			c.rec.sb.sackedOut = 0
		}
		c.addRenoSack(numDupack)
	}
	if c.rec.ca <= caDisorder {
		c.tryUndoDsack()
	}
	c.identifyPacketLoss(st)
	if !c.timeToRecover() {
		c.tryToOpen()
		return false
	}
	c.enterRecovery()
	return true
}

// checkSackReneging is tcp_check_sack_reneging: the peer dropped data it
// had SACKed (the new head was SACKed). Wait a little for the ACK that
// covers it, then let the RTO retransmit.
func (c *Conn) checkSackReneging(st *ackState) bool {
	if st.flag&flagSackReneging == 0 || st.flag&flagSndUnaAdvanced == 0 {
		return false
	}
	delay := max(c.rtt.srtt/2, 10*time.Millisecond)
	c.resetXmitTimer(timerRTO, delay)
	st.flag &^= flagSetXmitTimer
	return true
}

// identifyPacketLoss is tcp_identify_packet_loss: NewReno marks the head
// without SACK; otherwise RACK decides.
func (c *Conn) identifyPacketLoss(st *ackState) {
	if c.rec.sb.n == 0 {
		return
	}
	if !c.sackOn {
		c.newrenoMarkLost(st.flag&flagSndUnaAdvanced != 0)
		return
	}
	if c.rackOn() {
		priorRetrans := c.rec.sb.retransOut
		if c.rackMarkLost(st.now) {
			st.flag &^= flagSetXmitTimer
		}
		if priorRetrans > c.rec.sb.retransOut {
			st.flag |= flagLostRetrans
		}
	}
}

// timeToRecover is tcp_time_to_recover: a loss is proven, or (without
// RACK) more than tp->reordering segments were SACKed or duplicate-ACKed.
func (c *Conn) timeToRecover() bool {
	if c.rec.sb.lostOut > 0 {
		return true
	}
	return !c.rackOn() && c.rec.sb.sackedOut+1 > c.rec.reordering
}

// forceFastRetransmit is tcp_force_fast_retransmit: SACKs reach more than
// tp->reordering segments beyond snd_una.
func (c *Conn) forceFastRetransmit() bool {
	return c.rec.sb.sackedOut > 0 && c.rec.sb.fack.gt(c.snd.una.add(c.rec.reordering*c.snd.mss))
}

// newrenoMarkLost is tcp_newreno_mark_lost (RFC 6582): without SACK the
// head is lost after tp->reordering duplicate ACKs, and again at every
// partial ACK of recovery.
func (c *Conn) newrenoMarkLost(unaAdvanced bool) {
	if (c.rec.ca < caRecovery && c.rec.sb.sackedOut >= c.rec.reordering) || (c.rec.ca == caRecovery && unaAdvanced) {
		if c.rec.sb.at(0).flags&sbLost == 0 {
			c.markLost(0)
		}
	}
}

// updateScoreboard is tcp_update_scoreboard for tcp_recovery=0 (RFC 6675's
// IsLost): a segment with at least tp->reordering SACKed segments above
// it is lost; entering recovery, at least the head is.
func (c *Conn) updateScoreboard(fastRexmit bool) {
	if !c.sackOn {
		return
	}
	if upto := c.rec.sb.sackedOut - c.rec.reordering; upto >= 0 {
		c.markHeadLost(upto, false)
	} else if fastRexmit {
		c.markHeadLost(1, true)
	}
}

// markHeadLost is tcp_mark_head_lost: from the head, mark unSACKed
// segments lost until more than packets SACKed ones have been passed (or
// only the head, with markHead).
func (c *Conn) markHeadLost(packets int, markHead bool) {
	sb := &c.rec.sb
	cnt := 0
	for i := 0; i < sb.n; i++ {
		g := sb.at(i)
		if g.flags&sbSacked != 0 {
			cnt++
		}
		if cnt > packets {
			break
		}
		if g.flags&(sbLost|sbSacked) == 0 {
			c.markLost(i)
		}
		if markHead {
			break
		}
	}
}

// enterRecovery is tcp_enter_recovery: start fast recovery, remembering
// what a spurious reduction may be undone to, and begin PRR's reduction
// unless one is already running.
func (c *Conn) enterRecovery() {
	if c.sackOn {
		c.s.mib.inc(cTCPSackRecovery)
	} else {
		c.s.mib.inc(cTCPRenoRecovery)
	}
	c.rec.priorSsthresh = 0
	c.initUndo()
	if !c.inCwndReduction() {
		c.rec.priorSsthresh = c.currentSsthresh()
		c.initCwndReduction()
	}
	c.setCA(caRecovery)
}

// currentSsthresh is tcp_current_ssthresh: ssthresh, or 3/4 of cwnd while
// cwnd is above it (what slow start was heading for).
func (c *Conn) currentSsthresh() uint32 {
	if c.inCwndReduction() {
		return c.rec.cong.Ssthresh
	}
	return max(c.rec.cong.Ssthresh, c.rec.cong.Cwnd*3/4)
}

// tryToOpen is tcp_try_to_open.
func (c *Conn) tryToOpen() {
	if !c.anyRetransInFlight() {
		c.clearRetransStamp()
	}
	if c.rec.ca != caCWR {
		c.tryKeepOpen()
	}
}

// tryKeepOpen is tcp_try_keep_open: Disorder while SACKs, losses or
// retransmissions are outstanding, else Open.
func (c *Conn) tryKeepOpen() {
	st := caOpen
	if c.leftOut() > 0 || c.anyRetransInFlight() {
		st = caDisorder
	}
	if c.rec.ca != st {
		c.setCA(st)
		c.rec.highSeq = c.snd.nxt
	}
}

// enterLoss is tcp_enter_loss, on an RTO: everything outstanding but the
// most recently sent is lost (tcp_timeout_mark_lost), ssthresh falls once
// per window, cwnd restarts from what is still in flight plus one, and
// F-RTO (RFC 5682) will look at the next ACKs to tell a spurious timeout.
func (c *Conn) enterLoss() {
	newRecovery := c.rec.ca < caRecovery
	c.timeoutMarkLost()
	if c.rec.ca <= caDisorder || !c.rec.highSeq.gt(c.snd.una) || (c.rec.ca == caLoss && c.rtt.retransmits == 0) {
		c.rec.priorSsthresh = c.currentSsthresh()
		c.rec.priorCwnd = c.rec.cong.Cwnd
		c.rec.cong.Ssthresh = c.rec.cc.SsThresh(c.ccSender())
		c.rec.cc.CwndEvent(c.ccSender(), congestion.EventLoss)
		c.initUndo()
	}
	c.rec.cong.Cwnd = uint32(c.inFlight() + 1)
	c.rec.cong.CwndCnt = 0
	// An RTO in Disorder after many dupacks: reordering was overestimated.
	if reo := int(c.s.sys.Reordering.Load()); c.rec.ca <= caDisorder && c.rec.sb.sackedOut >= reo {
		c.rec.reordering = min(c.rec.reordering, reo)
	}
	c.setCA(caLoss)
	c.rec.highSeq = c.snd.nxt
	c.rec.tlpOut = false
	c.rec.frto = c.s.sys.Frto.Load() != 0 && (newRecovery || c.rtt.retransmits > 0)
}

// timeoutMarkLost is tcp_timeout_mark_lost: a SACKed head means the peer
// reneged, so SACK marks are dropped; the head and every segment whose
// RACK timeout has passed are lost.
func (c *Conn) timeoutMarkLost() {
	sb := &c.rec.sb
	if sb.n == 0 {
		return
	}
	reneg := sb.at(0).flags&sbSacked != 0
	if reneg {
		c.s.mib.inc(cTCPSACKReneging)
		sb.sackedOut = 0
		c.rec.isSackReneg = true
	} else if !c.sackOn {
		sb.sackedOut = 0
	}
	now := c.s.stampNow()
	for i := 0; i < sb.n; i++ {
		g := sb.at(i)
		if reneg {
			g.flags &^= sbSacked
		} else if i > 0 && c.rec.rack.rtt-time.Duration(now-g.sent) > 0 {
			continue // sent too recently to call lost yet
		}
		c.markLost(i)
	}
	sb.rtxHint = 0
}

// processLoss is tcp_process_loss: recovery after an RTO, with F-RTO
// (RFC 5682 §3.1, the SACK-enhanced version, net.ipv4.tcp_frto=2).
func (c *Conn) processLoss(sg *segment, flag, numDupack int) rexmitKind {
	recovered := c.snd.una.geq(c.rec.highSeq)
	if flag&flagSndUnaAdvanced != 0 && c.tryUndoLoss(sg, false) {
		return rexmitNone
	}
	if c.rec.frto {
		// Step 3.b: the timeout was spurious if never-retransmitted
		// data is (s)acked.
		if flag&flagOrigSackAcked != 0 && c.tryUndoLoss(sg, true) {
			return rexmitNone
		}
		if c.snd.nxt.gt(c.rec.highSeq) {
			if flag&flagDataSacked != 0 || numDupack > 0 {
				c.rec.frto = false // step 3.a: the loss was real
			}
		} else if flag&flagSndUnaAdvanced != 0 && !recovered {
			c.rec.highSeq = c.snd.nxt
			// Step 2.b: send new data, then judge by the next ACK.
			if c.hasUnsentData() && c.snd.una.add(c.snd.wnd).gt(c.snd.nxt) {
				return rexmitNew
			}
			c.rec.frto = false
		}
	}
	if recovered {
		// Step 2.a and the first part of 3.a.
		c.tryUndoRecovery(sg)
		return rexmitNone
	}
	if !c.sackOn {
		// A NewReno duplicate ACK means F-RTO's new data arrived: clock
		// out the retransmissions.
		if c.snd.nxt.gt(c.rec.highSeq) && numDupack > 0 {
			c.addRenoSack(numDupack)
		} else if flag&flagSndUnaAdvanced != 0 {
			c.rec.sb.sackedOut = 0
		}
	}
	return rexmitLost
}

// hasUnsentData reports whether data (or a FIN) waits to be sent for the
// first time (!tcp_write_queue_empty).
func (c *Conn) hasUnsentData() bool {
	return c.dataEnd().gt(c.snd.nxt) || (c.snd.finQueued && !c.snd.finSent)
}

// xmitRecovery is tcp_xmit_recovery: what the ACK's recovery decision
// sends, before the caller sends new data.
func (c *Conn) xmitRecovery(out *outBatch, rexmit rexmitKind) {
	if rexmit == rexmitNone || c.state == StateSynSent {
		return
	}
	if rexmit == rexmitNew {
		c.xmitNew(out, true)
		if c.snd.nxt.gt(c.rec.highSeq) {
			return
		}
		c.rec.frto = false
	}
	c.xmitRetransmitQueue(out)
}

// xmitRetransmitQueue is tcp_xmit_retransmit_queue: retransmit the lost
// segments in sequence order while the congestion window has room.
func (c *Conn) xmitRetransmitQueue(out *outBatch) {
	sb := &c.rec.sb
	if sb.packetsOut == 0 || !c.canSendData() {
		return
	}
	rearm := false
	hole := false
	for i := sb.rtxHint; i < sb.n; i++ {
		if !hole {
			sb.rtxHint = i
		}
		if int(c.rec.cong.Cwnd)-c.inFlight() <= 0 {
			break
		}
		if sb.retransOut >= sb.lostOut {
			break
		}
		g := sb.at(i)
		if g.flags&sbLost == 0 {
			if !hole && g.flags&(sbRetrans|sbSacked) == 0 {
				hole = true
			}
			continue
		}
		if g.flags&(sbSacked|sbRetrans) != 0 {
			continue
		}
		if !c.retransmitRecord(out, i) {
			break
		}
		if c.rec.ca != caLoss {
			c.s.mib.inc(cTCPFastRetrans)
		} else {
			c.s.mib.inc(cTCPSlowStartRetrans)
		}
		if c.inCwndReduction() {
			c.rec.prrOut++
		}
		if i == 0 && c.reoAt.IsZero() {
			rearm = true
		}
	}
	if rearm {
		c.resetXmitTimer(timerRTO, c.rtoBackoff())
	}
}

// simpleRetransmit is tcp_simple_retransmit, after the path MTU fell:
// segments larger than the new MSS are lost, and resent smaller without
// treating it as congestion.
func (c *Conn) simpleRetransmit(out *outBatch) {
	sb := &c.rec.sb
	mss := c.sendMSS()
	for i := 0; i < sb.n; i++ {
		if g := sb.at(i); g.len() > mss && g.flags&(sbLost|sbSacked) == 0 {
			c.markLost(i)
		}
	}
	if sb.lostOut == 0 {
		return
	}
	if !c.sackOn {
		c.limitRenoSacked()
	}
	if c.rec.ca != caLoss {
		c.rec.highSeq = c.snd.nxt
		c.rec.cong.Ssthresh = c.currentSsthresh()
		c.rec.priorSsthresh = 0
		c.rec.undoMarkerOK = false
		c.setCA(caLoss)
	}
	c.xmitRetransmitQueue(out)
}

// updateSndBuf grows the send buffer with the congestion window (Linux
// tcp_sndbuf_expand: room for two windows of segments), within tcp_wmem.
func (c *Conn) updateSndBuf() {
	if c.snd.bufLocked {
		return
	}
	want := 2 * int(max(c.rec.cong.Cwnd, initCwnd)) * c.snd.mss * 2
	want = min(want, int(c.s.sys.WmemMax.Load()))
	if want > c.snd.bufMax {
		c.snd.bufMax = want
	}
}
