package tcp

import (
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/tapstack/tapstack/internal/sockwait"
	"github.com/tapstack/tapstack/tcp/congestion"
)

// newConn allocates a connection in CLOSED state with the stack's defaults.
// Buffers are allocated on first use, so an idle connection stays small.
func (s *Stack) newConn(id tuple, mtu int) *Conn {
	c := &Conn{s: s, id: id, state: StateClose}
	c.incomingCPU.Store(-1)
	c.rtt.rto = initRTO
	c.rec.cong = &congestion.Sender{Cwnd: initCwnd, Ssthresh: infiniteSsthresh}
	c.rec.reordering = int(s.sys.Reordering.Load())
	c.rec.rack.reoWndSteps = 1
	c.rec.undoRetrans = -1
	c.rec.cc = s.newCongestionControl()
	c.rcv.advMSS = max(mtu-headersLen(id.remote.Addr()), 88)
	c.snd.peerMSS = 536
	c.snd.mss = min(c.rcv.advMSS, 536)
	c.rec.cong.MSS = c.snd.mss
	c.rcv.mss = 536
	c.rcv.bufMax = int(s.sys.RmemDefault.Load())
	c.snd.bufMax = int(s.sys.WmemDefault.Load())
	c.tsOn = s.sys.Timestamps.Load() != 0
	c.sackOn = s.sys.Sack.Load() != 0
	c.wsOn = s.sys.WindowScaling.Load() != 0
	if c.wsOn {
		c.rcv.wscale = wscaleFor(int(s.sys.RmemMax.Load()))
	}
	c.linger = -1
	c.kaIdle = time.Duration(s.sys.KeepaliveTime.Load()) * time.Second
	c.kaIntvl = time.Duration(s.sys.KeepaliveIntvl.Load()) * time.Second
	c.kaProbes = int32(s.sys.KeepaliveProbes.Load())
	c.tsOff = s.tsOffset(id.local, id.remote)
	c.rcv.space.time = s.stampNow()
	c.rcv.space.space = initCwnd * c.rcv.advMSS // tcp_init_buffer_space
	return c
}

// wscaleFor is the window scale needed to advertise space bytes
// (tcp_select_initial_window).
func wscaleFor(space int) uint8 {
	var ws uint8
	for space > 0xffff && ws < 14 {
		space >>= 1
		ws++
	}
	return ws
}

func (c *Conn) opErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if se, ok := err.(syscall.Errno); ok {
		err = os.NewSyscallError(op, se)
	}
	a := c.netAddrs()
	return &net.OpError{Op: op, Net: "tcp", Source: a.local, Addr: a.remote, Err: err}
}

// connAddrs are the connection's endpoints as net.Addr values, built once
// as net's netFD keeps laddr and raddr: net/http's aborted background Read
// ends in a timeout error on every request, and building two TCPAddrs for
// each was 4 heap objects per request. Callers share them, as they share
// netFD's.
type connAddrs struct {
	local, remote *net.TCPAddr
}

func (c *Conn) netAddrs() *connAddrs {
	if a := c.addrs.Load(); a != nil {
		return a
	}
	a := &connAddrs{local: net.TCPAddrFromAddrPort(c.id.local), remote: net.TCPAddrFromAddrPort(c.id.remote)}
	if c.addrs.CompareAndSwap(nil, a) {
		return a
	}
	return c.addrs.Load()
}

// readHook, when set by a test, runs inside Read after the copy, while the
// reader owns the socket (tcp_recvmsg between lock_sock and release_sock).
var readHook func(*Conn)

// Read implements net.Conn. The caller owns the socket while it copies:
// segments that arrive meanwhile wait on the socket backlog and are
// processed by Read before it returns (release_sock).
func (c *Conn) Read(p []byte) (int, error) {
	for {
		if c.w.ReadPassed() {
			c.notifyRead() // chain the wake-up to other readers
			return 0, c.opErr("read", os.ErrDeadlineExceeded)
		}
		var out outBatch
		c.lockSock()
		if c.closed {
			c.release()
			return 0, c.opErr("read", net.ErrClosed)
		}
		if len(p) == 0 {
			c.release()
			return 0, nil
		}
		if c.rcv.buf.n > 0 {
			n := c.read(p, &out)
			if readHook != nil {
				readHook(c) // tests: a reader held inside Read, owning the socket
			}
			c.armTimer()
			more := c.rcv.buf.n > 0
			c.releaseSock(&out)
			if more {
				c.notifyRead() // chain the wakeup to other readers
			}
			return n, nil
		}
		err := c.err
		eof := c.rcv.finRcvd || c.rcv.shutdown || (c.state == StateClose && err == nil) || c.state == StateTimeWait
		c.release()
		if err != nil {
			if err == errClosedStack {
				return 0, c.opErr("read", net.ErrClosed)
			}
			return 0, c.opErr("read", err)
		}
		if eof {
			return 0, io.EOF
		}
		<-c.w.Rd.Get()
	}
}

// Write implements net.Conn. It blocks until all of p is in the send
// buffer (bounded by tcp_wmem / SetWriteBuffer).
func (c *Conn) Write(p []byte) (int, error) {
	total := 0
	for {
		if c.w.WritePassed() {
			c.notifyWrite() // chain the wake-up to other writers
			return total, c.opErr("write", os.ErrDeadlineExceeded)
		}
		var out outBatch
		c.lockSock()
		if c.closed {
			c.release()
			return total, c.opErr("write", net.ErrClosed)
		}
		if c.err != nil || c.wrShutdown || c.state == StateClose || !(c.canSendData() || c.state == StateSynSent || c.state == StateSynRecv) {
			err := c.writeErr()
			if c.err == errClosedStack {
				err = net.ErrClosed
			}
			c.release()
			return total, c.opErr("write", err)
		}
		if len(p) == 0 {
			c.release()
			return total, nil
		}
		if c.canSendData() {
			if room := c.snd.bufMax - c.snd.buf.n; room > 0 {
				k := min(room, len(p))
				c.snd.buf.reserve(c.snd.buf.n+k, c.snd.buf.n)
				c.snd.buf.writeAt(c.snd.buf.n, p[:k])
				c.snd.buf.n += k
				p = p[k:]
				total += k
				c.xmit(&out)
				c.armTimer()
				c.releaseSock(&out)
				if len(p) == 0 {
					return total, nil
				}
				continue
			}
		}
		c.release()
		<-c.w.Wr.Get()
	}
}

// Close implements net.Conn (Linux tcp_close). It does not block unless
// SetLinger set a positive timeout.
func (c *Conn) Close() error {
	var out outBatch
	c.lockSock()
	if c.closed {
		c.release()
		return c.opErr("close", net.ErrClosed)
	}
	c.closeLocked(&out)
	linger := c.linger
	c.releaseSock(&out)
	c.notifyAll()
	if linger > 0 {
		c.waitLinger(linger)
	}
	return nil
}

// waitLinger blocks until the FIN is acknowledged or the linger time ends.
func (c *Conn) waitLinger(d time.Duration) {
	var dl sockwait.Deadline
	dl.Set(c.s.clock, c.s.clock.Now().Add(d), &c.w.Wr)
	defer dl.Stop()
	for {
		c.lockSock()
		st := c.state
		c.release()
		if st == StateClose || st == StateTimeWait || st == StateFinWait2 || dl.Passed() {
			return
		}
		<-c.w.Wr.Get()
	}
}

// CloseWrite shuts down the sending side: a FIN follows the buffered data.
func (c *Conn) CloseWrite() error {
	var out outBatch
	c.lockSock()
	if c.closed {
		c.release()
		return c.opErr("close", net.ErrClosed)
	}
	c.closeWriteLocked(&out)
	c.armTimer()
	c.releaseSock(&out)
	return nil
}

// CloseRead shuts down the receiving side: later reads return io.EOF.
func (c *Conn) CloseRead() error {
	c.lockSock()
	defer c.release()
	if c.closed {
		return c.opErr("close", net.ErrClosed)
	}
	c.rcv.shutdown = true
	c.notifyRead()
	return nil
}

// LocalAddr implements net.Conn (a *net.TCPAddr).
func (c *Conn) LocalAddr() net.Addr { return c.netAddrs().local }

// RemoteAddr implements net.Conn (a *net.TCPAddr).
func (c *Conn) RemoteAddr() net.Addr { return c.netAddrs().remote }

// LocalAddrPort and RemoteAddrPort return the endpoints as netip values.
func (c *Conn) LocalAddrPort() netip.AddrPort  { return c.id.local }
func (c *Conn) RemoteAddrPort() netip.AddrPort { return c.id.remote }

// SetDeadline implements net.Conn; deadlines run on the stack's clock and
// expire with os.ErrDeadlineExceeded (a net.Error whose Timeout is true).
func (c *Conn) SetDeadline(t time.Time) error {
	c.w.Set(c.s.clock, t, sockwait.Both)
	return nil
}

// SetReadDeadline implements net.Conn.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.w.Set(c.s.clock, t, sockwait.Read)
	return nil
}

// SetWriteDeadline implements net.Conn.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.w.Set(c.s.clock, t, sockwait.Write)
	return nil
}

// IncomingCPU is getsockopt(SO_INCOMING_CPU): the device shard that took
// the connection's last segment (sk_incoming_cpu_update in tcp_v4_rcv),
// -1 before any. An SO_REUSEPORT member that set the same value on its
// listener (Listener.SetIncomingCPU) accepted it on that shard's behalf.
func (c *Conn) IncomingCPU() int { return int(c.incomingCPU.Load()) }

// SetNoDelay turns Nagle's algorithm off (true) or on (TCP_NODELAY).
func (c *Conn) SetNoDelay(noDelay bool) error {
	var out outBatch
	c.lockSock()
	c.noDelay = noDelay
	if noDelay {
		c.xmit(&out)
		c.armTimer()
	}
	c.releaseSock(&out)
	return nil
}

// SetKeepAlive enables keepalive probes (SO_KEEPALIVE).
func (c *Conn) SetKeepAlive(on bool) error {
	c.lockSock()
	defer c.release()
	c.keepalive = on
	c.keepAt = 0
	if on && (c.state == StateEstablished || c.state == StateCloseWait) {
		c.keepAt = c.s.stampAfter(c.kaIdle)
	}
	c.armTimer()
	return nil
}

// SetKeepAlivePeriod sets the idle time and the probe interval (like Go's
// net package: TCP_KEEPIDLE and TCP_KEEPINTVL).
func (c *Conn) SetKeepAlivePeriod(d time.Duration) error {
	c.lockSock()
	defer c.release()
	if d < time.Second {
		d = time.Second
	}
	c.kaIdle, c.kaIntvl = d, d
	if c.keepalive && (c.state == StateEstablished || c.state == StateCloseWait) {
		c.keepAt = c.s.stampAfter(d)
		c.armTimer()
	}
	return nil
}

// SetReadBuffer sets the receive buffer (SO_RCVBUF: locks auto-tuning).
func (c *Conn) SetReadBuffer(n int) error {
	c.lockSock()
	defer c.release()
	// sock_setsockopt(SO_RCVBUF): clamped to net.core.rmem_max, then doubled
	// for bookkeeping overhead as Linux does.
	c.rcv.bufMax = max(min(n, int(c.s.sys.CoreRmemMax.Load()))*2, int(c.s.sys.RmemMin.Load()))
	c.rcv.bufLocked = true
	return nil
}

// SetWriteBuffer sets the send buffer (SO_SNDBUF: locks auto-growth).
func (c *Conn) SetWriteBuffer(n int) error {
	c.lockSock()
	defer c.release()
	// SO_SNDBUF: clamped to net.core.wmem_max, then doubled, as in Linux.
	c.snd.bufMax = max(min(n, int(c.s.sys.CoreWmemMax.Load()))*2, int(c.s.sys.WmemMin.Load()))
	c.snd.bufLocked = true
	c.notifyWrite()
	return nil
}

// SetLinger is SO_LINGER: <0 default, 0 abort with RST on Close, >0 Close
// waits up to sec seconds for the FIN to be acknowledged.
func (c *Conn) SetLinger(sec int) error {
	c.lockSock()
	defer c.release()
	if sec < 0 {
		c.linger = -1
	} else {
		c.linger = time.Duration(sec) * time.Second
	}
	return nil
}

// State returns the connection's current state.
func (c *Conn) State() State {
	c.lockSock()
	defer c.release()
	return c.state
}
