package tcp

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"

	"github.com/tapstack/tapstack/wire"
)

// Dial opens a connection from laddr (zero: the route's source address
// and an ephemeral port) to raddr and waits for the handshake (Linux
// tcp_v4_connect + inet_wait_for_connect). SYNs are retransmitted
// tcp_syn_retries times with backoff from 1 s.
//
// Like net.Dialer, Dial gives up when ctx is done: at once, before any SYN,
// if it already is, and otherwise as soon as it is, leaving no socket
// behind (see abortDial). The error is a *net.OpError wrapping
// context.Canceled, or for an expired deadline an "i/o timeout" that is a
// timeout net.Error matching context.DeadlineExceeded and
// os.ErrDeadlineExceeded.
func (s *Stack) Dial(ctx context.Context, laddr, raddr netip.AddrPort) (*Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Source: addrOrNil(laddr),
			Addr: net.TCPAddrFromAddrPort(raddr), Err: mapCtxErr(err)}
	}
	c, err := s.connect(laddr, raddr)
	if err != nil {
		return nil, err
	}
	select {
	case <-c.estWait:
	case <-ctx.Done():
	}
	// A context that ended as the handshake completed still wins, as in
	// net.Dialer (Go issue 16523): the caller has stopped waiting.
	if err := ctx.Err(); err != nil {
		c.abortDial()
		return nil, c.dialErr(mapCtxErr(err))
	}
	c.lockSock()
	st, cerr := c.state, c.err
	c.release()
	if st == StateClose || cerr != nil {
		if cerr == nil {
			cerr = syscall.ECONNRESET
		}
		return nil, c.dialErr(cerr)
	}
	return c, nil
}

// abortDial undoes an active open whose caller has given up, so that no
// socket stays behind. In SYN-SENT the peer holds nothing and the socket
// just goes, as tcp_close does there without a RST (a SYN-ACK that still
// comes finds no socket and is answered with a RST). If the handshake has
// got further meanwhile (it completed as ctx ended, or a simultaneous open
// is in SYN-RECV), the peer holds a connection nobody will use: it is reset,
// as close(2) with SO_LINGER 0 does (tcp_disconnect, tcp_need_reset).
func (c *Conn) abortDial() {
	var out outBatch
	c.lockSock()
	c.closed = true
	switch c.state {
	case StateClose:
	case StateSynSent:
		c.done()
	default:
		c.sendRst(&out)
		c.done()
	}
	c.releaseSock(&out)
}

// mapCtxErr turns a done context's error into what net.Dialer returns for
// it (net's mapErr), so callers can test it the same ways.
func mapCtxErr(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return errDialTimeout{}
	case errors.Is(err, context.Canceled):
		return errDialCanceled{}
	}
	return err
}

// errDialCanceled is net's "operation was canceled".
type errDialCanceled struct{}

func (errDialCanceled) Error() string        { return "operation was canceled" }
func (errDialCanceled) Is(target error) bool { return target == context.Canceled }

// errDialTimeout is net's "i/o timeout" for an expired dial deadline; it
// also matches os.ErrDeadlineExceeded, as a Conn's deadline errors do.
type errDialTimeout struct{}

func (errDialTimeout) Error() string   { return "i/o timeout" }
func (errDialTimeout) Timeout() bool   { return true }
func (errDialTimeout) Temporary() bool { return true }
func (errDialTimeout) Is(target error) bool {
	return target == context.DeadlineExceeded || target == os.ErrDeadlineExceeded
}

// addrOrNil is laddr as a net.Addr, or nil when none was asked for (a nil
// *net.TCPAddr in an interface would print as "<nil>" in OpError).
func addrOrNil(laddr netip.AddrPort) net.Addr {
	if !laddr.IsValid() {
		return nil
	}
	return net.TCPAddrFromAddrPort(laddr)
}

func (c *Conn) dialErr(err error) error {
	if se, ok := err.(syscall.Errno); ok {
		err = os.NewSyscallError("connect", se)
	}
	return &net.OpError{Op: "dial", Net: "tcp", Source: net.TCPAddrFromAddrPort(c.id.local),
		Addr: net.TCPAddrFromAddrPort(c.id.remote), Err: err}
}

// connect sends the SYN and returns the connection in SYN-SENT (tcp_connect).
func (s *Stack) connect(laddr, raddr netip.AddrPort) (*Conn, error) {
	opErr := func(err error) error {
		if se, ok := err.(syscall.Errno); ok {
			err = os.NewSyscallError("connect", se)
		}
		return &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(raddr), Err: err}
	}
	src, mtu, err := s.net.Route(raddr.Addr())
	if err != nil {
		return nil, opErr(err)
	}
	if mtu <= 0 {
		mtu = 1500
	}
	if laddr.Addr().IsValid() && !laddr.Addr().IsUnspecified() {
		src = laddr.Addr()
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, opErr(net.ErrClosed)
	}
	port := laddr.Port()
	if port == 0 {
		p, ok := s.pickPort(src, raddr)
		if !ok {
			s.mu.Unlock()
			return nil, opErr(syscall.EADDRNOTAVAIL)
		}
		port = p
	}
	s.mu.Unlock()
	c := s.newConn(tuple{netip.AddrPortFrom(src, port), raddr}, mtu)
	c.estWait = make(chan struct{})
	if !s.insert(c) {
		if s.maxConns > 0 {
			return nil, opErr(syscall.ECONNREFUSED)
		}
		return nil, opErr(syscall.EADDRINUSE)
	}
	var out outBatch
	c.lockSock()
	now := s.clock.Now()
	c.snd.iss = s.isn(c.id.local, c.id.remote, now)
	c.snd.una, c.snd.nxt = c.snd.iss, c.snd.iss+1
	c.snd.bufSeq = c.snd.iss + 1
	c.setState(StateSynSent)
	s.mib.inc(cActiveOpens)
	c.sendSegment(&out, c.snd.iss, 0, wire.TCPFlagSYN)
	c.rtt.timing, c.rtt.seq, c.rtt.start = true, c.snd.iss, s.stampOf(now)
	c.rtoAt = s.stampAfter(initRTO)
	c.releaseSock(&out)
	return c, nil
}
