package tcp

import "sync"

// txQueue keeps one connection's segments in the order they were built.
// Linux builds and sends a socket's segments while owning the socket
// (tcp_transmit_skb runs under the socket lock), so they leave in order.
// We never hold c.mu across Network.Output, so a path hands its batch to
// this queue while still holding c.mu, and whichever goroutine then finds
// the queue idle drains it (flat combining): the others only append and
// leave, and the drainer loops until the queue is empty. Its length is
// bounded by what the windows let the producers build between two drains.
type txQueue struct {
	mu    sync.Mutex // taken under c.mu by producers, alone by the drainer
	busy  bool       // a goroutine is draining
	q     []outSeg
	spare []outSeg // the drained slice, reused so queuing never allocates
}

// queueTx moves the segments of out to the connection's transmit queue.
// Caller holds c.mu, which orders producers.
func (c *Conn) queueTx(out *outBatch) {
	if out.n == 0 {
		return
	}
	t := &c.tx
	t.mu.Lock()
	for i := 0; i < out.n; i++ {
		t.q = append(t.q, out.a[i])
		out.a[i] = outSeg{}
	}
	out.n = 0
	if out.more != nil {
		m := *out.more
		t.q = append(t.q, m...)
		clear(m)
		*out.more = m[:0]
		morePool.Put(out.more)
		out.more = nil
	}
	t.mu.Unlock()
}

// sendQueued drains the transmit queue unless another goroutine already
// is; called without c.mu.
func (c *Conn) sendQueued() {
	t := &c.tx
	t.mu.Lock()
	if t.busy {
		t.mu.Unlock()
		return
	}
	t.busy = true
	for len(t.q) > 0 {
		q := t.q
		t.q = t.spare[:0]
		t.mu.Unlock()
		for i := range q {
			c.s.transmit(&q[i])
			q[i] = outSeg{}
		}
		t.mu.Lock()
		t.spare = q[:0]
	}
	t.busy = false
	t.mu.Unlock()
}

// unlockSend releases c.mu and sends what the caller built under it, in
// order with every other path of this connection.
func (c *Conn) unlockSend(out *outBatch) {
	c.queueTx(out)
	c.mu.Unlock()
	c.sendQueued()
}
