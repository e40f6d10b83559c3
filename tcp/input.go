package tcp

import (
	"syscall"
	"time"

	"github.com/tapstack/tapstack/wire"
)

// pawsIdle is how long ts_recent stays valid (RFC 7323 §5.5: 24 days).
const pawsIdle = 24 * 24 * time.Hour

// input dispatches a segment on the connection's state (Linux
// tcp_rcv_state_process). It reports a listener to hand the segment to
// when a TIME_WAIT connection yields to a new SYN.
//
// It never waits for a user call: when one owns the connection, the
// segment goes onto the socket backlog for the owner (tcp_v4_rcv's
// sock_owned_by_user branch, sockbacklog.go).
func (c *Conn) input(sg *segment, out *outBatch) {
	if !c.tryLockSoftirq() {
		c.addBacklog(sg)
		c.sl.mu.Unlock()
		return
	}
	reuse := c.process(sg, out)
	c.armTimer()
	c.unlockSend(out)
	if reuse {
		c.s.reuseTimeWait(sg, out)
	}
}

// process is tcp_v4_do_rcv: the segment on the connection's state, with
// c.mu held. It reports a TIME_WAIT connection that yields to a new SYN.
func (c *Conn) process(sg *segment, out *outBatch) (reuse bool) {
	// One clock reading for the whole segment (Linux tcp_mstamp_refresh):
	// the ACK's RTT samples, RACK and timestamps read lastRecv.
	c.lastRecv = c.s.stampNow()
	switch c.state {
	case StateSynSent:
		c.rcvSynSent(sg, out)
	case StateTimeWait:
		reuse = c.rcvTimeWait(sg, out)
	case StateClose:
		c.s.sendReset(sg, out)
	default:
		c.rcvSynchronized(sg, out)
	}
	return reuse
}

// reuseTimeWait hands a SYN that ended a TIME_WAIT connection to the
// listener of its port, or answers it with a reset.
func (s *Stack) reuseTimeWait(sg *segment, out *outBatch) {
	s.mu.RLock()
	g := s.lookupListener(sg.local)
	s.mu.RUnlock()
	if l := s.pickListener(g, sg); l != nil {
		l.input(sg, out)
	} else {
		s.sendReset(sg, out)
	}
}

// rcvSynSent handles a segment in SYN-SENT (RFC 9293 §3.10.7.3; Linux
// tcp_rcv_synsent_state_process).
func (c *Conn) rcvSynSent(sg *segment, out *outBatch) {
	if sg.has(wire.TCPFlagACK) && (sg.ack.leq(c.snd.iss) || sg.ack.gt(c.snd.nxt)) {
		c.s.sendReset(sg, out)
		return
	}
	if sg.has(wire.TCPFlagRST) {
		if sg.has(wire.TCPFlagACK) {
			c.reset(syscall.ECONNREFUSED)
		}
		return
	}
	if !sg.has(wire.TCPFlagSYN) {
		return
	}
	c.rcv.irs = sg.seq
	c.rcv.nxt = sg.seq.add(1)
	c.rcv.wup = c.rcv.nxt
	c.rcv.edge = c.rcv.nxt // the window we send next is our first one in this space
	c.negotiate(&sg.opts, true)
	if c.tsOn {
		c.tsRecent, c.tsRecentStamp = sg.opts.TSVal, c.lastRecv
	}
	if !sg.has(wire.TCPFlagACK) {
		// Simultaneous open (RFC 9293 §3.5 figure 8): SYN-RECEIVED, SYN-ACK.
		c.snd.wnd = int(sg.wnd)
		c.snd.wl1 = sg.seq
		c.setState(StateSynRecv)
		c.sendSegment(out, c.snd.iss, 0, wire.TCPFlagSYN)
		return
	}
	c.snd.una = sg.ack
	c.snd.wnd = int(sg.wnd) // RFC 7323 §2.2: a SYN-ACK's window is never scaled
	c.snd.maxWnd = c.snd.wnd
	c.snd.wl1, c.snd.wl2 = sg.seq, sg.ack
	c.snd.bufSeq = c.snd.una
	if c.rtt.timing && c.rtt.retransmits == 0 {
		c.rttSample(c.s.since(c.rtt.start))
	} else if c.rtt.retransmits > 0 {
		c.rtt.rto = 3 * time.Second // RFC 6298 §5.7: SYN was retransmitted
	}
	c.rtt.timing = false
	c.rtt.backoff, c.rtt.retransmits, c.rtt.retransStamp, c.rtoAt = 0, 0, 0, 0
	c.establish()
	c.s.markProven(c.id.remote.Addr())
	if len(sg.payload) > 0 || sg.has(wire.TCPFlagFIN) {
		c.rcvData(sg, out)
	}
	c.sendAck(out)
	c.xmit(out)
}

// establish moves a connection to ESTABLISHED and wakes Dial.
func (c *Conn) establish() {
	c.setState(StateEstablished)
	c.rcv.quickAcks = maxQuickAcks
	c.rec.cc.Init(c.ccSender())
	c.updateSndBuf()
	c.keepAt = 0
	if c.keepalive {
		c.keepAt = c.s.stampAfter(c.kaIdle)
	}
	c.signalEstablished()
}

func (c *Conn) signalEstablished() {
	if c.estWait == nil {
		return
	}
	select {
	case <-c.estWait:
	default:
		close(c.estWait)
	}
}

// negotiate applies the peer's SYN options (tcp_parse_options on a SYN and
// tcp_openreq_init / tcp_synsent: only what both sides offered is used).
func (c *Conn) negotiate(o *wire.TCPOptions, synSent bool) {
	c.snd.peerMSS = 536 // RFC 9293 §3.7.1 default
	if o.HasMSS && o.MSS > 0 {
		c.snd.peerMSS = int(o.MSS)
	}
	c.tsOn = c.tsOn && o.HasTS
	c.sackOn = c.sackOn && o.SACKPermitted
	if c.wsOn && o.WScale >= 0 {
		c.snd.wscale = uint8(o.WScale)
	} else {
		c.wsOn = false
		c.snd.wscale, c.rcv.wscale = 0, 0
	}
	c.setMSS()
}

// setMSS derives the sending MSS (Linux tcp_sync_mss: the smaller of the
// peer's MSS and our path MTU, minus the timestamp option).
func (c *Conn) setMSS() {
	m := min(c.snd.peerMSS, c.rcv.advMSS)
	if c.snd.pmtuMSS > 0 {
		m = min(m, c.snd.pmtuMSS)
	}
	if c.tsOn {
		m -= tsOptLen
	}
	c.snd.mss = max(m, 64)
	c.rec.cong.MSS = c.snd.mss
}

// rcvSynchronized handles a segment once the handshake has progressed
// (RFC 9293 §3.10.7.4 "Otherwise"; Linux tcp_validate_incoming then
// tcp_rcv_state_process).
func (c *Conn) rcvSynchronized(sg *segment, out *outBatch) {
	m := &c.s.mib
	rst := sg.has(wire.TCPFlagRST)
	// RFC 7323 §5.3 PAWS (tcp_paws_discard).
	if c.tsOn && sg.opts.HasTS && !rst && int32(sg.opts.TSVal-c.tsRecent) < 0 &&
		c.s.since(c.tsRecentStamp) <= pawsIdle {
		m.inc(cPAWSEstab)
		if !c.oowRateLimited(sg, cTCPACKSkippedPAWS) {
			c.sendAck(out)
		}
		return
	}
	// Step 1: sequence number check (tcp_sequence).
	if !c.acceptable(sg) {
		if rst {
			return
		}
		if sg.has(wire.TCPFlagSYN) {
			c.synChallenge(out)
			return
		}
		if !c.oowRateLimited(sg, cTCPACKSkippedSeq) {
			c.sendDupAck(sg, out)
		}
		return
	}
	// Step 2: RST (RFC 5961 §3.2).
	if rst {
		if sg.seq == c.rcv.nxt {
			c.rcvReset()
		} else {
			c.sendChallengeAck(out)
		}
		return
	}
	// Step 3/4: SYN in a synchronized state (RFC 5961 §4.2).
	if sg.has(wire.TCPFlagSYN) {
		if c.state == StateSynRecv && sg.seq == c.rcv.irs {
			c.sendSegment(out, c.snd.iss, 0, wire.TCPFlagSYN) // retransmitted SYN
			return
		}
		c.synChallenge(out)
		return
	}
	if !sg.has(wire.TCPFlagACK) {
		return
	}
	// tcp_replace_ts_recent (RFC 7323 §4.3).
	if c.tsOn && sg.opts.HasTS && sg.seq.leq(c.rcv.wup) && int32(sg.opts.TSVal-c.tsRecent) >= 0 {
		c.tsRecent, c.tsRecentStamp = sg.opts.TSVal, c.lastRecv
	}
	// Step 5: ACK.
	if c.state == StateSynRecv {
		if sg.ack.leq(c.snd.una) || sg.ack.gt(c.snd.nxt) {
			c.s.sendReset(sg, out)
			return
		}
		c.snd.una = sg.ack
		c.snd.bufSeq = c.snd.una
		c.snd.wnd = int(sg.wnd) << c.snd.wscale
		c.snd.maxWnd = c.snd.wnd
		c.snd.wl1, c.snd.wl2 = sg.seq, sg.ack
		c.rtt.backoff, c.rtt.retransmits, c.rtt.retransStamp, c.rtoAt = 0, 0, 0, 0
		c.rtt.timing = false
		c.establish()
	}
	if c.rcvAck(sg, out) == ackDiscard {
		return
	}
	if c.snd.finSent && c.snd.una.gt(c.snd.finSeq) {
		c.ourFinAcked()
		if c.state == StateClose || c.state == StateTimeWait {
			return
		}
	}
	// Step 7: data, Step 8: FIN.
	if len(sg.payload) > 0 || sg.has(wire.TCPFlagFIN) {
		switch c.state {
		case StateEstablished, StateFinWait1, StateFinWait2:
			if c.closed && len(sg.payload) > 0 && sg.end().gt(c.rcv.nxt) && c.state != StateEstablished {
				// Data for an orphan that will never read it (tcp_rcv_state_process).
				m.inc(cTCPAbortOnData)
				c.sendRst(out)
				c.reset(syscall.ECONNRESET)
				return
			}
			c.rcvData(sg, out)
		default:
			// CLOSE-WAIT, CLOSING, LAST-ACK: the peer already sent its FIN.
		}
	}
	c.xmit(out)
	c.maybeAck(out)
}

// acceptable is RFC 9293 §3.10.7.4's segment acceptability test, in
// Linux's form (tcp_sequence): the segment must not end before rcv_wup nor
// start after the advertised right edge.
func (c *Conn) acceptable(sg *segment) bool {
	wndEnd := seqMax(c.rcv.edge, c.rcv.nxt)
	if sg.end().lt(c.rcv.wup) {
		return false
	}
	if sg.seq.gt(wndEnd) {
		return false
	}
	return true
}

// synChallenge answers a SYN on a synchronized connection (RFC 5961 §4.2).
func (c *Conn) synChallenge(out *outBatch) {
	c.s.mib.inc(cTCPSYNChallenge)
	c.sendChallengeAck(out)
}

// rcvReset handles an acceptable RST (Linux tcp_reset).
func (c *Conn) rcvReset() {
	switch c.state {
	case StateSynRecv:
		c.reset(syscall.ECONNREFUSED)
	case StateCloseWait:
		c.reset(syscall.EPIPE)
	case StateClosing, StateLastAck, StateTimeWait:
		c.done()
	default:
		c.reset(syscall.ECONNRESET)
	}
}

// ourFinAcked advances the closing states once our FIN is acknowledged.
func (c *Conn) ourFinAcked() {
	switch c.state {
	case StateFinWait1:
		c.setState(StateFinWait2)
		if c.closed {
			// Orphaned FIN-WAIT-2 lasts tcp_fin_timeout (tcp_close → tcp_time_wait).
			c.twAt = c.s.stampAfter(time.Duration(c.s.sys.FinTimeout.Load()) * time.Second)
		}
	case StateClosing:
		c.enterTimeWait()
	case StateLastAck:
		c.done()
	}
}

// rcvFin processes the peer's FIN once all data before it has arrived
// (Linux tcp_fin).
func (c *Conn) rcvFin(out *outBatch) {
	c.rcv.nxt = c.rcv.nxt.add(1)
	c.rcv.finRcvd = true
	c.rcv.ackPending = true // inet_csk_schedule_ack
	switch c.state {
	case StateEstablished:
		// The application will most likely close now: delay the ACK so
		// that it rides on our FIN (inet_csk_enter_pingpong_mode).
		c.setState(StateCloseWait)
		c.rcv.pingpong = true
	case StateFinWait1:
		c.rcv.ackNow = true
		c.setState(StateClosing)
	case StateFinWait2:
		c.rcv.ackNow = true
		c.enterTimeWait()
	}
	c.notifyRead()
}

// rcvTimeWait handles a segment in TIME-WAIT (Linux
// tcp_timewait_state_process). It returns true when a new SYN may reuse
// the 4-tuple and should go to the listener.
func (c *Conn) rcvTimeWait(sg *segment, out *outBatch) bool {
	if sg.has(wire.TCPFlagRST) {
		return false // RFC 1337: ignore RST in TIME-WAIT
	}
	if sg.has(wire.TCPFlagSYN) && !sg.has(wire.TCPFlagACK) {
		newer := sg.seq.gt(c.rcv.nxt)
		if c.tsOn && sg.opts.HasTS {
			newer = int32(sg.opts.TSVal-c.tsRecent) > 0
		}
		if newer {
			c.done()
			return true
		}
	}
	if sg.has(wire.TCPFlagFIN) || sg.seqLen() > 0 || sg.has(wire.TCPFlagSYN) {
		// A retransmitted FIN: ACK it again and restart the 2MSL timer.
		c.sendTimeWaitAck(out)
		if sg.has(wire.TCPFlagFIN) {
			c.twAt = c.s.stampAfter(c.timeWaitLen())
		}
	}
	return false
}

func (c *Conn) sendTimeWaitAck(out *outBatch) {
	f := wire.TCPFields{SrcPort: c.id.local.Port(), DstPort: c.id.remote.Port(),
		Seq: uint32(c.snd.nxt), Ack: uint32(c.rcv.nxt), Flags: wire.TCPFlagACK}
	var o *wire.TCPOptions
	if c.tsOn {
		o = &wire.TCPOptions{WScale: -1, HasTS: true, TSVal: c.s.tsNow() + c.tsOff, TSEcr: c.tsRecent}
	}
	c.s.sendBare(c.id.local.Addr(), c.id.remote.Addr(), &f, o, out)
}

func (c *Conn) timeWaitLen() time.Duration {
	return time.Duration(c.s.sys.TimeWait.Load()) * time.Millisecond
}
