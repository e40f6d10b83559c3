package tcp

import (
	"context"
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
func (s *Stack) Dial(ctx context.Context, laddr, raddr netip.AddrPort) (*Conn, error) {
	c, err := s.connect(laddr, raddr)
	if err != nil {
		return nil, err
	}
	select {
	case <-c.estWait:
	case <-ctx.Done():
		c.mu.Lock()
		if c.state == StateSynSent || c.state == StateSynRecv {
			c.closed = true
			c.done()
		}
		c.mu.Unlock()
		return nil, c.dialErr(ctx.Err())
	}
	c.mu.Lock()
	st, cerr := c.state, c.err
	c.mu.Unlock()
	if st == StateClose || cerr != nil {
		if cerr == nil {
			cerr = syscall.ECONNRESET
		}
		return nil, c.dialErr(cerr)
	}
	return c, nil
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
	c.mu.Lock()
	now := s.clock.Now()
	c.iss = s.isn(c.id.local, c.id.remote, now)
	c.sndUna, c.sndNxt = c.iss, c.iss+1
	c.sndBufSeq = c.iss + 1
	c.setState(StateSynSent)
	s.mib.inc(cActiveOpens)
	c.sendSegment(&out, c.iss, 0, wire.TCPFlagSYN)
	c.rttTiming, c.rttSeq, c.rttStart = true, c.iss, now
	c.rtoAt = s.stampAfter(initRTO)
	c.armTimer()
	c.unlockSend(&out)
	return c, nil
}
