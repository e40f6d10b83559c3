package tcp

// The SACK blocks a receiver reports, kept as Linux keeps
// tp->selective_acks: in the order they last changed, the newest first
// (RFC 2018 §4: "the first SACK block MUST specify the contiguous block
// of data containing the segment which triggered this ACK"; the others
// repeat the most recently reported blocks), at most four of them, and a
// D-SACK block in front when the segment was a duplicate (RFC 2883 §4).

// sackNewOfo records an out-of-order arrival of r (tcp_sack_new_ofo_skb):
// the block r extends moves to the front and swallows the blocks it now
// touches; otherwise r becomes a new first block, the oldest falling off
// when all four are in use — after an ACK reporting it, if ACKs are being
// compressed, so that no range goes unreported.
func (c *Conn) sackNewOfo(r seqRange, out *outBatch) {
	if !c.sackOn {
		return
	}
	q := c.rcv.ofo.q
	for i := 0; i < q.nSacks; i++ {
		if sackExtend(&q.sacks[i], r) {
			for ; i > 0; i-- {
				q.sacks[i], q.sacks[i-1] = q.sacks[i-1], q.sacks[i]
			}
			q.sackMaybeCoalesce()
			return
		}
	}
	if q.nSacks == len(q.sacks) {
		if q.compressed > 0 {
			c.sendAck(out)
			c.flushCompressed(q)
		}
		q.nSacks--
	}
	copy(q.sacks[1:q.nSacks+1], q.sacks[:q.nSacks])
	q.sacks[0] = r
	q.nSacks++
}

// sackMaybeCoalesce merges into the first block every other block it now
// overlaps or touches (tcp_sack_maybe_coalesce).
func (q *ofoQueue) sackMaybeCoalesce() {
	for i := 1; i < q.nSacks; {
		if sackExtend(&q.sacks[0], q.sacks[i]) {
			copy(q.sacks[i:q.nSacks], q.sacks[i+1:q.nSacks])
			q.nSacks--
			continue
		}
		i++
	}
}

// sackRemove drops the blocks the cumulative ACK has reached
// (tcp_sack_remove): rcv_nxt at or past a block's start means the block
// was delivered in order.
func (c *Conn) sackRemove() {
	q := c.rcv.ofo.q
	if q == nil {
		return
	}
	k := 0
	for i := 0; i < q.nSacks; i++ {
		if c.rcv.nxt.lt(q.sacks[i].start) {
			q.sacks[k] = q.sacks[i]
			k++
		}
	}
	q.nSacks = k
}

// sackExtend widens *b over r if they overlap or touch (tcp_sack_extend).
func sackExtend(b *seqRange, r seqRange) bool {
	if r.start.gt(b.end) || b.start.gt(r.end) {
		return false
	}
	b.start = seqMin(b.start, r.start)
	b.end = seqMax(b.end, r.end)
	return true
}

// dsackSet makes r, a duplicate just received, the D-SACK of the next ACK
// (tcp_dsack_set; RFC 2883 §4), counted as below rcv_nxt (an old
// duplicate) or inside out-of-order data.
func (c *Conn) dsackSet(r seqRange) {
	if !c.sackOn || c.s.sys.Dsack.Load() == 0 || r.len() <= 0 {
		return
	}
	if r.start.lt(c.rcv.nxt) {
		c.s.mib.inc(cTCPDSACKOldSent)
	} else {
		c.s.mib.inc(cTCPDSACKOfoSent)
	}
	c.rcv.ofo.dsack, c.rcv.ofo.dsackOK = r, true
}

// dsackExtend widens the pending D-SACK over r, or sets it if none is
// pending (tcp_dsack_extend).
func (c *Conn) dsackExtend(r seqRange) {
	if !c.rcv.ofo.dsackOK {
		c.dsackSet(r)
		return
	}
	sackExtend(&c.rcv.ofo.dsack, r)
}
