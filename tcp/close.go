package tcp

import (
	"errors"
	"syscall"
	"time"
)

var errClosedStack = errors.New("tcp: stack closed")

// reset aborts the connection with a hard error the user will see (Linux
// tcp_reset / tcp_write_err then tcp_done).
func (c *Conn) reset(err error) {
	if c.err == nil {
		c.err = err
	}
	c.done()
}

// done moves the connection to CLOSED and frees it (Linux tcp_done).
func (c *Conn) done() {
	c.setState(StateClose)
	c.dropOrphan()
	c.rtoAt, c.keepAt, c.persistAt, c.twAt, c.tlpAt, c.reoAt = 0, 0, 0, 0, 0, 0
	c.delackAt = 0
	if c.timer != nil {
		c.timer.Stop()
	}
	c.timerAt = 0
	c.snd.buf.release()
	if c.closed {
		c.rcv.buf.release()
	}
	c.freeOOO()
	c.freeScoreboard()
	c.freeBacklog()
	c.signalEstablished()
	if c.inTable || c.twCounted {
		c.inTable = false
		c.s.remove(c)
	}
	c.notifyAll()
}

// destroy aborts from outside (stack close).
func (c *Conn) destroy(err error) {
	c.lockSock()
	if c.state != StateClose {
		c.reset(err)
	}
	c.release()
}

// enterTimeWait mirrors tcp_time_wait: keep the 4-tuple for 2·MSL
// (TimeWait) without buffers, unless tcp_max_tw_buckets is exhausted.
func (c *Conn) enterTimeWait() {
	s := c.s
	s.mu.Lock()
	over := s.tw >= int(s.sys.MaxTwBuckets.Load())
	if !over {
		s.tw++
		c.twCounted = true
	}
	s.mu.Unlock()
	if over {
		s.mib.inc(cTCPTimeWaitOverflow)
		c.done()
		return
	}
	c.setState(StateTimeWait)
	c.dropOrphan() // a TIME_WAIT socket is no longer an orphan (inet_twsk)
	c.rtoAt, c.keepAt, c.persistAt, c.tlpAt, c.reoAt = 0, 0, 0, 0, 0
	c.delackAt = 0
	c.twAt = c.s.stampAfter(c.timeWaitLen())
	c.snd.buf.release()
	c.freeOOO()
	c.freeScoreboard()
	c.notifyAll()
}

// closeWriteLocked queues our FIN after the pending data (Linux
// tcp_shutdown / tcp_close_state).
func (c *Conn) closeWriteLocked(out *outBatch) {
	if c.wrShutdown {
		return
	}
	c.wrShutdown = true
	switch c.state {
	case StateEstablished:
		c.setState(StateFinWait1)
	case StateCloseWait:
		c.setState(StateLastAck)
	case StateSynSent:
		c.done()
		return
	case StateSynRecv:
		c.setState(StateFinWait1)
	default:
		return
	}
	c.snd.finQueued = true
	c.xmit(out)
}

// closeLocked is tcp_close: abort with RST when unread data would be lost
// (TCPAbortOnClose) or on SO_LINGER 0 (TCPAbortOnData), else send a FIN
// and let the orphan finish on its own.
func (c *Conn) closeLocked(out *outBatch) {
	c.closed = true
	c.rcv.shutdown = true
	m := &c.s.mib
	switch {
	case c.state == StateClose || c.state == StateTimeWait:
	case c.state == StateSynSent:
		c.done()
	case c.rcv.buf.n > 0 || c.hasOOO():
		m.inc(cTCPAbortOnClose)
		c.sendRst(out)
		c.done()
	case c.linger == 0:
		m.inc(cTCPAbortOnData)
		c.sendRst(out)
		c.done()
	default:
		c.closeWriteLocked(out)
		if c.state == StateFinWait2 && c.twAt.IsZero() {
			c.twAt = c.s.stampAfter(time.Duration(c.s.sys.FinTimeout.Load()) * time.Second)
		}
		if c.state != StateClose && c.state != StateTimeWait {
			// tcp_close → tcp_check_oom: too many orphans are reset.
			if c.s.orphans.Add(1) > c.s.sys.MaxOrphans.Load() {
				c.s.orphans.Add(-1)
				m.inc(cTCPAbortOnMemory)
				c.sendRst(out)
				c.done()
			} else {
				c.orphan = true
			}
		}
	}
	c.rcv.buf.release()
	c.w.Stop()
	c.armTimer()
}

// writeErr is the error a write on a dead connection returns (Linux
// sk_stream_error after sock_error): the error that killed it (a reset,
// a refusal, a timeout or the ICMP error that ended it), else EPIPE.
func (c *Conn) writeErr() error {
	if e, ok := c.err.(syscall.Errno); ok {
		return e
	}
	return syscall.EPIPE
}

func (c *Conn) dropOrphan() {
	if c.orphan {
		c.orphan = false
		c.s.orphans.Add(-1)
	}
}
