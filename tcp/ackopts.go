package tcp

import "github.com/tapstack/tapstack/wire"

// dataOptions fills the options of a synchronized segment: timestamps and,
// while a hole is open or a duplicate was just received, SACK blocks
// (tcp_established_options / tcp_options_write): the D-SACK first
// (RFC 2883 §4), then the blocks in the order they last changed, newest
// first (RFC 2018 §4), as many as fit: four, three beside timestamps.
func (c *Conn) dataOptions(o *wire.TCPOptions) {
	*o = wire.TCPOptions{WScale: -1}
	if c.tsOn {
		o.HasTS = true
		o.TSVal = c.s.tsNow() + c.tsOff
		o.TSEcr = c.tsRecent
	}
	n := c.sackBlocks()
	if n == 0 {
		return
	}
	if c.rcv.ofo.dsackOK {
		o.SACK[0] = wire.SACKBlock{Left: uint32(c.rcv.ofo.dsack.start), Right: uint32(c.rcv.ofo.dsack.end)}
		o.NumSACK = 1
	}
	if q := c.rcv.ofo.q; q != nil {
		for i := 0; i < q.nSacks && o.NumSACK < n; i++ {
			o.SACK[o.NumSACK] = wire.SACKBlock{Left: uint32(q.sacks[i].start), Right: uint32(q.sacks[i].end)}
			o.NumSACK++
		}
	}
}

// sackBlocks is how many SACK blocks the next segment carries.
func (c *Conn) sackBlocks() int {
	if !c.sackOn {
		return 0
	}
	n := 0
	if c.rcv.ofo.dsackOK {
		n++
	}
	if q := c.rcv.ofo.q; q != nil {
		n += q.nSacks
	}
	limit := wire.TCPMaxSACKBlocks
	if c.tsOn {
		limit = 3
	}
	return min(n, limit)
}

// sackOptLen is the room the SACK blocks of the next segment take.
func (c *Conn) sackOptLen() int {
	if n := c.sackBlocks(); n > 0 {
		return 4 + 8*n
	}
	return 0
}

// selectWindow returns the window field to send and records the edge it
// advertises (Linux tcp_select_window: never shrink; receiver SWS
// avoidance per RFC 1122 §4.2.3.3).
func (c *Conn) selectWindow(syn bool) uint16 {
	// What the field can carry bounds the edge we believe we offered
	// (tcp_select_initial_window clamps window_clamp to 65535 << wscale).
	limit := 0xffff
	if !syn {
		limit <<= c.rcv.wscale
	}
	free := min(max(c.rcv.bufMax-c.rcv.buf.n, 0), limit)
	if !c.sackOn && c.rcv.ofo.q != nil && !syn {
		// A sender without SACK knows a duplicate ACK by its unchanged
		// window (RFC 5681 §2, definition (e)): while a hole is open the
		// window keeps its size, as Linux keeps rcv_ssthresh from growing
		// for non-SACK flows (tcp_data_queue_ofo).
		free = min(free, c.rcv.edge.diff(c.rcv.wup))
	}
	newEdge := c.rcv.nxt.add(free)
	if newEdge.gt(c.rcv.edge) {
		step := min(c.rcv.bufMax/2, c.rcv.advMSS)
		if newEdge.diff(c.rcv.edge) >= step || syn {
			c.rcv.edge = newEdge
		}
	}
	if c.rcv.edge.lt(c.rcv.nxt) {
		c.rcv.edge = c.rcv.nxt
	}
	c.rcv.wup = c.rcv.nxt
	w := c.rcv.edge.diff(c.rcv.nxt)
	if !syn {
		w >>= c.rcv.wscale
	}
	if w > 0xffff {
		w = 0xffff
	}
	return uint16(w)
}
