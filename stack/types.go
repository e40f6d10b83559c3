package stack

import (
	"github.com/tapstack/tapstack/clock"
	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/netdev"
	"github.com/tapstack/tapstack/tcp"
	"github.com/tapstack/tapstack/udp"
)

// The types below are defined by the layer that implements them; stack
// names them so that a program written against stack needs no import of
// tcp, udp or netdev just to name what stack returns. They are aliases, so
// a *Listener is a *tcp.Listener: its methods are documented in its own
// package (go doc tcp.Listener).

// Link is what Attach takes: an Ethernet link with one or more queues.
// Package driver provides a TAP device (driver.OpenTAP, or
// driver.OpenTAPOffload with virtio-net offloads), an in-memory pipe pair
// for tests (driver.NewPipe), a pcap tee and an impairing wrapper.
type Link = driver.Link

// Clock is what Config.Clock takes: the source of every timer and
// deadline. Package clock provides the wall clock (clock.Real) and a
// virtual clock for deterministic tests (clock.NewVirtual).
type Clock = clock.Clock

// Listener is a TCP listening socket, what ListenTCP returns and what
// Listen and ListenConfig.Listen return as a net.Listener. Beyond
// net.Listener it has AcceptTCP, AddrPort, SetDeadline, SetBacklog
// (listen(2) again), SetDeferAccept (TCP_DEFER_ACCEPT) and QueueLens (the
// SYN and accept queue lengths).
type Listener = tcp.Listener

// Conn is a TCP connection: what Dial, DialContext and Listener.Accept
// return as a net.Conn, and Listener.AcceptTCP as itself. Beyond net.Conn
// it has CloseRead, CloseWrite, SetNoDelay, SetKeepAlive,
// SetKeepAlivePeriod, SetLinger, SetReadBuffer and SetWriteBuffer, as
// *net.TCPConn has.
type Conn = tcp.Conn

// SocketInfo is one TCP socket as `ss -tanoi` shows it, an element of
// Sockets.
type SocketInfo = tcp.SocketInfo

// UDPConn is a UDP socket, what ListenUDP returns and what ListenPacket
// (as a net.PacketConn) and DialContext with "udp" (as a connected
// net.Conn) return. Beyond those interfaces it has the AddrPort forms of
// ReadFrom and WriteTo, ReadMsgUDP, SetReadBuffer and SetWriteBuffer
// (SO_RCVBUF, SO_SNDBUF), and SetPMTUDiscover (IP_MTU_DISCOVER) with
// PathMTU.
type UDPConn = udp.Conn

// UDPSocketInfo is one UDP socket as `ss -uanm` shows it, an element of
// UDPSockets.
type UDPSocketInfo = udp.SocketInfo

// SoftnetStat is one shard's line of /proc/net/softnet_stat, an element of
// Stats.Softnet.
type SoftnetStat = netdev.SoftnetStat
