package tcp

import "github.com/tapstack/tapstack/wire"

// maxSackRanges bounds the scoreboard; SACK blocks beyond it are ignored
// (they only delay loss detection, never corrupt it).
const maxSackRanges = 64

// sackUpdate merges the peer's SACK blocks into the scoreboard (RFC 6675
// §4 Update(); Linux tcp_sacktag_write_queue). Blocks outside
// (snd_una, snd_nxt] are D-SACKs or bogus and are skipped; a first block
// below the ACK field is a D-SACK (RFC 2883 §4; Linux tcp_check_dsack).
func (c *Conn) sackUpdate(o *wire.TCPOptions, ack seqnum) {
	for i := 0; i < o.NumSACK; i++ {
		r := seqRange{seqnum(o.SACK[i].Left), seqnum(o.SACK[i].Right)}
		if !r.start.lt(r.end) {
			continue
		}
		if r.end.leq(c.sndUna) || (i == 0 && r.end.leq(ack)) {
			c.s.mib.inc(cTCPDSACKRecv)
			c.dsackForUndo(r.start, r.end)
			continue
		}
		if r.end.gt(c.sndNxt) {
			continue
		}
		r.start = seqMax(r.start, c.sndUna)
		c.sacked = insertRange(c.sacked, r, maxSackRanges)
	}
	c.recountSacked()
}

// freeScoreboard forgets the send-side scoreboard.
func (c *Conn) freeScoreboard() { c.sacked = nil }

// sackAdvance drops scoreboard state below snd_una.
func (c *Conn) sackAdvance() {
	k := 0
	for _, r := range c.sacked {
		if r.end.leq(c.sndUna) {
			continue
		}
		if r.start.lt(c.sndUna) {
			r.start = c.sndUna
		}
		c.sacked[k] = r
		k++
	}
	c.sacked = c.sacked[:k]
	c.recountSacked()
}

func (c *Conn) recountSacked() {
	n := 0
	for _, r := range c.sacked {
		n += r.len()
	}
	c.sackedBytes = n
}

// insertRange merges r into the sorted, disjoint list rs. When the list is
// at its limit and r would add an entry, r is dropped; the second result
// says whether r was kept.
func insertRange(rs []seqRange, r seqRange, limit int) []seqRange {
	rs, _ = insertRangeOK(rs, r, limit)
	return rs
}

func insertRangeOK(rs []seqRange, r seqRange, limit int) ([]seqRange, bool) {
	i := 0
	for i < len(rs) && rs[i].end.lt(r.start) {
		i++
	}
	j := i
	for j < len(rs) && rs[j].start.leq(r.end) {
		r.start = seqMin(r.start, rs[j].start)
		r.end = seqMax(r.end, rs[j].end)
		j++
	}
	if i == j {
		if len(rs) >= limit {
			return rs, false
		}
		rs = append(rs, seqRange{})
		copy(rs[i+1:], rs[i:])
		rs[i] = r
		return rs, true
	}
	rs[i] = r
	rs = append(rs[:i+1], rs[j:]...)
	return rs, true
}

// unsackedIn counts the bytes of [lo, hi) not covered by the scoreboard.
func (c *Conn) unsackedIn(lo, hi seqnum) int {
	if !lo.lt(hi) {
		return 0
	}
	n := hi.diff(lo)
	for _, r := range c.sacked {
		s, e := seqMax(r.start, lo), seqMin(r.end, hi)
		if s.lt(e) {
			n -= e.diff(s)
		}
	}
	return n
}

// inFlight is RFC 6675's pipe in bytes (Linux tcp_packets_in_flight:
// packets_out - (sacked_out + lost_out) + retrans_out).
func (c *Conn) inFlight() int {
	pipe := c.sndNxt.diff(c.sndUna) - c.sackedBytes - c.renoDup*c.mss
	if c.ca >= caRecovery {
		pipe -= c.unsackedIn(seqMax(c.highRxt, c.sndUna), seqMin(c.lostEnd, c.sndNxt))
	}
	return max(pipe, 0)
}

// nextLost returns the next range to retransmit: the first unSACKed bytes
// at or above HighRxt and below the loss mark (RFC 6675 NextSeg() rule 1).
func (c *Conn) nextLost() (seqnum, int, bool) {
	s := seqMax(c.highRxt, c.sndUna)
	lostEnd := seqMin(c.lostEnd, c.sndNxt)
	for s.lt(lostEnd) {
		covered := false
		for _, r := range c.sacked {
			if s.inRange(r.start, r.end) {
				s = r.end
				covered = true
				break
			}
		}
		if covered {
			continue
		}
		end := seqMin(lostEnd, s.add(c.sendMSS()))
		for _, r := range c.sacked {
			if r.start.gt(s) && r.start.lt(end) {
				end = r.start
			}
		}
		return s, end.diff(s), true
	}
	return 0, 0, false
}

// markLost sets the loss mark from the scoreboard: unSACKed data with more
// than (DupThresh-1)·SMSS bytes SACKed above it is lost (RFC 6675 IsLost).
func (c *Conn) markLost() {
	acc := 0
	limit := (c.dupThresh() - 1) * c.mss
	for i := len(c.sacked) - 1; i >= 0; i-- {
		acc += c.sacked[i].len()
		if acc > limit {
			c.lostEnd = seqMax(c.lostEnd, c.sacked[i].start)
			return
		}
	}
}

// headLost reports RFC 6675 IsLost(snd_una).
func (c *Conn) headLost() bool {
	return c.sackOn && c.sackedBytes > (c.dupThresh()-1)*c.mss
}

// markRescue applies RFC 6675 NextSeg() rule 3: with nothing lost left to
// resend and no new data to send, the first unSACKed segment below the
// highest SACKed byte is retransmitted (marked lost here so that pipe
// counts it once). It reports whether one was found.
func (c *Conn) markRescue() bool {
	if len(c.sacked) == 0 {
		return false
	}
	top := c.sacked[len(c.sacked)-1].start
	old := c.lostEnd
	c.lostEnd = top
	seq, n, ok := c.nextLost()
	c.lostEnd = old
	if !ok {
		return false
	}
	c.lostEnd = seqMax(old, seq.add(n))
	return true
}

// headSegLen is the length of the head segment up to the first SACKed
// byte, at most mss.
func (c *Conn) headSegLen(mss int) int {
	end := seqMin(c.sndNxt, c.sndUna.add(mss))
	for _, r := range c.sacked {
		if r.start.gt(c.sndUna) && r.start.lt(end) {
			end = r.start
		}
	}
	return end.diff(c.sndUna)
}

// markLostRetrans mirrors tcp_mark_lost_retrans for the head: once more
// than reordering-1 segments sent after the head's retransmission are
// SACKed, that retransmission was lost too and is sent again instead of
// waiting for the RTO.
func (c *Conn) markLostRetrans() {
	if !c.sackOn || len(c.sacked) == 0 || c.sndUna == c.sndNxt {
		return
	}
	if !c.rtxHeadOK || c.rtxHeadSeq != c.sndUna {
		if !c.highRxt.gt(c.sndUna) {
			return // the head was not retransmitted in this episode
		}
		// A new head that was already resent: judge it against the latest
		// retransmission (conservative: later than its own).
		c.rtxHeadSeq, c.rtxHeadNxt, c.rtxHeadOK = c.sndUna, c.lastRtxNxt, true
	}
	above := 0
	for i := len(c.sacked) - 1; i >= 0; i-- {
		r := c.sacked[i]
		if r.end.leq(c.rtxHeadNxt) {
			break
		}
		above += r.end.diff(seqMax(r.start, c.rtxHeadNxt))
	}
	if above > (c.dupThresh()-1)*c.mss {
		c.rtxHeadLost = true
		c.rtxHeadNxt = c.sndNxt // judge the next retransmission afresh
	}
}
