package tcp

import (
	"github.com/tapstack/tapstack/wire"
)

// rcvData queues the segment's payload and FIN (Linux tcp_data_queue and
// tcp_data_queue_ofo). The receive ring holds unread data at [0, rcv.n)
// and out-of-order data at its offset beyond, so nothing is allocated per
// segment; the out-of-order queue (ofo.go) says which bytes beyond are
// held.
func (c *Conn) rcvData(sg *segment, out *outBatch) {
	m := &c.s.mib
	seq := sg.seq
	data := sg.payload
	if sg.has(wire.TCPFlagSYN) {
		seq = seq.add(1)
	}
	fin := sg.has(wire.TCPFlagFIN)
	if len(data) > c.rcv.mss {
		c.rcv.mss = min(len(data), c.rcv.advMSS)
	}
	if q := c.rcv.ofo.q; q != nil && !c.rcv.ackPending {
		c.flushCompressed(q) // an ACK went out since the last one was held
	}
	c.rcvRTTMeasureTS(sg, len(data))
	// Trim what we already have.
	if seq.lt(c.rcv.nxt) {
		skip := c.rcv.nxt.diff(seq)
		if skip > len(data) || (skip == len(data) && !fin) {
			// A retransmission of what we have: our ACK was probably lost
			// (tcp_data_queue: DelayedACKLost, D-SACK, quickack).
			if end := sg.end(); end.gt(seq) {
				m.inc(cDelayedACKLost)
				c.dsackSet(seqRange{seq, end})
			}
			c.enterQuickAck()
			c.rcv.ackNow = true
			return
		}
		if skip > 0 && len(data) > 0 {
			c.dsackSet(seqRange{seq, c.rcv.nxt}) // partial packet, seq < rcv_nxt < end_seq
		}
		if skip == len(data) {
			data = nil
		} else {
			data = data[skip:]
		}
		seq = c.rcv.nxt
	}
	// Trim to the advertised window.
	wndEnd := seqMax(c.rcv.edge, c.rcv.nxt)
	if room := wndEnd.diff(seq); len(data) > room {
		if room <= 0 {
			if c.rcv.edge == c.rcv.nxt {
				m.inc(cTCPZeroWindowDrop)
			}
			c.enterQuickAck() // tcp_data_queue: out of window
			c.rcv.ackNow = true
			return
		}
		data = data[:room]
		fin = false
	}
	if len(data) > 0 {
		if seq == c.rcv.nxt {
			if !c.queueInOrder(data) {
				return
			}
		} else if !c.queueOFO(seq, data, out) {
			return
		}
	}
	if fin {
		c.rcv.peerFin, c.rcv.finSeq = true, seq.add(len(data))
	}
	if c.rcv.peerFin && !c.rcv.finRcvd && c.rcv.nxt == c.rcv.finSeq {
		c.rcvFin(out)
	}
}

// queueInOrder appends data at rcv_nxt (tcp_data_queue's queue_and_out),
// then moves what became contiguous out of the out-of-order queue. It
// reports false when the segment was dropped for memory.
func (c *Conn) queueInOrder(data []byte) bool {
	if !c.rmemSchedule(c.rcv.nxt) {
		c.rcv.ackNow = true // ICSK_ACK_NOMEM | ICSK_ACK_NOW
		if c.rcv.buf.n > 0 {
			c.s.mib.inc(cTCPRcvQDrop)
			return false
		}
	}
	c.rcv.buf.reserve(c.rcv.buf.n+len(data), c.rcvHeld())
	c.rcv.buf.writeAt(c.rcv.buf.n, data)
	c.rcv.buf.n += len(data)
	c.rcv.nxt = c.rcv.nxt.add(len(data))
	c.rcv.unackedBytes += len(data)
	c.rcv.ackPending = true
	c.rcvRTTMeasure() // tcp_event_data_recv
	if c.rcv.ofo.q != nil {
		c.drainOFO()
		if c.rcv.ofo.q == nil {
			// The last hole is filled: ACK at once (RFC 5681 §4.2).
			c.rcv.ackNow = true
		} else {
			c.sackRemove()
		}
	}
	c.notifyRead()
	return true
}

// queueOFO holds data that arrived above rcv_nxt (tcp_data_queue_ofo): its
// range goes in the out-of-order queue, merged with what it touches, its
// bytes in the ring at their offset; a part already held becomes the
// D-SACK, and the SACK blocks record the arrival. It reports false when
// the segment was dropped for memory (TCPOFODrop, not ACKed, as in Linux).
func (c *Conn) queueOFO(seq seqnum, data []byte, out *outBatch) bool {
	m := &c.s.mib
	if !c.rmemSchedule(seq) {
		m.inc(cTCPOFODrop)
		return false
	}
	q := c.ofoQueue()
	m.inc(cTCPOFOQueue)
	r := seqRange{seq, seq.add(len(data))}
	ins := q.tree.insert(r)
	if ins.added == 0 {
		m.inc(cTCPOFOMerge) // all the bits are present
		c.dsackSet(r)
	} else {
		if ins.absorbed > 0 {
			m.add(cTCPOFOMerge, uint64(ins.absorbed))
		}
		if ins.dup.len() > 0 {
			c.dsackSet(ins.dup)
		}
		off := c.rcv.buf.n + seq.diff(c.rcv.nxt)
		c.rcv.buf.reserve(off+len(data), c.rcvHeld())
		c.rcv.buf.writeAt(off, data)
	}
	c.sackNewOfo(r, out)
	c.rcvBufGrow(c.rcv.space.space)
	c.rcv.ackPending = true // inet_csk_schedule_ack; maybeAck decides when
	return true
}

// drainOFO moves the out-of-order ranges that rcv_nxt has reached into the
// in-order data (tcp_ofo_queue); where the segment that reached them
// overlapped them, the overlap becomes the D-SACK.
func (c *Conn) drainOFO() {
	q := c.rcv.ofo.q
	dsackHigh := c.rcv.nxt
	for {
		r, ok := q.tree.popFirstUpTo(c.rcv.nxt)
		if !ok {
			break
		}
		if r.start.lt(dsackHigh) {
			c.dsackExtend(seqRange{r.start, seqMin(r.end, dsackHigh)})
		}
		if r.end.gt(c.rcv.nxt) {
			d := r.end.diff(c.rcv.nxt)
			c.rcv.buf.n += d
			c.rcv.unackedBytes += d
			c.rcv.nxt = r.end
		}
	}
	if q.tree.empty() {
		c.releaseOFO()
	}
}

// read copies unread data into p (tcp_recvmsg), then sends a window
// update when the window has at least doubled (tcp_cleanup_rbuf).
func (c *Conn) read(p []byte, out *outBatch) int {
	n := min(len(p), c.rcv.buf.n)
	if n == 0 {
		return 0
	}
	c.rcv.buf.readAt(0, p[:n])
	c.rcv.buf.consume(n)
	if c.rcv.buf.n == 0 && c.rcv.ofo.q == nil {
		c.rcv.buf.releaseSmall() // all read, no hole: back to the pool
	}
	c.rcv.space.copied = c.rcv.space.copied.add(n)
	c.rcvSpaceAdjust()
	if c.state == StateEstablished || c.state == StateFinWait1 || c.state == StateFinWait2 {
		now := c.rcv.edge.diff(c.rcv.nxt)
		if 2*now <= c.rcv.bufMax {
			free := c.rcv.bufMax - c.rcv.buf.n
			if free >= 2*now && free >= c.rcv.advMSS {
				c.sendAck(out)
			}
		}
	}
	return n
}
