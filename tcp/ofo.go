package tcp

import (
	"sync"

	"github.com/tapstack/tapstack/wire"
)

// ofoState is the receiver's state beyond the in-order data: the
// out-of-order queue with its SACK blocks (made when the first hole opens,
// given back when the last one closes, so an idle connection holds only a
// nil pointer), the D-SACK for the next ACK (RFC 2883) and the receiver's
// RTT estimate (rcvrtt.go).
type ofoState struct {
	q       *ofoQueue
	dsack   seqRange // duplicate to report first in the next ACK
	rtt     rcvRTTEst
	dsackOK bool // output.go's ackSent clears it: a D-SACK goes out once
}

// ofoQueue is the out-of-order queue: which ranges beyond rcv_nxt the
// receive ring holds (the bytes sit in the ring at their offset), the SACK
// blocks that report them (sackblocks.go) and the SACK-compression state
// (rcvack.go), all of which exist only while a hole does.
type ofoQueue struct {
	tree ofoTree
	// tp->selective_acks: the most recently changed block first.
	sacks  [wire.TCPMaxSACKBlocks]seqRange
	nSacks int
	// SACK compression (__tcp_ack_snd_check): ACKs held back, and the
	// immediate dupACKs sent since rcv_nxt last moved.
	compressed int
	dupAcks    int
	compRcvNxt seqnum
}

const (
	// ofoRangeTruesize is what one out-of-order range is charged against
	// the receive buffer on top of its bytes, Linux's skb->truesize
	// analogue: the tree node, twice over for the arena's doubling slack.
	// (Linux charges ~1 KB of skb overhead per segment; our ring stores
	// the bytes bare, so only the index costs extra.)
	ofoRangeTruesize = 2 * ofoNodeSize
	// ofoPoolKeepNodes bounds the arena a queue keeps when it goes back to
	// the pool: the arena a flood grew is freed, not recycled.
	ofoPoolKeepNodes = 1024
)

var ofoQueuePool = sync.Pool{New: func() any { return new(ofoQueue) }}

// ofoQueue returns the out-of-order queue, taking one from the pool on
// the first hole.
func (c *Conn) ofoQueue() *ofoQueue {
	if c.rcv.ofo.q == nil {
		c.rcv.ofo.q = ofoQueuePool.Get().(*ofoQueue)
	}
	return c.rcv.ofo.q
}

// releaseOFO gives the (empty or abandoned) queue back to the pool.
func (c *Conn) releaseOFO() {
	q := c.rcv.ofo.q
	if q == nil {
		return
	}
	c.rcv.ofo.q = nil
	c.flushCompressed(q)
	nodes := q.tree.nodes
	if cap(nodes) > ofoPoolKeepNodes {
		nodes = nil
	}
	*q = ofoQueue{}
	q.tree.nodes = nodes
	q.tree.reset()
	ofoQueuePool.Put(q)
}

// hasOOO reports whether out-of-order data is held.
func (c *Conn) hasOOO() bool { return c.rcv.ofo.q != nil }

// freeOOO forgets out-of-order data (the connection is done with it).
func (c *Conn) freeOOO() { c.releaseOFO() }

// rcvHeld is the number of ring bytes in use: unread data plus the span of
// out-of-order data.
func (c *Conn) rcvHeld() int {
	if c.rcv.ofo.q == nil {
		return c.rcv.buf.n
	}
	last, _ := c.rcv.ofo.q.tree.lastRange()
	return c.rcv.buf.n + last.end.diff(c.rcv.nxt)
}

// rmemAlloc is what the receive side holds against the buffer (Linux
// sk_rmem_alloc): unread bytes, out-of-order bytes and each out-of-order
// range's truesize.
func (c *Conn) rmemAlloc() int {
	n := c.rcv.buf.n
	if q := c.rcv.ofo.q; q != nil {
		n += q.tree.bytes + q.tree.n*ofoRangeTruesize
	}
	return n
}

// rmemLimit is the bound rmemAlloc is held to. The window offers the
// whole buffer as bytes (the ring has no per-segment overhead), so the
// bookkeeping of out-of-order ranges gets a sixteenth on top: a sender
// whose segments are at least 64 bytes long never meets it, a peer
// that sends 1-byte segments at alternate offsets meets it after
// rcvbuf/40 ranges.
func (c *Conn) rmemLimit() int { return c.rcv.bufMax + c.rcv.bufMax>>4 }

// rmemSchedule decides whether a segment starting at seq may be queued
// (tcp_try_rmem_schedule): when the receive memory is already over its
// bound, prune (tcp_prune_queue) and say no if that did not help.
func (c *Conn) rmemSchedule(seq seqnum) bool {
	if c.rmemAlloc() <= c.rmemLimit() {
		return true
	}
	return c.pruneQueue(seq)
}

// pruneQueue mirrors tcp_prune_queue. There is nothing to collapse (the
// ring holds bytes without per-skb overhead), so it goes straight to the
// destructive step: out-of-order data from the highest sequence down.
func (c *Conn) pruneQueue(seq seqnum) bool {
	m := &c.s.mib
	m.inc(cPruneCalled)
	c.pruneOFO(seq)
	if c.rmemAlloc() <= c.rmemLimit() {
		return true
	}
	m.inc(cRcvPruned)
	return false
}

// pruneOFO mirrors tcp_prune_ofo_queue: drop ranges from the top — they
// are the furthest from being delivered, and holes below may still fill —
// but none that starts below seq (then the incoming segment would land
// last, and dropping it is cheaper), at least an eighth of the buffer at a
// time, until the memory is under its bound. The SACK state is reset, as
// a sender's RTO does (RFC 2018 §8: the data SACKed may be discarded).
func (c *Conn) pruneOFO(seq seqnum) {
	q := c.rcv.ofo.q
	if q == nil {
		return
	}
	pruned := false
	goal := c.rcv.bufMax >> 3
	for {
		last, ok := q.tree.lastRange()
		if !ok || seq.gt(last.start) {
			break
		}
		q.tree.popLast()
		pruned = true
		goal -= last.len() + ofoRangeTruesize
		if q.tree.empty() || goal <= 0 {
			if c.rmemAlloc() <= c.rmemLimit() {
				break
			}
			goal = c.rcv.bufMax >> 3
		}
	}
	if !pruned {
		return
	}
	c.s.mib.inc(cOfoPruned)
	q.nSacks = 0 // tcp_sack_reset
	c.rcv.ofo.dsackOK = false
	if q.tree.empty() {
		c.releaseOFO()
	}
}
