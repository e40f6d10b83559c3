package tcp

import "time"

// Tail loss probe (RFC 8985 §7; Linux tcp_schedule_loss_probe,
// tcp_send_loss_probe, tcp_process_tlp_ack): when the last segments of a
// flight are lost there are no later deliveries for RACK to see, so about
// two RTTs after the last transmission one segment is sent (new data if
// the window allows, else the last segment again) to draw the ACK that
// lets RACK repair the loss without an RTO.

// scheduleLossProbe is tcp_schedule_loss_probe: arm the probe instead of
// the RTO, at 2·srtt plus room for a delayed ACK (tcp_rto_min when only
// one segment is out, else TCP_TIMEOUT_MIN), never after the RTO would
// fire. advancingRTO: the RTO is about to restart from now.
func (c *Conn) scheduleLossProbe(advancingRTO bool) bool {
	if er := c.s.sys.EarlyRetrans.Load(); (er != 3 && er != 4) || c.sb.packetsOut == 0 || !c.sackOn ||
		(c.ca != caOpen && c.ca != caCWR) || !c.canSendData() {
		return false
	}
	var timeout time.Duration
	if c.srtt > 0 {
		timeout = 2 * c.srtt
		if c.sb.packetsOut == 1 {
			timeout += c.minRTO()
		} else {
			timeout += tcpTimeoutMin
		}
	} else {
		timeout = initRTO
	}
	rtoDelta := c.rtoBackoff()
	if !advancingRTO {
		rtoDelta = c.rtoDelta()
	}
	if rtoDelta > 0 {
		timeout = min(timeout, rtoDelta)
	}
	c.resetXmitTimer(timerTLP, timeout)
	return true
}

// sendLossProbe is tcp_send_loss_probe.
func (c *Conn) sendLossProbe(out *outBatch) {
	if c.tlpOut || c.sb.packetsOut == 0 || !c.canSendData() {
		c.rearmRTO()
		return
	}
	c.tlpRetrans = false
	priorPackets := c.sb.packetsOut
	if c.hasUnsentData() && c.sndUna.add(c.sndWnd).gt(c.sndNxt) {
		c.xmitProbe(out)
	}
	if c.sb.packetsOut == priorPackets {
		// No new data went: send the last segment again.
		if !c.retransmitLast(out) {
			c.rearmRTO()
			return
		}
		c.tlpRetrans = true
	}
	c.tlpOut, c.tlpHigh = true, c.sndNxt
	c.s.mib.inc(cTCPLossProbes)
	c.rtoAt, c.tlpAt, c.reoAt = 0, 0, 0
	c.rearmRTO()
}

// processTLPAck is tcp_process_tlp_ack: once the ACK reaches the probe,
// either it was new data or a needless repeat (D-SACK, or a plain
// duplicate ACK: no loss), or the probe repaired a loss, which costs one
// window reduction (TCPLossProbeRecovery).
func (c *Conn) processTLPAck(ack seqnum, flag int) {
	if ack.lt(c.tlpHigh) {
		return
	}
	switch {
	case !c.tlpRetrans:
		c.tlpOut = false
	case flag&flagDsackTLP != 0:
		c.tlpOut = false
	case ack.gt(c.tlpHigh):
		c.initCwndReduction() // clears tlpOut
		c.setCA(caCWR)
		c.endCwndReduction()
		c.tryKeepOpen()
		c.s.mib.inc(cTCPLossProbeRecovery)
	case flag&(flagSndUnaAdvanced|flagNotDup|flagDataSacked) == 0:
		c.tlpOut = false
	}
}
