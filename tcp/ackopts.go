package tcp

import "github.com/tapstack/tapstack/wire"

// dataOptions fills the options of a synchronized segment: timestamps and,
// on ACKs while we hold out-of-order data, SACK blocks (RFC 2018 §4: the
// block of the latest arrival first).
func (c *Conn) dataOptions(o *wire.TCPOptions) {
	*o = wire.TCPOptions{WScale: -1}
	if c.tsOn {
		o.HasTS = true
		o.TSVal = c.s.tsNow() + c.tsOff
		o.TSEcr = c.tsRecent
	}
	if !c.sackOn || (len(c.ofo.ranges) == 0 && !c.ofo.dsackOK) {
		return
	}
	max := wire.TCPMaxSACKBlocks
	if c.tsOn {
		max = 3
	}
	if c.ofo.dsackOK {
		// RFC 2883: a duplicate segment is reported in the first block.
		o.SACK[0] = wire.SACKBlock{Left: uint32(c.ofo.dsack.start), Right: uint32(c.ofo.dsack.end)}
		o.NumSACK = 1
	}
	first := -1
	for i, r := range c.ofo.ranges {
		if c.ofo.last.start.inRange(r.start, r.end) && o.NumSACK < max {
			first = i
			o.SACK[o.NumSACK] = wire.SACKBlock{Left: uint32(r.start), Right: uint32(r.end)}
			o.NumSACK++
			break
		}
	}
	for i := len(c.ofo.ranges) - 1; i >= 0 && o.NumSACK < max; i-- {
		if i == first {
			continue
		}
		o.SACK[o.NumSACK] = wire.SACKBlock{Left: uint32(c.ofo.ranges[i].start), Right: uint32(c.ofo.ranges[i].end)}
		o.NumSACK++
	}
}

// sackOptLen is the room the SACK blocks of the next segment take.
func (c *Conn) sackOptLen() int {
	if !c.sackOn || (len(c.ofo.ranges) == 0 && !c.ofo.dsackOK) {
		return 0
	}
	blocks := len(c.ofo.ranges)
	if c.ofo.dsackOK {
		blocks++
	}
	blocks = min(blocks, wire.TCPMaxSACKBlocks)
	if c.tsOn {
		blocks = min(blocks, 3)
	}
	return 4 + 8*blocks
}

// selectWindow returns the window field to send and records the edge it
// advertises (Linux tcp_select_window: never shrink; receiver SWS
// avoidance per RFC 1122 §4.2.3.3).
func (c *Conn) selectWindow(syn bool) uint16 {
	free := c.rcvBufMax - c.rcv.n
	if free < 0 {
		free = 0
	}
	newEdge := c.rcvNxt.add(free)
	if newEdge.gt(c.rcvEdge) {
		step := min(c.rcvBufMax/2, c.advMSS)
		if newEdge.diff(c.rcvEdge) >= step || syn {
			c.rcvEdge = newEdge
		}
	}
	if c.rcvEdge.lt(c.rcvNxt) {
		c.rcvEdge = c.rcvNxt
	}
	c.rcvWup = c.rcvNxt
	w := c.rcvEdge.diff(c.rcvNxt)
	if !syn {
		w >>= c.rcvWscale
	}
	if w > 0xffff {
		w = 0xffff
	}
	return uint16(w)
}
