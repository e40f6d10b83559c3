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
