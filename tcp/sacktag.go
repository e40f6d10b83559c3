package tcp

import "github.com/tapstack/tapstack/wire"

// sackTag marks the records the peer's SACK blocks cover (Linux
// tcp_sacktag_write_queue, tcp_sacktag_one): SACKed records leave the
// lost and retransmitted counts, RACK learns their send times, reordering
// is noticed, and a D-SACK (RFC 2883) counts a needless retransmission
// for undo. una is the ACK field, already accepted as snd_una.
func (c *Conn) sackTag(sg *segment, priorUna seqnum, st *ackState) {
	o := &sg.opts
	sb := &c.rec.sb
	if sb.sackedOut == 0 {
		sb.fack = sg.ack
	}
	una := sg.ack
	dup := c.checkDSACK(o, sg.ack, priorUna, st)
	if sg.ack.lt(priorUna.add(-c.snd.maxWnd)) || sb.packetsOut == 0 {
		return
	}
	var blocks [wire.TCPMaxSACKBlocks]seqRange
	var dsackBlock [wire.TCPMaxSACKBlocks]bool
	used := 0
	for i := 0; i < o.NumSACK; i++ {
		r := seqRange{seqnum(o.SACK[i].Left), seqnum(o.SACK[i].Right)}
		isDup := i == 0 && dup
		if !c.sackBlockValid(isDup, r, una) {
			if isDup {
				if c.rec.undoMarkerOK {
					c.s.mib.inc(cTCPDSACKIgnoredOld)
				} else {
					c.s.mib.inc(cTCPDSACKIgnoredNoUndo)
				}
			} else if sg.ack == c.snd.una || r.end.gt(c.snd.una) {
				// (Old blocks of a reordered ACK are not counted.)
				c.s.mib.inc(cTCPSACKDiscard)
			}
			continue
		}
		if r.end.leq(priorUna) {
			continue // very old
		}
		blocks[used], dsackBlock[used] = r, isDup
		used++
	}
	// Walk the blocks in sequence order so fack only grows (Linux sorts
	// them for the same in-order walk of its queue).
	for i := 1; i < used; i++ {
		for j := i; j > 0 && blocks[j].start.lt(blocks[j-1].start); j-- {
			blocks[j], blocks[j-1] = blocks[j-1], blocks[j]
			dsackBlock[j], dsackBlock[j-1] = dsackBlock[j-1], dsackBlock[j]
		}
	}
	for b := 0; b < used; b++ {
		r := blocks[b]
		for i := sb.find(una, r.start); i < sb.n; i++ {
			g := sb.at(i)
			if !g.seq.lt(r.end) {
				break
			}
			// Only whole records are tagged: a record is one wire
			// segment, and Linux does not split below an MSS either
			// (tcp_match_skb_to_sack).
			if g.seq.lt(r.start) || g.end.gt(r.end) {
				continue
			}
			c.sackTagOne(g, dsackBlock[b], una, st)
		}
	}
	if c.rec.ca != caLoss || c.rec.undoMarkerOK {
		c.checkSackReordering(st.reord, false)
	}
}

// sackBlockValid is tcp_is_sackblock_valid: inside (snd_una, snd_nxt],
// or a D-SACK below snd_una within the undo window.
func (c *Conn) sackBlockValid(dsack bool, r seqRange, una seqnum) bool {
	if r.end.gt(c.snd.nxt) || !r.start.lt(r.end) || !r.start.lt(c.snd.nxt) {
		return false
	}
	if r.start.gt(una) {
		return true
	}
	if !dsack || !c.rec.undoMarkerOK {
		return false
	}
	if r.end.gt(una) {
		return false
	}
	if r.start.geq(c.rec.undoMarker) {
		return true
	}
	if r.end.leq(c.rec.undoMarker) {
		return false
	}
	return r.start.geq(r.end.add(-c.snd.maxWnd))
}

// checkDSACK is tcp_check_dsack: the first block is a D-SACK when it lies
// below the ACK field, or inside the second block (RFC 2883 §4).
func (c *Conn) checkDSACK(o *wire.TCPOptions, ack, priorUna seqnum, st *ackState) bool {
	if o.NumSACK == 0 {
		return false
	}
	s0, e0 := seqnum(o.SACK[0].Left), seqnum(o.SACK[0].Right)
	switch {
	case s0.lt(ack):
		c.s.mib.inc(cTCPDSACKRecv)
	case o.NumSACK > 1:
		s1, e1 := seqnum(o.SACK[1].Left), seqnum(o.SACK[1].Right)
		if e0.gt(e1) || s0.lt(s1) {
			return false
		}
		c.s.mib.inc(cTCPDSACKOfoRecv)
	default:
		return false
	}
	dupSegs := c.dsackSeen(s0, e0, st)
	if dupSegs == 0 {
		c.s.mib.inc(cTCPDSACKIgnoredDubious)
		return false
	}
	c.s.mib.add(cTCPDSACKRecvSegs, uint64(dupSegs))
	// A D-SACK for data already acknowledged: count it against the
	// episode's retransmissions directly.
	if c.rec.undoMarkerOK && c.rec.undoRetrans > 0 && e0.leq(priorUna) && e0.gt(c.rec.undoMarker) {
		c.rec.undoRetrans = max(0, c.rec.undoRetrans-dupSegs)
	}
	return true
}

// dsackSeen is tcp_dsack_seen: a D-SACK wider than any window we were
// given, or more duplicates than we ever retransmitted, is dubious and
// ignored; otherwise it may widen RACK's reordering window.
func (c *Conn) dsackSeen(start, end seqnum, st *ackState) int {
	if !start.lt(end) {
		return 0
	}
	n := end.diff(start)
	if n > c.snd.maxWnd {
		return 0
	}
	dup := 1
	if n > c.snd.mss {
		dup = (n + c.snd.mss - 1) / c.snd.mss
	} else if c.rec.tlpOut && c.rec.tlpHigh == end {
		st.flag |= flagDsackTLP
	}
	c.rec.dsackDups += dup
	if c.rec.dsackDups > c.rec.totalRetrans {
		return 0
	}
	if st.flag&flagDsackTLP == 0 {
		c.rec.rack.dsackSeen = true
	}
	st.flag |= flagDsackingAck
	st.sackDelivered += dup // a needless retransmission was delivered
	return dup
}

// sackTagOne is tcp_sacktag_one for one record.
func (c *Conn) sackTagOne(g *txSeg, dup bool, una seqnum, st *ackState) {
	sb := &c.rec.sb
	if dup && g.flags&(sbRetrans|sbEverRetrans) != 0 {
		if c.rec.undoMarkerOK && c.rec.undoRetrans > 0 && g.end.gt(c.rec.undoMarker) {
			c.rec.undoRetrans = max(0, c.rec.undoRetrans-1)
		}
		if g.flags&sbSacked != 0 && g.seq.lt(st.reord) {
			st.reord = g.seq
		}
	}
	if g.end.leq(una) {
		return // about to be cleaned as acknowledged
	}
	if g.flags&sbSacked == 0 {
		c.rackAdvance(g.flags, g.end, g.sent, st.now)
		if g.flags&sbRetrans != 0 {
			// A retransmitted record that is not lost: the
			// retransmission may still be in flight, keep counting it
			// until it is.
			if g.flags&sbLost != 0 {
				g.flags &^= sbLost | sbRetrans
				sb.lostOut--
				sb.retransOut--
			}
		} else {
			if g.flags&sbEverRetrans == 0 {
				// A never-retransmitted segment below the highest SACK
				// was in a hole: reordering.
				if g.seq.lt(sb.fack) && g.seq.lt(st.reord) {
					st.reord = g.seq
				}
				if g.end.leq(c.rec.highSeq) {
					st.flag |= flagOrigSackAcked
				}
				if !st.haveSackt {
					st.firstSackt, st.haveSackt = g.sent, true
				}
				st.lastSackt = g.sent
			}
			if g.flags&sbLost != 0 {
				g.flags &^= sbLost
				sb.lostOut--
			}
		}
		g.flags |= sbSacked
		st.flag |= flagDataSacked
		sb.sackedOut++
		st.sackDelivered++
		st.rateDelivered(g)
		if g.seq.geq(sb.fack) || sb.sackedOut == 1 {
			sb.fack = g.seq // tcp_advance_highest_sack
		}
	}
	// A D-SACK for a retransmission that was SACKed already: it is not
	// in flight any more.
	if dup && g.flags&sbRetrans != 0 {
		g.flags &^= sbRetrans
		sb.retransOut--
	}
}

// checkSackReordering is tcp_check_sack_reordering: data at lowSeq was
// delivered after data above it, so the path reorders by that distance;
// the dupack threshold rises (up to tcp_max_reordering) and RACK widens
// its window once reordering has been seen.
func (c *Conn) checkSackReordering(lowSeq seqnum, ts bool) {
	fack := c.rec.sb.fack
	if c.rec.sb.sackedOut == 0 {
		fack = c.snd.una // tcp_highest_sack_seq
	}
	if !lowSeq.lt(fack) {
		return
	}
	metric := fack.diff(lowSeq)
	if metric > c.rec.reordering*c.snd.mss && c.snd.mss > 0 {
		c.rec.reordering = min((metric+c.snd.mss-1)/c.snd.mss, int(c.s.sys.MaxReordering.Load()))
	}
	c.rec.reordSeen++
	if ts {
		c.s.mib.inc(cTCPTSReorder)
	} else {
		c.s.mib.inc(cTCPSACKReorder)
	}
}

// addRenoSack is tcp_add_reno_sack: without SACK each duplicate ACK stands
// for one segment that left the network.
func (c *Conn) addRenoSack(dupacks int) {
	if dupacks == 0 {
		return
	}
	prior := c.rec.sb.sackedOut
	c.rec.sb.sackedOut += dupacks
	c.limitRenoSacked()
	if c.rec.sb.sackedOut > prior {
		c.rec.sb.delivered += uint32(c.rec.sb.sackedOut - prior)
	}
}

// limitRenoSacked is tcp_limit_reno_sacked (with tcp_check_reno_reordering):
// more duplicate ACKs than segments in flight means reordering.
func (c *Conn) limitRenoSacked() {
	sb := &c.rec.sb
	holes := min(max(sb.lostOut, 1), sb.packetsOut)
	if sb.sackedOut+holes > sb.packetsOut {
		sb.sackedOut = max(sb.packetsOut-holes, 0)
		c.rec.reordering = min(sb.packetsOut, int(c.s.sys.MaxReordering.Load()))
		c.rec.reordSeen++
		c.s.mib.inc(cTCPRenoReorder)
	}
}

// removeRenoSacks is tcp_remove_reno_sacks: a cumulative ACK of acked
// segments consumes the duplicate ACKs that stood for them.
func (c *Conn) removeRenoSacks(acked int) {
	sb := &c.rec.sb
	if acked > 0 {
		sb.delivered += uint32(max(acked-sb.sackedOut, 1))
		if acked-1 >= sb.sackedOut {
			sb.sackedOut = 0
		} else {
			sb.sackedOut -= acked - 1
		}
	}
}
