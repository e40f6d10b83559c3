package tcp

import "time"

// RACK-TLP (RFC 8985), as Linux's tcp_recovery.c does it: a segment is
// lost when a segment sent after it has been delivered and more than
// RACK.rtt plus a reordering window has passed since it was sent. Time,
// not counting, decides: a lost retransmission or a lost tail is detected
// like any other loss.

// net.ipv4.tcp_recovery bits.
const (
	rackLossDetection = 0x1 // TCP_RACK_LOSS_DETECTION: RACK decides losses
	rackStaticReoWnd  = 0x2 // TCP_RACK_STATIC_REO_WND: no D-SACK widening
	rackNoDupthresh   = 0x4 // TCP_RACK_NO_DUPTHRESH: no zero window at dupthresh
)

// rackRecoveryThresh is TCP_RACK_RECOVERY_THRESH: recoveries a widened
// reordering window survives without a new D-SACK.
const rackRecoveryThresh = 16

// rackState is struct tcp_rack.
type rackState struct {
	mstamp        stamp         // send time of the most recently sent delivered segment
	rtt           time.Duration // RTT of that segment (rack.rtt_us)
	endSeq        seqnum        // its end, to order segments sent at the same time
	lastDelivered uint32        // delivered count at the last window adjustment
	reoWndSteps   uint8         // the window in units of min_rtt/4
	reoWndPersist uint8         // recoveries left before the window falls back
	dsackSeen     bool          // a D-SACK since the last adjustment
	advanced      bool          // mstamp moved: look for losses again
}

func (c *Conn) rackOn() bool { return c.s.sys.Recovery.Load()&rackLossDetection != 0 }

// sentAfter is tcp_skb_sent_after: t1 later than t2, or the same time
// and a higher sequence.
func sentAfter(t1, t2 stamp, seq1, seq2 seqnum) bool {
	return t1 > t2 || (t1 == t2 && seq1.gt(seq2))
}

// rackAdvance is tcp_rack_advance (RFC 8985 §6.2 step 2): a delivered
// segment moves RACK's reference to the latest send time. A
// retransmission acknowledged sooner than min_rtt after it was sent was
// most likely delivered as the original: it says nothing.
func (c *Conn) rackAdvance(flags uint8, end seqnum, sent, now stamp) {
	rtt := time.Duration(now - sent)
	if rtt < c.minRTTOrInf() && flags&(sbRetrans|sbEverRetrans) != 0 {
		return
	}
	c.rec.rack.advanced = true
	c.rec.rack.rtt = rtt
	if sentAfter(sent, c.rec.rack.mstamp, end, c.rec.rack.endSeq) {
		c.rec.rack.mstamp, c.rec.rack.endSeq = sent, end
	}
}

// rackReoWnd is tcp_rack_reo_wnd (RFC 8985 §6.2 step 4): no window at all
// while no reordering has been seen and either recovery runs or dupthresh
// segments are SACKed (what the classic rule would call lost anyway);
// otherwise min_rtt/4 per step, at most srtt.
func (c *Conn) rackReoWnd() time.Duration {
	if c.rec.reordSeen == 0 {
		if c.rec.ca >= caRecovery {
			return 0
		}
		if c.rec.sb.sackedOut >= c.rec.reordering && c.s.sys.Recovery.Load()&rackNoDupthresh == 0 {
			return 0
		}
	}
	return min(c.minRTTOrInf()/4*time.Duration(c.rec.rack.reoWndSteps), c.rtt.srtt)
}

// rackDetectLoss is tcp_rack_detect_loss: mark lost every segment sent
// before RACK's reference whose time is up, and return how long until the
// next one's is (0: none waiting). Records are in sequence order; among
// never-retransmitted ones that is also send order, and a retransmission
// is always later than the original it repeats, so the walk ends at the
// first never-retransmitted record sent after the reference.
func (c *Conn) rackDetectLoss(now stamp) time.Duration {
	sb := &c.rec.sb
	reoWnd := c.rackReoWnd()
	var wait time.Duration
	for i := 0; i < sb.n; i++ {
		g := sb.at(i)
		if g.flags&sbSacked != 0 || g.flags&(sbLost|sbRetrans) == sbLost {
			continue // delivered, or lost and not yet retransmitted
		}
		if !sentAfter(c.rec.rack.mstamp, g.sent, c.rec.rack.endSeq, g.end) {
			if g.flags&sbEverRetrans == 0 {
				break
			}
			continue
		}
		remaining := c.rec.rack.rtt + reoWnd - time.Duration(now-g.sent) // tcp_rack_skb_timeout
		if remaining <= 0 {
			c.markLost(i)
		} else {
			wait = max(wait, remaining)
		}
	}
	return wait
}

// rackMarkLost is tcp_rack_mark_lost: run detection when the reference
// moved, and arm the reordering timer for segments still within the
// window. It reports whether the timer was armed.
func (c *Conn) rackMarkLost(now stamp) bool {
	if !c.rec.rack.advanced {
		return false
	}
	c.rec.rack.advanced = false
	wait := c.rackDetectLoss(now)
	if wait > 0 {
		// ICSK_TIME_REO_TIMEOUT shares the retransmission timer:
		// TCP_TIMEOUT_MIN of slack, never beyond the RTO.
		c.reoAt = c.s.stampAfter(min(wait+tcpTimeoutMin, c.rtoBackoff()))
		c.rtoAt = 0
		c.tlpAt = 0
		return true
	}
	return false
}

// tcpTimeoutMin is TCP_TIMEOUT_MIN (2 jiffies at HZ=1000).
const tcpTimeoutMin = 2 * time.Millisecond

// rackReoTimeout is tcp_rack_reo_timeout: the reordering window of some
// segments has passed; those still undelivered are lost, recovery starts
// if it has not, and they are retransmitted.
func (c *Conn) rackReoTimeout(out *outBatch) {
	if c.rec.sb.packetsOut == 0 {
		c.rearmRTO()
		return
	}
	priorInflight := c.inFlight()
	now := c.s.stampNow()
	c.rackDetectLoss(now) // what is still within its window waits for the next ACK
	if priorInflight != c.inFlight() {
		if c.rec.ca != caRecovery {
			c.enterRecovery()
			c.cwndReduction(1, 0, 0)
		}
		c.xmitRetransmitQueue(out)
	}
	if c.rtoAt.IsZero() {
		c.rearmRTO() // from the head's last transmission, the REO timer being pending
	}
}

// rackUpdateReoWnd is tcp_rack_update_reo_wnd: a D-SACK (a needless
// retransmission, so the window was too small) widens the window by one
// step, at most once per round trip, and the width then persists for
// rackRecoveryThresh recoveries.
func (c *Conn) rackUpdateReoWnd(st *ackState) {
	if c.s.sys.Recovery.Load()&rackStaticReoWnd != 0 || st.priorDelivered == 0 {
		return
	}
	if int32(st.priorDelivered-c.rec.rack.lastDelivered) < 0 {
		c.rec.rack.dsackSeen = false // not a round trip since the last step
	}
	if c.rec.rack.dsackSeen {
		c.rec.rack.reoWndSteps = uint8(min(int(c.rec.rack.reoWndSteps)+1, 0xff))
		c.rec.rack.dsackSeen = false
		c.rec.rack.lastDelivered = c.rec.sb.delivered
		c.rec.rack.reoWndPersist = rackRecoveryThresh
	} else if c.rec.rack.reoWndPersist == 0 {
		c.rec.rack.reoWndSteps = 1
	}
}
