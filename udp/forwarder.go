package udp

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
)

// Forwarder takes the datagrams of flows no socket holds, to any address
// and port the IP layer delivers (a local route: stack.AddLocalRoute), as
// gVisor's udp.Forwarder does for a transparent proxy or a VPN. For the
// first datagram of each such flow its handler is called, on the receive
// path itself (it must not block: start a goroutine for the work); if it
// calls CreateEndpoint, the flow gets a socket bound to the address the
// peer sent to and connected to the peer, that datagram first in its
// queue, the next ones found by the usual lookup. A flow the handler
// leaves alone is dropped without an ICMP error (UdpNoPorts counts it).
type Forwarder struct {
	s       *Stack
	handler func(*ForwarderRequest)
}

// NewForwarder installs the stack's forwarder (one per stack: a second
// is EADDRINUSE).
func (s *Stack) NewForwarder(handler func(*ForwarderRequest)) (*Forwarder, error) {
	if handler == nil {
		return nil, syscall.EINVAL
	}
	f := &Forwarder{s: s, handler: handler}
	if !s.fwd.CompareAndSwap(nil, f) {
		return nil, &net.OpError{Op: "listen", Net: "udp", Err: syscall.EADDRINUSE}
	}
	return f, nil
}

// Close removes the forwarder; the endpoints it created go on.
func (f *Forwarder) Close() error {
	f.s.fwd.CompareAndSwap(f, nil)
	return nil
}

// ForwarderRequest is the first datagram of a flow no socket holds.
type ForwarderRequest struct {
	s        *Stack
	from, to netip.AddrPort
	conn     *Conn
}

// ID returns the datagram's destination (local: what the peer addressed)
// and its source (remote).
func (r *ForwarderRequest) ID() (local, remote netip.AddrPort) { return r.to, r.from }

var errEndpointMade = errors.New("udp: forwarder request already has an endpoint")

// CreateEndpoint opens the flow's socket: bound to the destination the
// peer sent to (no address of ours need hold it: IP_FREEBIND) and
// connected to the peer. It is only valid during the handler's call.
func (r *ForwarderRequest) CreateEndpoint() (*Conn, error) {
	if r.conn != nil {
		return nil, errEndpointMade
	}
	s := r.s
	c := s.newConn()
	c.remote = r.from
	if err := s.bindFlow(c, r.to); err != nil {
		return nil, &net.OpError{Op: "listen", Net: "udp", Source: net.UDPAddrFromAddrPort(r.to),
			Addr: net.UDPAddrFromAddrPort(r.from), Err: osErr("bind", err)}
	}
	r.conn = c
	return c, nil
}

// forward offers an unclaimed datagram to the forwarder.
func (s *Stack) forward(f *Forwarder, from, to netip.AddrPort, data []byte) Verdict {
	r := ForwarderRequest{s: s, from: from, to: to}
	f.handler(&r)
	if r.conn == nil {
		s.mib[cNoPorts].Add(1)
		return Ignored
	}
	if !r.conn.enqueue(from, data) {
		return Dropped
	}
	return Delivered
}

// bindFlow binds a connected forwarder endpoint. It is kept by its
// four-tuple alone (Stack.flows), apart from the port table: it shares its
// local address and port with the other flows to that destination and with
// any socket bound there (a lookup finds it first, as the best score
// __udp4_lib_lookup gives: bound to the destination, connected to the
// source), so a proxy's thousands of flows cost no scan and block no bind.
func (s *Stack) bindFlow(c *Conn, local netip.AddrPort) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errStackClosed
	}
	k := flowKey{local, c.remote}
	if s.flows[k] != nil {
		return syscall.EADDRINUSE
	}
	c.local = local
	if s.flows == nil {
		s.flows = make(map[flowKey]*Conn)
	}
	s.flows[k] = c
	return nil
}

// flowKey is a connected socket's local and remote address.
type flowKey struct{ local, remote netip.AddrPort }
