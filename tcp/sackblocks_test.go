package tcp

import (
	"testing"

	"github.com/tapstack/tapstack/wire"
)

// rcvPeer is the peer side of a passive connection in a receive-side
// script: it sends data at sequence offsets from the first data byte.
type rcvPeer struct {
	h        *harness
	c        *Conn
	iss, irs uint32 // our ISN+1 (the ACK the peer sends), the peer's first data byte
	ts       bool
	tsval    uint32
	tsecr    uint32 // 0: no echo, so no receiver RTT sample
}

// newRcvPeer establishes a passive connection that negotiated SACK, with
// timestamps if ts (then three SACK blocks fit beside them, else four),
// without window scaling.
func newRcvPeer(t *testing.T, ts bool, mod func(*Sysctls)) *rcvPeer {
	opts := &wire.TCPOptions{MSS: 1460, HasMSS: true, WScale: -1, SACKPermitted: true}
	if ts {
		opts.HasTS, opts.TSVal = true, 100
	}
	return newRcvPeerWith(t, opts, mod)
}

// newRcvPeerWith establishes a passive connection with the peer's SYN
// options opts.
func newRcvPeerWith(t *testing.T, opts *wire.TCPOptions, mod func(*Sysctls)) *rcvPeer {
	h := newHarness(t, mod)
	c, iss, irs := h.estab(h.listen(16), 5000, opts)
	return &rcvPeer{h: h, c: c, iss: iss + 1, irs: irs + 1, ts: opts.HasTS, tsval: opts.TSVal + 1}
}

// send sends n bytes (of value byte(off)) at offset off.
func (p *rcvPeer) send(off, n int) {
	p.sendFlags(off, n, fA)
}

func (p *rcvPeer) sendFlags(off, n int, flags uint8) {
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(off + i)
	}
	var o *wire.TCPOptions
	if p.ts {
		o = &wire.TCPOptions{WScale: -1, HasTS: true, TSVal: p.tsval, TSEcr: p.tsecr}
	}
	p.h.inject(seg{src: 5000, dst: 80, seq: p.irs + uint32(off), ack: p.iss, flags: flags, opts: o, data: data})
}

// seq is the sequence number of offset off.
func (p *rcvPeer) seq(off int) uint32 { return p.irs + uint32(off) }

// blk is the SACK block of offsets [l, r).
func (p *rcvPeer) blk(l, r int) wire.SACKBlock {
	return wire.SACKBlock{Left: p.seq(l), Right: p.seq(r)}
}

// counter reads a MIB counter by its nstat name.
func (p *rcvPeer) counter(name string) uint64 { return p.h.s.Counter(name) }

// TestSACKBlocksRFC2018Examples replays RFC 2018 §7 (Sack Option
// Examples), cases 2 and 3 and their sequels: a burst of eight 500-byte
// segments from 5000 (offset 0 here). Each out-of-order segment is ACKed at
// once; the first block holds the segment that triggered the ACK, the
// others repeat the most recently reported blocks.
func TestSACKBlocksRFC2018Examples(t *testing.T) {
	t.Run("case 2: the first segment lost", func(t *testing.T) {
		p := newRcvPeer(t, false, nil)
		for k := 1; k < 8; k++ {
			p.send(500*k, 500)
			p.h.expect().ACK().Ack(p.seq(0)).SACK(p.blk(500, 500*(k+1)))
		}
	})
	t.Run("case 3: the even segments lost", func(t *testing.T) {
		p := newRcvPeer(t, false, nil)
		p.c.rcv.quickAcks = 100 // every ACK goes at once, as in the RFC's tables
		p.send(0, 500)
		p.h.expect().ACK().Ack(p.seq(500)).SACK()
		p.send(1000, 500)
		p.h.expect().ACK().Ack(p.seq(500)).SACK(p.blk(1000, 1500))
		p.send(2000, 500)
		p.h.expect().ACK().Ack(p.seq(500)).SACK(p.blk(2000, 2500), p.blk(1000, 1500))
		p.send(3000, 500)
		p.h.expect().ACK().Ack(p.seq(500)).SACK(p.blk(3000, 3500), p.blk(2000, 2500), p.blk(1000, 1500))
		// "Suppose at this point, the 4th packet is received out of order."
		p.send(1500, 500)
		p.h.expect().ACK().Ack(p.seq(500)).SACK(p.blk(1000, 2500), p.blk(3000, 3500))
		// "Suppose at this point, the 2nd segment is received."
		p.send(500, 500)
		p.h.expect().ACK().Ack(p.seq(2500)).SACK(p.blk(3000, 3500))
	})
}

// TestSACKBlocksMostRecentFirst: blocks go out in the order they last
// changed, not by sequence: 8000, then 6000, then 7000 (offsets) leave
// three ranges reported 7000, 6000, 8000; a later arrival extending the
// 8000 range brings it back to the front. A fifth range pushes the oldest
// out of the four kept; with timestamps only three fit in the option.
func TestSACKBlocksMostRecentFirst(t *testing.T) {
	p := newRcvPeer(t, false, nil)
	p.send(8000, 500)
	p.h.expect().SACK(p.blk(8000, 8500))
	p.send(6000, 500)
	p.h.expect().SACK(p.blk(6000, 6500), p.blk(8000, 8500))
	p.send(7000, 500)
	p.h.expect().SACK(p.blk(7000, 7500), p.blk(6000, 6500), p.blk(8000, 8500))
	p.send(8500, 500)
	p.h.expect().SACK(p.blk(8000, 9000), p.blk(7000, 7500), p.blk(6000, 6500))
	p.send(4000, 500)
	p.h.expect().SACK(p.blk(4000, 4500), p.blk(8000, 9000), p.blk(7000, 7500), p.blk(6000, 6500))
	p.send(2000, 500) // five ranges: 6000's block (the oldest) is forgotten
	p.h.expect().SACK(p.blk(2000, 2500), p.blk(4000, 4500), p.blk(8000, 9000), p.blk(7000, 7500))

	pt := newRcvPeer(t, true, nil)
	for _, off := range []int{8000, 6000, 7000, 4000} {
		pt.send(off, 500)
		pt.h.drain()
	}
	pt.send(2000, 500)
	pt.h.expect().SACK(pt.blk(2000, 2500), pt.blk(4000, 4500), pt.blk(7000, 7500))
}

// TestSACKBlocksCoalesce: a segment bridging two reported ranges makes one
// block of them (tcp_sack_maybe_coalesce); a segment overlapping a range
// extends its block (its duplicate part reported first, RFC 2883); in-order data reaching a block's start removes it
// (tcp_sack_remove), and filling the last hole ends the SACK option.
func TestSACKBlocksCoalesce(t *testing.T) {
	p := newRcvPeer(t, false, nil)
	p.send(1000, 100)
	p.send(1200, 100)
	p.send(3000, 100)
	p.h.drain()
	p.send(1100, 100) // bridges 1000-1100 and 1200-1300
	p.h.expect().SACK(p.blk(1000, 1300), p.blk(3000, 3100))
	p.send(2950, 100) // overlaps the start of 3000-3100: that part is a D-SACK
	p.h.expect().SACK(p.blk(3000, 3050), p.blk(2950, 3100), p.blk(1000, 1300))
	p.send(0, 1000) // reaches 1000: that block is delivered
	p.h.expect().Ack(p.seq(1300)).SACK(p.blk(2950, 3100))
	p.send(1300, 1650)
	p.h.expect().Ack(p.seq(3100)).SACK()
	if p.c.hasOOO() {
		t.Fatal("out-of-order queue still held after the last hole filled")
	}
	buf := make([]byte, 4000)
	n, _ := p.c.Read(buf)
	for i := 0; i < n; i++ {
		if buf[i] != byte(i) {
			t.Fatalf("byte %d is %d: data merged wrong", i, buf[i])
		}
	}
	if n != 3100 {
		t.Fatalf("read %d bytes, want 3100", n)
	}
	if got := p.counter("TcpExtTCPOFOQueue"); got != 5 {
		t.Fatalf("TCPOFOQueue %d, want 5", got)
	}
}
