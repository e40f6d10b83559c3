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
	if er := c.s.sys.EarlyRetrans.Load(); (er != 3 && er != 4) || c.rec.sb.packetsOut == 0 || !c.sackOn ||
		(c.rec.ca != caOpen && c.rec.ca != caCWR) || !c.canSendData() {
		return false
	}
	var timeout time.Duration
	if c.rtt.srtt > 0 {
		timeout = 2 * c.rtt.srtt
		if c.rec.sb.packetsOut == 1 {
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
	if c.rec.tlpOut || c.rec.sb.packetsOut == 0 || !c.canSendData() {
		c.rearmRTO()
		return
	}
	c.rec.tlpRetrans = false
	priorPackets := c.rec.sb.packetsOut
	if c.hasUnsentData() && c.snd.una.add(c.snd.wnd).gt(c.snd.nxt) {
		c.xmitProbe(out)
	}
	if c.rec.sb.packetsOut == priorPackets {
		// No new data went: send the last segment again.
		if !c.retransmitLast(out) {
			c.rearmRTO()
			return
		}
		c.rec.tlpRetrans = true
	}
	c.rec.tlpOut, c.rec.tlpHigh = true, c.snd.nxt
	c.s.mib.inc(cTCPLossProbes)
	c.rtoAt, c.tlpAt, c.reoAt = 0, 0, 0
	c.rearmRTO()
}

// processTLPAck is tcp_process_tlp_ack: once the ACK reaches the probe,
// either it was new data or a needless repeat (D-SACK, or a plain
// duplicate ACK: no loss), or the probe repaired a loss, which costs one
// window reduction (TCPLossProbeRecovery).
func (c *Conn) processTLPAck(ack seqnum, flag int) {
	if ack.lt(c.rec.tlpHigh) {
		return
	}
	switch {
	case !c.rec.tlpRetrans:
		c.rec.tlpOut = false
	case flag&flagDsackTLP != 0:
		c.rec.tlpOut = false
	case ack.gt(c.rec.tlpHigh):
		c.initCwndReduction() // clears tlpOut
		c.setCA(caCWR)
		c.endCwndReduction()
		c.tryKeepOpen()
		c.s.mib.inc(cTCPLossProbeRecovery)
	case flag&(flagSndUnaAdvanced|flagNotDup|flagDataSacked) == 0:
		c.rec.tlpOut = false
	}
}
