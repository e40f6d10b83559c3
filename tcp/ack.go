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

// What one ACK did (Linux's FLAG_* bits of tcp_ack).
const (
	flagData             = 1 << iota // the segment carries data
	flagWinUpdate                    // the window may have changed
	flagDataAcked                    // new data acknowledged
	flagRetransDataAcked             // some acknowledged data was retransmitted
	flagDataSacked                   // new SACK information
	flagLostRetrans                  // a retransmission was found lost
	flagOrigSackAcked                // never-retransmitted data below high_seq (s)acked
	flagSndUnaAdvanced
	flagDsackingAck // the ACK carries a D-SACK
	flagSetXmitTimer
	flagSackReneging
	flagDsackTLP // the D-SACK reports the tail loss probe
	flagAckMaybeDelayed

	flagNotDup          = flagData | flagWinUpdate | flagDataAcked
	flagCAAlert         = flagDataSacked | flagDsackingAck
	flagForwardProgress = flagDataAcked | flagDataSacked
)

// ackState is what tcp_ack and tcp_sacktag_write_queue gather about one
// ACK (struct tcp_sacktag_state with the rate sample's fields we use).
type ackState struct {
	flag          int
	now           stamp
	reord         seqnum // lowest sequence found delivered out of order
	firstSackt    stamp  // send times of the first and last newly SACKed never-retransmitted records
	lastSackt     stamp
	haveSackt     bool
	sackDelivered int
	// priorDelivered is the delivered count when the most recently sent
	// record this ACK delivered was sent (rate_sample.prior_delivered);
	// 0: none delivered.
	priorDelivered uint32
	priorSent      stamp
}

// rcvAck processes the ACK field (Linux tcp_ack): window update, SACK
// tagging, cleaning the retransmission queue, RTT, RACK, the recovery
// state machine, congestion control and recovery transmissions.
func (c *Conn) rcvAck(sg *segment, out *outBatch) ackResult {
	ack := sg.ack
	priorUna := c.snd.una
	if ack.gt(c.snd.nxt) {
		// ACK for data we never sent: drop (Linux tcp_ack, RFC 9293 §3.10.7.4).
		c.sendChallengeAck(out)
		return ackDiscard
	}
	st := ackState{now: c.lastRecv, reord: c.snd.nxt} // read when the segment arrived (input)
	if len(sg.payload) > 0 {
		st.flag |= flagData
	}
	if ack.lt(priorUna) {
		if ack.lt(priorUna.add(-c.snd.maxWnd)) {
			c.sendChallengeAck(out) // RFC 5961 §5.2 blind data injection
			return ackDiscard
		}
		// old_ack: SACK and D-SACK information is still used.
		if c.sackOn && sg.opts.NumSACK > 0 {
			c.sackTag(sg, priorUna, &st)
			rexmit := c.fastRetransAlert(sg, priorUna, 0, &st)
			c.rec.sb.delivered += uint32(st.sackDelivered)
			c.xmitRecovery(out, rexmit)
		}
		return ackOld
	}
	if ack.gt(priorUna) {
		st.flag |= flagSndUnaAdvanced
		c.rtt.retransmits = 0
	}
	priorFack := c.snd.una
	if c.sackOn && c.rec.sb.sackedOut > 0 {
		priorFack = c.rec.sb.fack
	}
	priorPackets := c.rec.sb.packetsOut
	priorDelivered := c.rec.sb.delivered
	priorLost := c.rec.lostTotal
	if len(sg.payload) == 0 && !sg.has(wire.TCPFlagSYN|wire.TCPFlagFIN) {
		c.s.mib.inc(cTCPPureAcks)
	}
	st.flag |= c.ackUpdateWindow(sg)
	if c.sackOn && sg.opts.NumSACK > 0 {
		c.sackTag(sg, priorUna, &st)
	}
	c.rec.sb.delivered += uint32(st.sackDelivered)
	c.probesOut = 0 // the peer is alive (tcp_ack)
	c.errSoft = 0   // and the path works: forget a soft ICMP error
	if priorPackets == 0 {
		// no_queue: nothing was in flight (say, a zero-window probe's
		// answer); a D-SACK may still undo a reduction.
		if st.flag&flagDsackingAck != 0 {
			c.xmitRecovery(out, c.fastRetransAlert(sg, priorUna, 0, &st))
		}
		if c.rec.tlpOut {
			c.processTLPAck(ack, st.flag)
		}
		return c.ackDone(priorUna)
	}
	c.cleanRtxQueue(sg, ack, priorUna, priorFack, &st)
	c.rackUpdateReoWnd(&st)
	if c.rec.tlpOut {
		c.processTLPAck(ack, st.flag)
	}
	rexmit := rexmitNone
	if st.flag&flagNotDup == 0 || st.flag&flagCAAlert != 0 || c.rec.ca != caOpen { // tcp_ack_is_dubious
		numDupack := 0
		if st.flag&(flagSndUnaAdvanced|flagNotDup|flagDsackingAck) == 0 {
			numDupack = 1
		}
		rexmit = c.fastRetransAlert(sg, priorUna, numDupack, &st)
	}
	if st.flag&flagSetXmitTimer != 0 {
		c.setXmitTimer()
	}
	delivered := int(c.rec.sb.delivered - priorDelivered) // tcp_newly_delivered
	c.congControl(delivered, c.rec.lostTotal-priorLost, st.flag)
	c.xmitRecovery(out, rexmit)
	return c.ackDone(priorUna)
}

func (c *Conn) ackDone(priorUna seqnum) ackResult {
	if c.snd.una.gt(priorUna) {
		c.updateSndBuf()
		c.notifyWrite()
		return ackNew
	}
	return ackOld
}

// ackUpdateWindow is tcp_ack_update_window: take the peer's window when
// the segment is newer than the last one that set it (tcp_may_update_window).
func (c *Conn) ackUpdateWindow(sg *segment) int {
	flag := 0
	wnd := int(sg.wnd) << c.snd.wscale
	ack := sg.ack
	if ack.gt(c.snd.una) || sg.seq.gt(c.snd.wl1) || (sg.seq == c.snd.wl1 && (wnd > c.snd.wnd || wnd == 0)) {
		flag |= flagWinUpdate
		c.snd.wl1, c.snd.wl2 = sg.seq, ack
		if c.snd.wnd != wnd {
			c.snd.wnd = wnd
			c.snd.maxWnd = max(c.snd.maxWnd, wnd)
		}
		if wnd > 0 && !c.persistAt.IsZero() {
			c.persistAt = 0
			c.rtt.backoff = 0 // tcp_ack_probe
		}
	}
	return flag
}

// cleanRtxQueue removes what the ACK covers from the scoreboard and the
// send buffer, counts what was delivered and samples the RTT (Linux
// tcp_clean_rtx_queue and tcp_ack_update_rtt).
func (c *Conn) cleanRtxQueue(sg *segment, ack, priorUna, priorFack seqnum, st *ackState) {
	sb := &c.rec.sb
	priorSacked := sb.sackedOut
	var firstAckt, lastAckt stamp
	haveAckt := false
	reord := c.snd.nxt
	pktsAcked := 0
	for sb.n > 0 {
		g := sb.at(0)
		if g.end.gt(ack) {
			if g.seq.lt(ack) {
				g.seq = ack // a partly acknowledged segment (tcp_tso_acked)
			}
			break
		}
		flags := g.flags
		if flags&(sbRetrans|sbEverRetrans) != 0 {
			if flags&sbRetrans != 0 {
				sb.retransOut--
			}
			st.flag |= flagRetransDataAcked
		} else if flags&sbSacked == 0 {
			lastAckt = g.sent
			if !haveAckt {
				firstAckt, haveAckt = g.sent, true
			}
			if g.seq.lt(reord) {
				reord = g.seq
			}
			if g.end.leq(c.rec.highSeq) {
				st.flag |= flagOrigSackAcked
			}
		}
		if flags&sbSacked != 0 {
			sb.sackedOut--
		} else if c.sackOn {
			sb.delivered++ // tcp_count_delivered
			if !c.spuriousRetrans(g, sg) {
				c.rackAdvance(flags, g.end, g.sent, st.now)
			}
		}
		if flags&sbLost != 0 {
			sb.lostOut--
		}
		st.rateDelivered(g)
		pktsAcked++
		st.flag |= flagDataAcked
		sb.popHead()
	}
	c.snd.una = ack
	c.ackCleanSndBuf()
	if sb.n > 0 && sb.at(0).flags&sbSacked != 0 {
		st.flag |= flagSackReneging
	}
	if sb.sackedOut == 0 {
		sb.fack = c.snd.una
	}
	seqRTT, caRTT, sackRTT := time.Duration(-1), time.Duration(-1), time.Duration(-1)
	if haveAckt && st.flag&flagRetransDataAcked == 0 {
		seqRTT = time.Duration(st.now - firstAckt)
		caRTT = time.Duration(st.now - lastAckt)
		if pktsAcked == 1 && priorSacked == 0 && ack.diff(priorUna) < c.snd.mss &&
			st.priorDelivered+1 == sb.delivered && st.flag&flagCAAlert == 0 {
			// The ACK of a lone runt segment is likely a delayed one
			// (FLAG_ACK_MAYBE_DELAYED): it must not lower min_rtt's
			// trust in larger samples.
			st.flag |= flagAckMaybeDelayed
		}
	}
	if st.haveSackt {
		sackRTT = time.Duration(st.now - st.firstSackt)
		caRTT = time.Duration(st.now - st.lastSackt)
	}
	rttUpdate := c.ackUpdateRTT(sg, st.flag, seqRTT, sackRTT, caRTT, st.now)
	if st.flag&flagDataAcked != 0 {
		st.flag |= flagSetXmitTimer
		if !c.sackOn {
			c.removeRenoSacks(pktsAcked)
			if st.flag&flagRetransDataAcked != 0 {
				st.flag &^= flagOrigSackAcked
			}
		} else if reord.lt(priorFack) {
			c.checkSackReordering(reord, false)
		}
	} else if sb.n > 0 && rttUpdate && sackRTT >= 0 && sackRTT > time.Duration(st.now-sb.at(0).sent) {
		// The SACK RTT is from data sent after the head's last
		// transmission: restart the timer, or it may never fire.
		st.flag |= flagSetXmitTimer
	}
	if pktsAcked > 0 {
		rtt := caRTT
		if rtt < 0 {
			rtt = 0
		}
		c.rec.cc.PktsAcked(c.ccSender(), uint32(pktsAcked), rtt)
	}
}

// rateDelivered keeps rate_sample.prior_delivered: the delivered count
// when the most recently sent of the records this ACK delivered was sent
// (tcp_rate_skb_delivered).
func (st *ackState) rateDelivered(g *txSeg) {
	if st.priorDelivered == 0 || g.sent > st.priorSent || (g.sent == st.priorSent && g.delivered > st.priorDelivered) {
		st.priorDelivered, st.priorSent = max(g.delivered, 1), g.sent
	}
}

// ackCleanSndBuf frees acknowledged bytes of the send ring.
func (c *Conn) ackCleanSndBuf() {
	if c.snd.bufSeq.lt(c.snd.una) {
		k := min(c.snd.una.diff(c.snd.bufSeq), c.snd.buf.n)
		c.snd.buf.consume(k)
		c.snd.bufSeq = c.snd.bufSeq.add(k)
		if c.snd.buf.n == 0 {
			c.snd.buf.releaseSmall() // all acknowledged: back to the pool
		}
	}
}

// spuriousRetrans is tcp_skb_spurious_retrans: the ACK echoes a timestamp
// older than the record's retransmission, so the original was delivered.
func (c *Conn) spuriousRetrans(g *txSeg, sg *segment) bool {
	return g.flags&(sbRetrans|sbEverRetrans) != 0 && c.tsEcrBefore(sg, c.tsvalAt(g.sent))
}

// tsvalAt is the TSval we put on segments sent at t.
func (c *Conn) tsvalAt(t stamp) uint32 {
	return uint32(int64(t)/int64(time.Millisecond)) + c.tsOff
}

// tsEcrBefore is tcp_tsopt_ecr_before: the segment echoes a TSval older
// than when.
func (c *Conn) tsEcrBefore(sg *segment, when uint32) bool {
	return c.tsOn && sg.opts.HasTS && sg.opts.TSEcr != 0 && int32(sg.opts.TSEcr-when) < 0
}

// ackUpdateRTT is tcp_ack_update_rtt: the RTT from the send time of the
// newest acknowledged never-retransmitted data, else from SACKed data,
// else from the echoed timestamp when the ACK covers new data (RFC 7323
// §4.1 RTTM); Karn's rule forbids a sample from retransmitted data alone.
func (c *Conn) ackUpdateRTT(sg *segment, flag int, seqRTT, sackRTT, caRTT time.Duration, now stamp) bool {
	if seqRTT < 0 {
		seqRTT = sackRTT
	}
	if seqRTT < 0 && c.tsOn && sg.opts.HasTS && sg.opts.TSEcr != 0 && flag&flagDataAcked != 0 {
		d := int32(c.s.tsNow() + c.tsOff - sg.opts.TSEcr)
		if d >= 0 {
			seqRTT = time.Duration(max(d, 1)) * time.Millisecond // tcp_rtt_tsopt_us
			caRTT = seqRTT
		}
	}
	if seqRTT < 0 {
		return false
	}
	c.updateMinRTT(caRTT, flag, now)
	c.rttEstimate(seqRTT)
	c.rtt.backoff = 0 // RFC 6298: reset the backoff only on a valid sample
	return true
}
