package tcp

// Undo of a spurious window reduction (Linux tcp_input.c: tcp_init_undo,
// tcp_may_undo, tcp_try_undo_*; RFC 3522 Eifel detection by timestamps,
// RFC 2883 D-SACK, RFC 5682 F-RTO). The episode's retransmissions are
// counted in undoRetrans; each D-SACK for one takes it back, and when none
// is left, or an ACK echoes a timestamp older than the first
// retransmission, the reduction was needless and is undone.

// initUndo is tcp_init_undo: retransmissions already in flight may be
// D-SACKed later, so they count; -1 means none yet (0 means "undo now").
func (c *Conn) initUndo() {
	c.rec.undoMarker, c.rec.undoMarkerOK = c.snd.una, true
	c.rec.undoRetrans = c.rec.sb.retransOut
	if c.rec.tlpOut && c.rec.tlpRetrans {
		c.rec.undoRetrans++
	}
	if c.rec.undoRetrans == 0 {
		c.rec.undoRetrans = -1
	}
}

// noteRetrans is the undo and timeout bookkeeping of tcp_retransmit_skb:
// the first retransmission of an episode stamps it (retrans_stamp, kept
// as a time for tcp_write_timeout and as a TSval for Eifel).
func (c *Conn) noteRetrans(tsval uint32) {
	if c.rtt.retransStamp.IsZero() {
		c.rtt.retransStamp = c.s.stampNow()
		c.rec.rtxTSval = tsval
	}
	if c.rec.undoRetrans < 0 {
		c.rec.undoRetrans = 0
	}
	c.rec.undoRetrans++
}

func (c *Conn) clearRetransStamp() { c.rtt.retransStamp = 0 }

// packetDelayed is tcp_packet_delayed (Eifel, RFC 3522): the ACK echoes a
// TSval older than our first retransmission, so an original delivered it.
func (c *Conn) packetDelayed(sg *segment) bool {
	return !c.rtt.retransStamp.IsZero() && c.tsEcrBefore(sg, c.rec.rtxTSval)
}

// mayUndo is tcp_may_undo.
func (c *Conn) mayUndo(sg *segment) bool {
	return c.rec.undoMarkerOK && (c.rec.undoRetrans == 0 || c.packetDelayed(sg))
}

// undoCwndReduction is tcp_undo_cwnd_reduction: restore cwnd and ssthresh
// (the algorithm restores its own state in UndoCwnd), optionally forgetting
// the loss marks, and make RACK look at the scoreboard again.
func (c *Conn) undoCwndReduction(unmarkLoss bool) {
	if unmarkLoss {
		c.unmarkAllLost()
	}
	if c.rec.priorSsthresh != 0 {
		c.rec.cong.Cwnd = max(c.rec.cc.UndoCwnd(c.ccSender()), 1)
		if c.rec.priorSsthresh > c.rec.cong.Ssthresh {
			c.rec.cong.Ssthresh = c.rec.priorSsthresh
		}
	}
	c.rec.undoMarkerOK = false
	c.rec.rack.advanced = true
}

// tryUndoRecovery is tcp_try_undo_recovery, once the recovery window is
// acknowledged: undo if it was spurious, then return to Open (NewReno
// holds the state until data above high_seq is acknowledged, RFC 6582).
// It reports whether the state was held.
func (c *Conn) tryUndoRecovery(sg *segment) bool {
	if c.mayUndo(sg) {
		c.undoCwndReduction(false)
		if c.rec.ca == caLoss {
			c.s.mib.inc(cTCPLossUndo)
		} else {
			c.s.mib.inc(cTCPFullUndo)
		}
	} else if c.rec.rack.reoWndPersist > 0 {
		c.rec.rack.reoWndPersist--
	}
	if c.snd.una == c.rec.highSeq && !c.sackOn {
		if !c.anyRetransInFlight() {
			c.clearRetransStamp()
		}
		return true
	}
	c.setCA(caOpen)
	c.rec.isSackReneg = false
	return false
}

// tryUndoDsack is tcp_try_undo_dsack: every retransmission of the episode
// was D-SACKed.
func (c *Conn) tryUndoDsack() bool {
	if c.rec.undoMarkerOK && c.rec.undoRetrans == 0 {
		c.rec.rack.reoWndPersist = min(rackRecoveryThresh, c.rec.rack.reoWndPersist+1)
		c.undoCwndReduction(false)
		c.s.mib.inc(cTCPDSACKUndo)
		return true
	}
	return false
}

// tryUndoPartial is tcp_try_undo_partial: a partial ACK that echoes a
// timestamp from before the retransmission shows the hole was filled by
// a delayed original: reordering, not loss. With retransmissions still in
// flight it only holds back further ones (reported true).
func (c *Conn) tryUndoPartial(sg *segment, priorUna seqnum, doLost *bool) bool {
	if c.rec.undoMarkerOK && c.packetDelayed(sg) {
		c.checkSackReordering(priorUna, true)
		if c.rec.sb.retransOut > 0 {
			return true
		}
		if !c.anyRetransInFlight() {
			c.clearRetransStamp()
		}
		c.undoCwndReduction(true)
		c.s.mib.inc(cTCPPartialUndo)
		c.tryKeepOpen()
		return false
	}
	*doLost = c.forceFastRetransmit()
	return false
}

// tryUndoLoss is tcp_try_undo_loss: after an RTO, undo when the ACK proves
// the retransmission needless, or when F-RTO found the timeout spurious.
func (c *Conn) tryUndoLoss(sg *segment, frtoUndo bool) bool {
	if !frtoUndo && !c.mayUndo(sg) {
		return false
	}
	c.undoCwndReduction(true)
	c.s.mib.inc(cTCPLossUndo)
	if frtoUndo {
		c.s.mib.inc(cTCPSpuriousRTOs)
	}
	c.rtt.retransmits = 0
	if c.snd.una == c.rec.highSeq && !c.sackOn {
		// tcp_is_non_sack_preventing_reopen
		if !c.anyRetransInFlight() {
			c.clearRetransStamp()
		}
		return true
	}
	if frtoUndo || c.sackOn {
		c.setCA(caOpen)
		c.rec.isSackReneg = false
	}
	return true
}
