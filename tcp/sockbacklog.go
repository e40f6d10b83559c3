package tcp

import (
	"sync"

	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/wire"
)

// The socket lock and the socket backlog (Linux lock_sock, sk_backlog).
//
// c.mu guards the connection's state. A user call (Read, Write, Close, a
// setter, Dial, Accept, ss) holds it for its critical section, as a task
// inside lock_sock owns a Linux socket; before it takes c.mu it counts
// itself in sl.users, so the socket is owned from the moment a user wants
// it (sock_owned_by_user). The receive path and the timers never wait for
// an owner. They try c.mu; when a user owns the socket (holds or is about
// to take c.mu), a segment goes onto the socket backlog (tcp_add_backlog:
// bounded, coalesced into the tail, TCPBacklogDrop past the bound), a timer
// that fired is deferred (tcp_release_cb's TCP_*_DEFERRED flags) and an ICMP
// error is stashed. The owner processes all of it before it lets the socket
// go (release_sock → __release_sock → sk_backlog_rcv, then tcp_release_cb).
// When c.mu is held by another softirq or a timer and no user owns the
// socket, the path waits for c.mu, as bh_lock_sock spins.
//
// sl.mu orders "a user owns the socket" against "the backlog is empty":
// a segment is appended only while sl.users > 0, and the last owner drops
// sl.users to 0 only after it found the backlog empty, both under sl.mu,
// so no segment is ever left behind.
type sockLock struct {
	mu       sync.Mutex
	users    int32 // user calls holding or waiting for c.mu
	deferred uint8 // work that waits for the owner (deferTimer, deferMTU)
	softErr  uint8 // an ICMP error that came while owned (an errno)
	room     int32 // the backlog's bound less the receive queue's charge, when last known
	mtu      int32 // deferred fragmentation-needed: the next-hop MTU
	mtuSeq   seqnum
	bl       *sockBacklog // made on first use: most sockets never backlog
}

// Deferred work (tcp_release_cb).
const (
	deferTimer uint8 = 1 << iota // TCP_WRITE_TIMER_DEFERRED, TCP_DELACK_TIMER_DEFERRED
	deferMTU                     // TCP_MTU_REDUCED_DEFERRED
)

// backlogSlack is what Linux adds to the socket backlog's bound on top of
// the buffers (tcp_add_backlog: rcvbuf + sndbuf/2 + 64 KB).
const backlogSlack = 64 << 10

// sockBacklog is sk_backlog: segments in arrival order, each a copy of the
// segment with its payload in a buffer of its own, and their charge.
type sockBacklog struct {
	segs  []backlogSeg
	spare []backlogSeg
	len   int // sk_backlog.len: truesize of what is queued
}

type backlogSeg struct {
	sg  segment // sg.payload points into b
	b   *pkt.Buffer
	cnt int // segments coalesced into it
}

// backlogTruesize is what a queued segment costs the backlog, Linux's
// skb->truesize analogue for a copy in a buffer of its own: the bytes with
// their headers, cache-aligned, plus sizeof(struct sk_buff) and
// skb_shared_info.
func backlogTruesize(payload int) int { return 576 + (payload+wire.TCPMinHeaderLen+60+63)&^63 }

// lockSock is lock_sock: the caller owns the connection until releaseSock.
func (c *Conn) lockSock() {
	c.sl.mu.Lock()
	c.sl.users++
	c.sl.mu.Unlock()
	c.mu.Lock()
}

// releaseSock is release_sock for a caller that built out under the lock:
// it processes what arrived while the socket was owned, then lets the
// socket go and sends out.
func (c *Conn) releaseSock(out *outBatch) {
	var reuse []backlogSeg
	for {
		c.sl.mu.Lock()
		bl := c.sl.bl
		if (bl == nil || len(bl.segs) == 0) && c.sl.deferred == 0 && c.sl.softErr == 0 {
			c.sl.room = int32(min(c.backlogLimit()-c.rmemAlloc(), 1<<30))
			c.sl.users--
			c.sl.mu.Unlock()
			break
		}
		var segs []backlogSeg
		if bl != nil {
			segs = bl.segs
			bl.segs, bl.spare = bl.spare[:0], nil
			bl.len = 0
		}
		deferred, softErr, mtu, mtuSeq := c.sl.deferred, c.sl.softErr, int(c.sl.mtu), c.sl.mtuSeq
		c.sl.deferred, c.sl.softErr = 0, 0
		c.sl.mu.Unlock()
		// __release_sock: the backlog in order, then tcp_release_cb.
		for i := range segs {
			g := &segs[i]
			if c.process(&g.sg, out) {
				reuse = append(reuse, *g)
			} else {
				g.b.Release()
			}
			*g = backlogSeg{}
		}
		if bl != nil {
			c.sl.mu.Lock()
			if bl.spare == nil {
				bl.spare = segs[:0]
			}
			c.sl.mu.Unlock()
		}
		if softErr != 0 && c.state.synchronized() {
			c.errSoft = softErr
		}
		// tcp_release_cb's order: the timers, then the MTU.
		if deferred&deferTimer != 0 {
			if c.rcv.ackPending && !c.delackAt.IsZero() && c.delackAt <= c.s.stampNow() {
				c.s.mib.inc(cDelayedACKLocked) // the delayed ACK waited for the owner
			}
			c.runTimers(out)
		}
		if deferred&deferMTU != 0 && c.state != StateClose && mtuSeq.geq(c.snd.una) && mtuSeq.leq(c.snd.nxt) {
			c.mtuReduced(mtu, out)
		}
	}
	c.armTimer()
	c.unlockSend(out)
	// A TIME_WAIT connection that a backlogged SYN ended hands it to the
	// listener, outside the connection's lock as input does.
	for i := range reuse {
		c.s.reuseTimeWait(&reuse[i].sg, out)
		reuse[i].b.Release()
	}
	if len(reuse) > 0 {
		c.s.flush(out)
	}
}

// release is releaseSock for a caller that sends nothing itself.
func (c *Conn) release() {
	var out outBatch
	c.releaseSock(&out)
	c.s.flush(&out)
}

// backlogLimit is tcp_add_backlog's bound: rcvbuf + sndbuf/2 + 64 KB.
// Caller holds c.mu.
func (c *Conn) backlogLimit() int { return c.rcv.bufMax + c.snd.bufMax/2 + backlogSlack }

// tryLockSoftirq takes c.mu for the receive path or a timer unless a user
// owns the socket; then it returns false with sl.mu held, for the caller to
// queue or defer its work and unlock sl.mu.
func (c *Conn) tryLockSoftirq() bool {
	if c.mu.TryLock() {
		return true
	}
	c.sl.mu.Lock()
	if c.sl.users > 0 {
		return false
	}
	c.sl.mu.Unlock()
	c.mu.Lock() // another softirq or timer has it (bh_lock_sock)
	return true
}

// addBacklog is tcp_add_backlog, with sl.mu held: sg is copied onto the
// backlog, merged into the tail when it continues it with the same flags
// and options, or dropped when the backlog and the receive queue already
// hold more than the bound (sk_rcvqueues_full: the segment itself does not
// count, so that one large segment always fits).
func (c *Conn) addBacklog(sg *segment) {
	m := &c.s.mib
	bl := c.sl.bl
	if bl == nil {
		bl = &sockBacklog{}
		c.sl.bl = bl
	}
	if n := len(bl.segs); n > 0 {
		t := &bl.segs[n-1]
		if canCoalesce(&t.sg, sg) && t.b.Tailroom() >= len(sg.payload) {
			copy(t.b.Append(len(sg.payload)), sg.payload)
			t.sg.payload = t.b.Bytes()
			if sg.ack.geq(t.sg.ack) {
				t.sg.ack = sg.ack
			}
			t.sg.wnd = sg.wnd
			t.sg.flags |= sg.flags
			t.cnt++
			bl.len += (len(sg.payload) + 63) &^ 63
			m.inc(cTCPBacklogCoalesce)
			return
		}
	}
	if bl.len > int(c.sl.room) {
		m.inc(cTCPBacklogDrop)
		return
	}
	b := pkt.Get(max(len(sg.payload), pkt.SmallSize-pkt.Headroom))
	copy(b.Append(len(sg.payload)), sg.payload)
	g := backlogSeg{sg: *sg, b: b, cnt: 1}
	g.sg.payload = b.Bytes()
	bl.segs = append(bl.segs, g)
	bl.len += backlogTruesize(len(sg.payload))
}

// canCoalesce is tcp_add_backlog's test for merging sg into the tail t: sg
// starts where t ends, both are plain ACKs (no SYN, RST or URG; ECE and CWR
// alike) with identical options, and t has no FIN.
func canCoalesce(t, sg *segment) bool {
	const never = wire.TCPFlagSYN | wire.TCPFlagRST | wire.TCPFlagURG | wire.TCPFlagFIN
	return t.end() == sg.seq && t.flags&never == 0 && sg.flags&(never&^wire.TCPFlagFIN) == 0 &&
		t.flags&sg.flags&wire.TCPFlagACK != 0 &&
		(t.flags^sg.flags)&(wire.TCPFlagECE|wire.TCPFlagCWR) == 0 &&
		t.opts == sg.opts && len(t.payload)+len(sg.payload) <= 64<<10
}

// BacklogLen reports the socket backlog's charge (sk_backlog.len), as ss
// shows it in skmem's bl field.
func (c *Conn) backlogLen() int {
	c.sl.mu.Lock()
	defer c.sl.mu.Unlock()
	if c.sl.bl == nil {
		return 0
	}
	return c.sl.bl.len
}

// freeBacklog drops what the backlog holds (the connection is gone).
// Caller holds c.mu.
func (c *Conn) freeBacklog() {
	c.sl.mu.Lock()
	if bl := c.sl.bl; bl != nil {
		for i := range bl.segs {
			bl.segs[i].b.Release()
		}
		c.sl.bl = nil
	}
	c.sl.mu.Unlock()
}
