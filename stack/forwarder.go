package stack

import (
	"net/netip"

	"github.com/tapstack/tapstack/tcp"
	"github.com/tapstack/tapstack/udp"
)

// TCPForwarder takes TCP connections to any address and port no listener
// holds (gVisor's tcp.Forwarder): see NewTCPForwarder.
type TCPForwarder = tcp.Forwarder

// TCPForwarderRequest is one connection attempt offered to a TCPForwarder's
// handler: ID gives the original four-tuple; Accept (SYN-ACK, then the
// established connection), Reset (RST: connection refused) or Drop
// (silence) decides it.
type TCPForwarderRequest = tcp.ForwarderRequest

// UDPForwarder takes the datagrams of flows no socket holds (gVisor's
// udp.Forwarder): see NewUDPForwarder.
type UDPForwarder = udp.Forwarder

// UDPForwarderRequest is the first datagram of a flow offered to a
// UDPForwarder's handler; CreateEndpoint opens the flow's socket.
type UDPForwarderRequest = udp.ForwarderRequest

// AddLocalRoute makes every address of p local, as `ip route add local p
// dev lo` does (Linux's AnyIP): packets to them are delivered to the
// transports instead of being dropped as someone else's. With a forwarder,
// that is how a stack becomes a transparent proxy for a range: the peers
// route p to the stack's link, and NewTCPForwarder/NewUDPForwarder take
// whatever arrives. It needs an attached link (ErrNoLink otherwise).
func (s *Stack) AddLocalRoute(p netip.Prefix) error {
	ip := s.ipLayer()
	if ip == nil {
		return ErrNoLink
	}
	return ip.AddLocalRoute(p)
}

// NewTCPForwarder installs the stack's TCP forwarder: a SYN that no
// listener takes goes to handler, on a goroutine of its own, with its
// original destination, before the peer has seen an answer. maxInFlight
// bounds the handshakes in progress; it is the forwarder's SYN queue, with
// a listener's counters and syncookies (net.ipv4.tcp_syncookies), and ss
// (Sockets) lists it as a LISTEN socket on 0.0.0.0:0. One per stack.
func (s *Stack) NewTCPForwarder(maxInFlight int, handler func(*TCPForwarderRequest)) (*TCPForwarder, error) {
	return s.tcp.NewForwarder(maxInFlight, handler)
}

// NewUDPForwarder installs the stack's UDP forwarder: the first datagram
// of each flow that no socket takes is offered to handler, on the receive
// path (it must not block); its CreateEndpoint opens the flow's socket,
// bound to the destination the peer used and connected to the peer. A
// flow it leaves alone is dropped without an ICMP error. One per stack.
func (s *Stack) NewUDPForwarder(handler func(*UDPForwarderRequest)) (*UDPForwarder, error) {
	return s.udp.NewForwarder(handler)
}
