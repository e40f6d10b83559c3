package tcp

import (
	"time"

	"github.com/tapstack/tapstack/wire"
)

// armTimer re-arms the connection's single timer to its earliest deadline
// (Linux keeps several timer_lists per socket; one suffices here because
// each handler re-checks its own deadline). Caller holds c.mu.
func (c *Conn) armTimer() {
	var next stamp
	for _, t := range [...]stamp{c.rtoAt, c.tlpAt, c.reoAt, c.delackAt, c.keepAt, c.persistAt, c.twAt} {
		if !t.IsZero() && (next.IsZero() || t < next) {
			next = t
		}
	}
	if next.IsZero() {
		if c.timer != nil && !c.timerAt.IsZero() {
			c.timer.Stop()
		}
		c.timerAt = 0
		return
	}
	if next == c.timerAt {
		return
	}
	c.timerAt = next
	d := time.Duration(next - c.s.stampNow())
	if c.timer == nil {
		c.timer = c.s.clock.AfterFunc(d, c.onTimer)
	} else {
		c.timer.Reset(d)
	}
}

// onTimer runs every handler whose deadline has passed. When a user call
// owns the connection the handlers wait for it (tcp_release_cb): the owner
// runs them as it lets the socket go.
func (c *Conn) onTimer() {
	if !c.tryLockSoftirq() {
		c.sl.deferred |= deferTimer
		c.sl.mu.Unlock()
		return
	}
	var out outBatch
	c.runTimers(&out)
	c.unlockSend(&out)
}

// runTimers is the body of the timer handlers; caller holds c.mu.
func (c *Conn) runTimers(out *outBatch) {
	now := c.s.stampNow()
	c.timerAt = 0
	due := func(t stamp) bool { return !t.IsZero() && t <= now }
	if due(c.twAt) {
		c.twAt = 0
		c.twExpired()
	}
	// The retransmission timer (tcp_write_timer_handler): the RTO, the
	// loss probe or RACK's reordering timeout, whichever is armed.
	switch {
	case due(c.rtoAt):
		c.rtoAt = 0
		c.retransmitTimer(out)
	case due(c.tlpAt):
		c.sendLossProbe(out)
	case due(c.reoAt):
		c.rackReoTimeout(out)
	}
	if due(c.persistAt) {
		c.persistAt = 0
		c.probeTimer(out)
	}
	if due(c.delackAt) {
		c.delackAt = 0
		if c.rcv.ackPending && c.state != StateClose {
			if !c.sackCompressing() {
				c.s.mib.inc(cDelayedACKs)
			}
			c.sendAck(out)
		}
	}
	if due(c.keepAt) {
		c.keepAt = 0
		c.keepaliveTimer(out)
	}
	if c.state != StateClose {
		c.armTimer()
	}
}

// retransmitTimer is the RTO handler (Linux tcp_retransmit_timer and
// tcp_write_timeout).
func (c *Conn) retransmitTimer(out *outBatch) {
	m := &c.s.mib
	now := c.s.stampNow()
	switch c.state {
	case StateSynSent, StateSynRecv:
		if c.synRetries >= int32(c.s.sys.SynRetries.Load()) {
			c.timedOut()
			return
		}
		c.synRetries++
		c.rtt.retransmits++
		c.rtt.backoff++
		if c.rtt.retransStamp.IsZero() {
			c.rtt.retransStamp = now
		}
		m.inc(cTCPTimeouts)
		m.inc(cRetransSegs)
		c.sendSegment(out, c.snd.iss, 0, wire.TCPFlagSYN)
		c.rtoAt = now + stamp(c.rtoBackoff())
		return
	case StateClose, StateTimeWait, StateListen:
		return
	}
	if c.rec.sb.packetsOut == 0 {
		return
	}
	retryUntil := int(c.s.sys.Retries2.Load())
	if c.closed {
		// tcp_orphan_retries: an orphan gives up sooner.
		retryUntil = int(c.s.sys.OrphanRetries.Load())
		if retryUntil == 0 && c.rtt.rto < maxRTO {
			retryUntil = 8
		}
	}
	m.inc(cTCPTimeouts)
	if c.retransmitsTimedOut(retryUntil, tcpRTOMin) {
		m.inc(cTCPAbortOnTimeout)
		c.timedOut()
		return
	}
	c.enterLoss()
	c.rtt.retransmits++
	// The head goes now, whatever the window (tcp_retransmit_skb of the
	// head); the ACKs that follow clock out the rest.
	c.retransmitRecord(out, 0)
	c.rtt.backoff++
	c.resetXmitTimer(timerRTO, c.rtoBackoff())
}

// probeTimer sends a zero-window probe (Linux tcp_probe_timer and
// tcp_write_wakeup: new data if the window opened, else a segment with an
// old sequence number that forces an ACK).
func (c *Conn) probeTimer(out *outBatch) {
	if !c.canSendData() || c.snd.una != c.snd.nxt {
		return
	}
	if c.snd.wnd > 0 {
		// tcp_write_wakeup: send what the window allows, even a small segment.
		avail := c.dataEnd().diff(c.snd.nxt)
		n := min(avail, c.sendMSS(), c.snd.wnd)
		fin := c.snd.finQueued && !c.snd.finSent && n == avail
		if n > 0 || fin {
			c.sendNew(out, n, fin, 0, c.sendMSS(), c.s.stampNow())
		}
		c.xmit(out)
		return
	}
	if c.probesOut >= int(c.s.sys.Retries2.Load()) {
		c.s.mib.inc(cTCPAbortOnTimeout)
		c.timedOut()
		return
	}
	c.probesOut++
	c.rtt.backoff = min(c.rtt.backoff+1, 16)
	c.s.mib.inc(cTCPWinProbe)
	c.sendSegment(out, c.snd.una.add(-1), 0, 0)
	c.persistAt = c.s.stampAfter(c.rtoBackoff())
}

// keepaliveTimer mirrors tcp_keepalive_timer: after tcp_keepalive_time of
// silence send probes every tcp_keepalive_intvl; give up after
// tcp_keepalive_probes unanswered ones.
func (c *Conn) keepaliveTimer(out *outBatch) {
	if !c.keepalive || (c.state != StateEstablished && c.state != StateCloseWait) {
		return
	}
	now := c.s.stampNow()
	idle := time.Duration(now - c.lastRecv)
	if idle < c.kaIdle && c.probesOut == 0 {
		c.keepAt = c.lastRecv + stamp(c.kaIdle)
		return
	}
	if c.snd.una != c.snd.nxt || c.snd.buf.n > 0 && c.dataEnd().gt(c.snd.nxt) {
		c.keepAt = now + stamp(c.kaIdle) // the RTO or persist timer is in charge
		return
	}
	if c.probesOut >= int(c.kaProbes) {
		c.s.mib.inc(cTCPAbortOnTimeout)
		c.timedOut()
		return
	}
	c.probesOut++
	c.s.mib.inc(cTCPKeepAlive)
	c.sendSegment(out, c.snd.una.add(-1), 0, 0)
	c.keepAt = now + stamp(c.kaIntvl)
}

// twExpired ends TIME-WAIT or an orphaned FIN-WAIT-2.
func (c *Conn) twExpired() {
	if c.state == StateTimeWait {
		c.s.mib.inc(cTW)
	}
	if c.state == StateTimeWait || c.state == StateFinWait2 {
		c.done()
	}
}
