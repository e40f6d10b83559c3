package stack

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/tapstack/tapstack/tcp"
)

// ListenTCP listens on addr with an explicit listen(2) backlog (clamped to
// net.core.somaxconn). An unspecified address listens on every address.
func (s *Stack) ListenTCP(addr netip.AddrPort, backlog int) (*Listener, error) {
	return s.tcp.Listen(addr, backlog)
}

// Listen announces on a local address the way net.Listen does ("tcp" or
// "tcp4", ":80" or "10.0.0.2:80") with the backlog Go's net package uses:
// net.core.somaxconn.
func (s *Stack) Listen(network, address string) (net.Listener, error) {
	ap, err := parseAddr("listen", network, address, true)
	if err != nil {
		return nil, err
	}
	if isUDP(network) {
		return nil, &net.OpError{Op: "listen", Net: network, Err: net.UnknownNetworkError(network + " (use ListenPacket)")}
	}
	return s.tcp.Listen(ap, -1) // clamped to net.core.somaxconn, as Go's net package asks for
}

// ListenConfig holds the socket options of a listener, the counterpart of
// net.ListenConfig: Listen(ctx, network, address) as net.ListenConfig has.
type ListenConfig struct {
	Stack *Stack
	// Backlog is listen(2)'s backlog, clamped to net.core.somaxconn; 0
	// means somaxconn, as Go's net package asks for.
	Backlog int
	// ReusePort is SO_REUSEPORT: several listeners on one address and
	// port, each with its own SYN queue, accept queue and backlog; new
	// connections are spread over them by flow hash. Every member must
	// set it (EADDRINUSE otherwise). With net.ipv4.tcp_migrate_req=1 a
	// member that closes hands its pending connections to the others.
	// A member that calls (*Listener).SetIncomingCPU(i) takes the
	// connections shard i receives instead (SO_INCOMING_CPU): one member
	// per shard, each with its own accept loop, keeps a connection's
	// handshake and accept beside the shard that carries it.
	ReusePort bool
}

// Listen announces on a local address as Stack.Listen does, with lc's options.
func (lc *ListenConfig) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	if err := ctx.Err(); err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	ap, err := parseAddr("listen", network, address, true)
	if err != nil {
		return nil, err
	}
	if isUDP(network) {
		return nil, &net.OpError{Op: "listen", Net: network, Err: net.UnknownNetworkError(network + " (use ListenPacket)")}
	}
	backlog := lc.Backlog
	if backlog <= 0 {
		backlog = -1 // clamped to net.core.somaxconn
	}
	return lc.Stack.tcp.ListenOpts(ap, backlog, tcp.ListenOptions{ReusePort: lc.ReusePort})
}

// ListenUDP opens a UDP socket bound to addr (an unspecified address: every
// address; port 0: an ephemeral port from ip_local_port_range).
func (s *Stack) ListenUDP(addr netip.AddrPort) (*UDPConn, error) {
	return s.udp.Listen(addr)
}

// ListenPacket opens a UDP socket the way net.ListenPacket does ("udp" or
// "udp4", ":53" or "10.0.0.2:53"). The result is a *UDPConn.
func (s *Stack) ListenPacket(network, address string) (net.PacketConn, error) {
	ap, err := parseAddr("listen", network, address, true)
	if err != nil {
		return nil, err
	}
	if !isUDP(network) {
		return nil, &net.OpError{Op: "listen", Net: network, Err: net.UnknownNetworkError(network)}
	}
	return s.udp.Listen(ap)
}

// Dial connects to address ("10.0.0.1:80") over the stack.
func (s *Stack) Dial(network, address string) (net.Conn, error) {
	return s.DialContext(context.Background(), network, address)
}

// DialContext connects to address, giving up when ctx is done as
// net.Dialer does: at once, before any SYN, if it already is, and without
// leaving a socket behind if it ends during the handshake. The error then
// wraps context.Canceled or, for a deadline, is a timeout matching
// context.DeadlineExceeded and os.ErrDeadlineExceeded. It fits
// http.Transport.DialContext. Only IP literals are accepted: the stack has
// no resolver of its own. "udp" and "udp4" give a connected *UDPConn (also
// a net.PacketConn, which is what net.Resolver wants of a DNS connection:
// net.Resolver{PreferGo: true, Dial: st.DialContext} resolves over the
// stack).
func (s *Stack) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	ap, err := parseAddr("dial", network, address, false)
	if err != nil {
		return nil, err
	}
	if isUDP(network) {
		if err := ctx.Err(); err != nil {
			return nil, &net.OpError{Op: "dial", Net: network, Addr: net.UDPAddrFromAddrPort(ap), Err: err}
		}
		c, err := s.udp.Dial(netip.AddrPort{}, ap)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	c, err := s.tcp.Dial(ctx, netip.AddrPort{}, ap)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func parseAddr(op, network, address string, listen bool) (netip.AddrPort, error) {
	fail := func(err error) (netip.AddrPort, error) {
		return netip.AddrPort{}, &net.OpError{Op: op, Net: network, Err: err}
	}
	if network != "tcp" && network != "tcp4" && !isUDP(network) {
		return fail(net.UnknownNetworkError(network))
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return fail(err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fail(&net.AddrError{Err: "invalid port", Addr: address})
	}
	if host == "" {
		if !listen {
			return fail(&net.AddrError{Err: "missing host", Addr: address})
		}
		return netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(p)), nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil || !a.Unmap().Is4() {
		return fail(&net.AddrError{Err: fmt.Sprintf("not an IPv4 literal (the stack has no resolver)"), Addr: address})
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(p)), nil
}

func isUDP(network string) bool { return network == "udp" || network == "udp4" }
