package tcp

import (
	"time"

	"github.com/tapstack/tapstack/wire"
)

// tcpDelackMax is TCP_DELACK_MAX: the longest a peer may delay an ACK.
const tcpDelackMax = 200 * time.Millisecond

// scheduleLossProbe arms the tail loss probe (RFC 8985 §7.2; Linux
// tcp_schedule_loss_probe) two RTTs after the last transmission, so a lost
// tail segment is repaired by fast recovery instead of a retransmission
// timeout. Only in the Open state, with SACK, one probe at a time.
func (c *Conn) scheduleLossProbe() {
	c.tlpAt = zeroTime
	if c.s.sys.EarlyRetrans.Load() < 3 || !c.sackOn || c.ca != caOpen || c.srtt == 0 ||
		c.sndUna == c.sndNxt || c.tlpOut || !c.canSendData() || c.rtoAt.IsZero() {
		return
	}
	now := c.s.clock.Now()
	pto := 2 * c.srtt
	if c.sndNxt.diff(c.sndUna) <= c.mss {
		// One segment in flight: allow for the peer's delayed ACK.
		pto = max(pto, c.srtt+c.srtt/2+tcpDelackMax)
	}
	pto = max(pto, 2*time.Millisecond)
	if at := now.Add(pto); at.Before(c.rtoAt) {
		c.tlpAt = at
	}
}

// sendLossProbe mirrors tcp_send_loss_probe: send one new segment if the
// window allows, else retransmit the last one, then re-arm the RTO.
func (c *Conn) sendLossProbe(out *outBatch) {
	if c.sndUna == c.sndNxt || c.ca != caOpen || c.tlpOut || !c.canSendData() {
		return
	}
	mss := c.sendMSS()
	avail := c.dataEnd().diff(c.sndNxt)
	room := c.sndUna.add(c.sndWnd).diff(c.sndNxt)
	if !c.finSent && avail > 0 && room > 0 {
		n := min(avail, mss, room)
		seq := c.sndNxt
		c.sendSegment(out, seq, n, wire.TCPFlagPSH)
		c.sndNxt = seq.add(n)
		c.s.mib.inc(cTCPOrigDataSent)
	} else {
		seq := seqMax(c.sndUna, c.sndNxt.add(-mss))
		c.retransmit(out, seq, c.sndNxt.diff(seq))
	}
	c.tlpOut, c.tlpHigh = true, c.sndNxt
	c.s.mib.inc(cTCPLossProbes)
	c.rtoAt = c.s.clock.Now().Add(c.rtoBackoff())
}

// tlpAcked ends a probe episode once the ACK covers it (tcp_process_tlp_ack).
func (c *Conn) tlpAcked() {
	if c.tlpOut && c.sndUna.geq(c.tlpHigh) {
		c.tlpOut = false
	}
}
