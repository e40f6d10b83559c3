package tcp

import (
	"time"

	"github.com/tapstack/tapstack/wire"
)

// ackResult tells the caller what tcp_ack decided.
type ackResult int

const (
	ackDiscard ackResult = iota - 1 // drop the segment (RFC 5961 §5.2)
	ackOld                          // old or duplicate; keep processing data
	ackNew                          // acknowledged new data
)

// rcvAck processes the ACK field (Linux tcp_ack): window update, SACK,
// cleaning the send buffer, RTT, congestion control and loss recovery.
func (c *Conn) rcvAck(sg *segment, out *outBatch) ackResult {
	ack := sg.ack
	if ack.gt(c.sndNxt) {
		// ACK for data we never sent: drop (Linux tcp_ack, RFC 9293 §3.10.7.4).
		c.sendChallengeAck(out)
		return ackDiscard
	}
	if ack.lt(c.sndUna) {
		if ack.lt(c.sndUna.add(-c.maxSndWnd)) {
			c.sendChallengeAck(out) // RFC 5961 §5.2 blind data injection
			return ackDiscard
		}
		return ackOld
	}
	c.probesOut = 0 // the peer is alive (tcp_ack)
	wnd := int(sg.wnd) << c.sndWscale
	windowChanged := false
	// tcp_may_update_window
	if ack.gt(c.sndUna) || sg.seq.gt(c.sndWl1) || (sg.seq == c.sndWl1 && (wnd > c.sndWnd || wnd == 0)) {
		windowChanged = wnd != c.sndWnd
		c.sndWnd, c.sndWl1, c.sndWl2 = wnd, sg.seq, ack
		c.maxSndWnd = max(c.maxSndWnd, wnd)
		if wnd > 0 && !c.persistAt.IsZero() {
			c.persistAt = zeroTime
			c.backoff = 0 // tcp_ack_probe
		}
	}
	if c.sackOn && sg.opts.NumSACK > 0 {
		c.sackUpdate(&sg.opts, ack)
	}
	acked := ack.diff(c.sndUna)
	now := c.s.clock.Now()
	if len(sg.payload) == 0 && !sg.has(wire.TCPFlagSYN|wire.TCPFlagFIN) {
		c.s.mib.inc(cTCPPureAcks)
	}
	if acked > 0 {
		c.checkReordering(c.sndUna, ack)
		c.cleanRtxQueue(ack, now)
	}
	dup := acked == 0 && len(sg.payload) == 0 && !sg.has(wire.TCPFlagSYN|wire.TCPFlagFIN) &&
		!windowChanged && c.sndUna != c.sndNxt
	c.eifelUndo = acked > 0 && c.packetDelayed(sg)
	c.fastRetransAlert(acked, dup)
	if acked > 0 {
		c.scheduleLossProbe()
	} else if c.ca != caOpen {
		c.tlpAt = zeroTime
	}
	if acked > 0 {
		c.updateSndBuf()
		c.notifyWrite()
		return ackNew
	}
	return ackOld
}

// cleanRtxQueue frees acknowledged data and samples the RTT (Linux
// tcp_clean_rtx_queue).
func (c *Conn) cleanRtxQueue(ack seqnum, now time.Time) {
	acked := ack.diff(c.sndUna)
	if c.sndBufSeq.lt(ack) {
		k := min(ack.diff(c.sndBufSeq), c.snd.n)
		c.snd.consume(k)
		c.sndBufSeq = c.sndBufSeq.add(k)
	}
	c.sndUna = ack
	var rtt time.Duration = -1
	if c.rttTiming && ack.gt(c.rttSeq) {
		rtt = now.Sub(c.rttStart)
		c.rttSample(rtt)
		c.rttTiming = false
	}
	c.cc.pktsAcked(c, uint32((acked+c.mss-1)/c.mss), rtt)
	c.backoff = 0
	c.retransOut = 0
	c.retransStamp = zeroTime
	c.probesOut = 0
	c.sackAdvance()
	if c.sndUna == c.sndNxt {
		c.rtoAt = zeroTime
	} else {
		c.rtoAt = now.Add(c.rto)
	}
	c.tlpAcked()
}

// fastRetransAlert is the recovery state machine (Linux
// tcp_fastretrans_alert; RFC 6675 §5, RFC 6582 without SACK).
func (c *Conn) fastRetransAlert(acked int, dup bool) {
	segs := uint32((acked + c.mss - 1) / c.mss)
	switch c.ca {
	case caOpen, caDisorder:
		if dup {
			c.dupAcks++
		} else if acked > 0 {
			c.dupAcks = 0
		}
		if c.sndUna != c.sndNxt && (c.dupAcks >= c.dupThresh() || c.headLost()) {
			c.enterRecovery()
			return
		}
		if c.dupAcks > 0 || c.sackedBytes > 0 {
			c.setCA(caDisorder)
		} else {
			c.setCA(caOpen)
		}
		if acked > 0 {
			c.cc.congAvoid(c, segs)
		}
	case caRecovery:
		if c.sndUna.geq(c.recoverSeq) && c.eifelUndo {
			c.undoRecovery(cTCPFullUndo) // tcp_try_undo_recovery
			return
		}
		if c.sndUna.geq(c.recoverSeq) {
			// Full ACK: leave recovery with cwnd = ssthresh (tcp_end_cwnd_reduction).
			c.cwnd = max(c.ssthresh, 2)
			c.exitRecovery()
			return
		}
		if acked > 0 && !c.sackOn {
			// NewReno partial ACK (RFC 6582 §3.2 step 5): the new head is lost.
			c.renoDup = max(c.renoDup-int(segs), 0)
			c.highRxt = c.sndUna
			c.lostEnd = seqMax(c.lostEnd, seqMin(c.sndUna.add(c.mss), c.sndNxt))
		}
		if dup && !c.sackOn {
			c.renoDup = min(c.renoDup+1, c.sndNxt.diff(c.sndUna)/c.mss)
		}
		if c.sackOn {
			c.markLost()
			c.markLostRetrans()
		}
		c.lostEnd = seqMax(c.lostEnd, c.sndUna)
	case caLoss:
		c.markLostRetrans()
		if acked > 0 && c.eifelUndo {
			c.undoRecovery(cTCPLossUndo) // tcp_try_undo_loss
			return
		}
		if c.sndUna.geq(c.recoverSeq) {
			c.exitRecovery()
		}
		if acked > 0 {
			c.cwndLimited = true
			c.cc.congAvoid(c, segs)
		}
	}
}

func (c *Conn) setCA(st caState) {
	if c.ca != st {
		c.ca = st
		c.cc.setState(c, st)
	}
}

// enterRecovery starts fast recovery (Linux tcp_enter_recovery; RFC 6675
// §5 step 4: ssthresh = cwnd = the reduced window, retransmit the head).
func (c *Conn) enterRecovery() {
	if c.sackOn {
		c.s.mib.inc(cTCPSackRecovery)
	} else {
		c.s.mib.inc(cTCPRenoRecovery)
		c.renoDup = min(c.dupAcks, c.sndNxt.diff(c.sndUna)/c.mss)
	}
	c.startUndo()
	c.ssthresh = c.cc.ssthresh(c)
	c.cwnd = max(c.ssthresh, 2)
	c.cwndCnt = 0
	c.recoverSeq = c.sndNxt
	c.highRxt = c.sndUna
	c.lostEnd = seqMin(c.sndUna.add(c.mss), c.sndNxt)
	if c.sackOn {
		c.markLost()
	}
	c.rttTiming = false
	c.setCA(caRecovery)
}

// enterLoss is RTO recovery (Linux tcp_enter_loss): everything outstanding
// is lost, cwnd restarts at one segment.
func (c *Conn) enterLoss() {
	if c.ca <= caDisorder || !c.recoverSeq.gt(c.sndUna) || (c.ca == caLoss && c.retransOut == 0) {
		c.startUndo()
		c.ssthresh = c.cc.ssthresh(c)
		c.cc.cwndEvent(c, ccLoss)
	}
	c.cwnd = 1
	c.cwndCnt = 0
	c.recoverSeq = c.sndNxt
	c.highRxt = c.sndUna
	c.lostEnd = c.sndNxt
	c.renoDup = 0
	c.dupAcks = 0
	c.rttTiming = false
	c.setCA(caLoss)
}

func (c *Conn) exitRecovery() {
	c.dupAcks = 0
	c.renoDup = 0
	c.lostEnd = c.sndUna
	c.highRxt = c.sndUna
	if c.sackedBytes > 0 {
		c.setCA(caDisorder)
	} else {
		c.setCA(caOpen)
	}
}

// updateSndBuf grows the send buffer with the congestion window (Linux
// tcp_sndbuf_expand: room for two windows of segments), within tcp_wmem.
func (c *Conn) updateSndBuf() {
	if c.sndBufLocked {
		return
	}
	want := 2 * int(max(c.cwnd, initCwnd)) * c.mss * 2
	want = min(want, int(c.s.sys.WmemMax.Load()))
	if want > c.sndBufMax {
		c.sndBufMax = want
	}
}
