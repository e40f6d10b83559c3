package tcp

import "time"

// rcvSpaceAdjust is Linux's receive buffer auto-tuning (tcp_rcv_space_adjust,
// "DRS"): once per receiver RTT, what the application read in it (less what
// still waits unread) is the rate to make room for.
func (c *Conn) rcvSpaceAdjust() {
	rtt := c.rcvRTT()
	if rtt == 0 {
		return
	}
	now := c.s.stampNow()
	if time.Duration(now-c.rcv.space.time) < rtt {
		return
	}
	copied := c.rcv.space.copied.diff(c.rcv.space.seq) - c.rcv.buf.n
	if copied > c.rcv.space.space {
		c.rcvBufGrow(copied)
	}
	c.rcv.space.seq = c.rcv.space.copied
	c.rcv.space.time = now
}

// rcvBufGrow sets the space to newval and grows rcvbuf to hold it
// (tcp_rcvbuf_grow): twice newval (DRS is one RTT late), plus room for the
// sender to double its rate (slow start) — or, on a short RTT, a share of
// that proportional to the RTT — plus the span of out-of-order data: with
// holes open, the sender's window has to cover them too. It runs on every
// out-of-order arrival as well as once per RTT.
func (c *Conn) rcvBufGrow(newval int) {
	old := c.rcv.space.space
	c.rcv.space.space = newval
	if c.rcv.bufLocked || c.s.sys.ModerateRcvbuf.Load() == 0 || c.closed || c.listener != nil {
		return
	}
	rcvwin := newval << 1
	// Below net.ipv4.tcp_rcvbuf_low_rtt the buffer grows with the RTT
	// rather than with the sender's rate increase.
	if rtt, low := c.rcvRTT(), time.Duration(c.s.sys.RcvbufLowRTTUs.Load())*time.Microsecond; rtt < low {
		rcvwin += int(int64(rcvwin) * int64(rtt) / int64(low))
	} else if old > 0 && newval > old {
		rcvwin += 2 * rcvwin * (newval - old) / old
	}
	if q := c.rcv.ofo.q; q != nil {
		last, _ := q.tree.lastRange()
		rcvwin += last.end.diff(c.rcv.nxt)
	}
	if rcvbuf := min(rcvwin, int(c.s.sys.RmemMax.Load())); rcvbuf > c.rcv.bufMax {
		c.rcv.bufMax = rcvbuf
	}
}
