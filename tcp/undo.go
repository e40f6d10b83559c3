package tcp

// startUndo records what a reduction can be undone to (Linux
// tcp_init_undo), at the start of recovery or of RTO loss recovery.
func (c *Conn) startUndo() {
	c.undoOK = true
	c.undoMarker = c.sndUna
	c.undoRetrans = 0
	c.rtxTSvalSet = false
	c.priorCwnd = c.cwnd
	// tcp_current_ssthresh: ssthresh, or 3/4 cwnd while it is above it.
	c.priorSsthresh = max(c.ssthresh, c.cwnd*3/4)
	if c.ssthresh == infiniteSsthresh {
		c.priorSsthresh = infiniteSsthresh
	}
}

// noteRetransForUndo counts a retransmission of the episode and stamps the
// first with its TSval (Linux retrans_stamp, undo_retrans).
func (c *Conn) noteRetransForUndo(tsval uint32) {
	if !c.undoOK {
		return
	}
	c.undoRetrans++
	if !c.rtxTSvalSet && c.tsOn {
		c.rtxTSval, c.rtxTSvalSet = tsval, true
	}
}

// dsackForUndo handles a D-SACK block [l, r) below snd_una (Linux
// tcp_check_dsack): each one reporting data we retransmitted in this
// episode is a retransmission that was not needed.
func (c *Conn) dsackForUndo(l, r seqnum) {
	if !c.undoOK || c.undoRetrans <= 0 || l.lt(c.undoMarker) || r.gt(seqMax(c.highRxt, c.sndUna)) {
		return
	}
	c.undoRetrans -= max(1, (r.diff(l)+c.mss-1)/c.mss)
	if c.undoRetrans <= 0 && c.ca >= caRecovery {
		c.undoRecovery(cTCPDSACKUndo) // tcp_try_undo_dsack
	}
}

// packetDelayed is Eifel detection (RFC 3522; Linux tcp_packet_delayed):
// the ACK echoes a TSval older than our first retransmission, so it was
// caused by an original transmission and the retransmission was spurious.
func (c *Conn) packetDelayed(sg *segment) bool {
	return c.undoOK && c.rtxTSvalSet && sg.opts.HasTS && sg.opts.TSEcr != 0 &&
		int32(sg.opts.TSEcr-c.rtxTSval) < 0
}

// undoRecovery restores cwnd and ssthresh after a spurious reduction
// (Linux tcp_undo_cwnd_reduction). Recovery itself ends only once
// everything outstanding at its start is acknowledged: the scoreboard
// keeps no per-segment loss marks, so leaving early would forget holes
// that still need a retransmission.
func (c *Conn) undoRecovery(why counter) {
	c.cwnd = max(c.cc.undoCwnd(c), 1)
	if c.priorSsthresh > c.ssthresh {
		c.ssthresh = c.priorSsthresh
	}
	c.undoOK = false
	c.s.mib.inc(why)
	if c.sndUna.geq(c.recoverSeq) {
		c.exitRecovery()
	}
}

// checkReordering mirrors tcp_check_sack_reordering for a cumulative ACK:
// never-retransmitted data below SACKed data arrived late, so the path
// reorders by the SACKed distance; loss detection then waits for more.
func (c *Conn) checkReordering(oldUna, ack seqnum) {
	if len(c.sacked) == 0 || c.ca >= caRecovery || c.highRxt.gt(oldUna) {
		return
	}
	if !c.sacked[0].start.gt(oldUna) {
		return // the head was SACKed, not late
	}
	top := c.sacked[len(c.sacked)-1].end
	dist := (top.diff(oldUna) + c.mss - 1) / c.mss
	if dist > c.dupThresh() {
		c.reordering = min(dist, maxReordering)
		c.s.mib.inc(cTCPSACKReorder)
	}
}
