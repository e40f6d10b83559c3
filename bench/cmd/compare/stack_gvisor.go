package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"
	"gvisor.dev/gvisor/pkg/tcpip/link/tun"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	gudp "gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

func init() {
	registerStack(&stackDef{Name: "gvisor", Label: "gVisor netstack (TAP)", TAP: true, Listen: listenGVisor, ListenPacket: listenPacketGVisor,
		CheckCC: checkGVisorCC, DefaultCC: gvisorDefaultCC, Forward: forwardGVisor})
}

// newGVisorStack is a stack with IPv4, ARP, TCP and UDP.
func newGVisorStack() *stack.Stack {
	return stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, gudp.NewProtocol},
	})
}

// setGVisorCC makes name the algorithm of the stack's new endpoints.
func setGVisorCC(s *stack.Stack, name string) error {
	if !ccChosen(name) {
		return nil
	}
	opt := tcpip.CongestionControlOption(name)
	if e := s.SetTransportProtocolOption(tcp.ProtocolNumber, &opt); e != nil {
		var avail tcpip.TCPAvailableCongestionControlOption
		_ = s.TransportProtocolOption(tcp.ProtocolNumber, &avail)
		return fmt.Errorf("gvisor cannot run congestion control %q: %s (available: %s)", name, e, avail)
	}
	return nil
}

func checkGVisorCC(name string) error {
	s := newGVisorStack()
	defer func() { s.Close(); s.Wait() }()
	return setGVisorCC(s, name)
}

func gvisorDefaultCC() string {
	s := newGVisorStack()
	defer func() { s.Close(); s.Wait() }()
	var cc tcpip.CongestionControlOption
	if e := s.TransportProtocolOption(tcp.ProtocolNumber, &cc); e != nil {
		return "unknown"
	}
	return string(cc)
}

// listenGVisor builds a gVisor stack on an fdbased endpoint over the TAP
// (readv dispatch: a TAP fd is not a socket) and listens with the given
// backlog. SACK and receive-buffer moderation are on, as in Linux.
func listenGVisor(c serverConfig) (net.Listener, served, error) {
	if c.Reuse > 1 {
		return nil, served{}, fmt.Errorf("-reuseport %d: gVisor's gonet has no SO_REUSEPORT listener groups", c.Reuse)
	}
	s, st, err := attachGVisor(c)
	if err != nil {
		return nil, served{}, err
	}
	fail := func(what string, e tcpip.Error) (net.Listener, served, error) {
		st.Close()
		return nil, served{}, fmt.Errorf("gvisor %s: %s", what, e)
	}
	var wq waiter.Queue
	ep, e := s.NewEndpoint(tcp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if e != nil {
		return fail("NewEndpoint", e)
	}
	if e := ep.Bind(gvisorFullAddr(c.Addr)); e != nil {
		ep.Close()
		return fail("Bind", e)
	}
	if e := ep.Listen(c.Backlog); e != nil {
		ep.Close()
		return fail("Listen", e)
	}
	ln := &gvisorListener{ep: ep, wq: &wq, closed: make(chan struct{})}
	return ln, st, nil
}

// listenPacketGVisor is a gonet UDP socket on c.Addr with SO_RCVBUF set to
// Linux's default (net.core.rmem_default, 212992 bytes) instead of
// gVisor's 32 KiB, so that no stack's socket queue is smaller than the
// kernel's. gVisor charges payload bytes to it, Linux and tapstack
// truesize: its queue holds more datagrams than theirs.
func listenPacketGVisor(c serverConfig) (net.PacketConn, served, error) {
	s, st, err := attachGVisor(c)
	if err != nil {
		return nil, served{}, err
	}
	fail := func(what string, e tcpip.Error) (net.PacketConn, served, error) {
		st.Close()
		return nil, served{}, fmt.Errorf("gvisor %s: %s", what, e)
	}
	var wq waiter.Queue
	ep, e := s.NewEndpoint(gudp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if e != nil {
		return fail("NewEndpoint udp", e)
	}
	ep.SocketOptions().SetReceiveBufferSize(linuxRmemDefault, true)
	if e := ep.Bind(gvisorFullAddr(c.Addr)); e != nil {
		ep.Close()
		return fail("Bind udp", e)
	}
	return gonet.NewUDPConn(&wq, ep), st, nil
}

// forwardGVisor builds a gVisor stack on the TAP whose NIC takes packets
// to any address (promiscuous) and sends from any (spoofing), with a
// tcp.Forwarder as TCP's default handler: a SYN no endpoint takes starts a
// handler goroutine, whose CreateEndpoint sends the SYN-ACK and waits for
// the handshake; Complete frees the in-flight slot, and the connection
// goes to h as a gonet.TCPConn (with its endpoint, for ConnCC).
func forwardGVisor(c serverConfig, h *fwdHolder) (served, error) {
	s, st, err := attachGVisor(c)
	if err != nil {
		return served{}, err
	}
	fail := func(what string, e tcpip.Error) (served, error) {
		st.Close()
		return served{}, fmt.Errorf("gvisor %s: %s", what, e)
	}
	if e := s.SetPromiscuousMode(1, true); e != nil {
		return fail("SetPromiscuousMode", e)
	}
	if e := s.SetSpoofing(1, true); e != nil {
		return fail("SetSpoofing", e)
	}
	fwd := tcp.NewForwarder(s, 0, fwdMaxInFlight, func(r *tcp.ForwarderRequest) {
		wq := new(waiter.Queue)
		ep, e := r.CreateEndpoint(wq)
		r.Complete(false)
		if e != nil {
			h.fail(errors.New(e.String()))
			return
		}
		h.serve(&gvisorConn{TCPConn: gonet.NewTCPConn(wq, ep), ep: ep})
	})
	s.SetTransportProtocolHandler(tcp.ProtocolNumber, fwd.HandlePacket)
	return st, nil
}

// linuxRmemDefault is net.core.rmem_default of Linux (and of tapstack).
const linuxRmemDefault = 212992

func gvisorFullAddr(a netip.AddrPort) tcpip.FullAddress {
	return tcpip.FullAddress{Addr: tcpip.AddrFrom4(a.Addr().As4()), Port: a.Port()}
}

// attachGVisor builds the stack on the TAP with its address and default
// route; served's counters are its TCP's and, under Linux's nstat names,
// its UDP's and link's.
func attachGVisor(c serverConfig) (*stack.Stack, served, error) {
	// One fd: tun.OpenTAP cannot open a multi-queue TAP, so -queues applies
	// to tapstack only.
	fd, err := tun.OpenTAP(tapName)
	if err != nil {
		return nil, served{}, fmt.Errorf("open TAP: %w", err)
	}
	fds := []int{fd}
	closeFDs := func() { unix.Close(fd) }
	if err := configureTAPPeer(c.TxQueueLen); err != nil {
		closeFDs()
		return nil, served{}, err
	}
	var mac [6]byte
	_, _ = rand.Read(mac[:])
	mac[0] = mac[0]&^1 | 2 // unicast, locally administered
	linkEP, err := fdbased.New(&fdbased.Options{
		FDs:                fds,
		MTU:                1500,
		EthernetHeader:     true,
		Address:            tcpip.LinkAddress(mac[:]),
		PacketDispatchMode: fdbased.Readv,
	})
	if err != nil {
		closeFDs()
		return nil, served{}, err
	}
	s := newGVisorStack()
	cleanup := func() { s.Close(); s.Wait() }
	fail := func(what string, e tcpip.Error) (*stack.Stack, served, error) {
		cleanup()
		return nil, served{}, fmt.Errorf("gvisor %s: %s", what, e)
	}
	sack := tcpip.TCPSACKEnabled(true)
	if e := s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack); e != nil {
		return fail("SACK", e)
	}
	moderate := tcpip.TCPModerateReceiveBufferOption(true)
	if e := s.SetTransportProtocolOption(tcp.ProtocolNumber, &moderate); e != nil {
		return fail("moderate rcvbuf", e)
	}
	if err := setGVisorCC(s, c.CC); err != nil {
		cleanup()
		return nil, served{}, err
	}
	if e := s.CreateNIC(1, linkEP); e != nil {
		return fail("CreateNIC", e)
	}
	addr := tcpip.AddrFrom4(tapStackAddr.Addr().As4())
	if e := s.AddProtocolAddress(1, tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: addr, PrefixLen: tapStackAddr.Bits()},
	}, stack.AddressProperties{}); e != nil {
		return fail("AddProtocolAddress", e)
	}
	s.SetRouteTable([]tcpip.Route{{
		Destination: header.IPv4EmptySubnet,
		Gateway:     tcpip.AddrFrom4(tapKernelAddr.Addr().As4()),
		NIC:         1,
	}})
	counters := func() map[string]uint64 {
		st := s.Stats()
		t, u, ip := st.TCP, st.UDP, st.IP
		return map[string]uint64{"TcpOutSegs": t.SegmentsSent.Value(), "TcpRetransSegs": t.Retransmits.Value(),
			"TcpExtTCPTimeouts": t.Timeouts.Value(),
			"NetdevRxFrames":    st.NICs.Rx.Packets.Value(),
			"IpInReceives":      ip.PacketsReceived.Value(),
			"IpInHdrErrors":     ip.MalformedPacketsReceived.Value(),
			"IpInAddrErrors":    ip.InvalidDestinationAddressesReceived.Value(),
			// gVisor counts a datagram before its receive-buffer check, Linux after.
			"UdpInDatagrams":  u.PacketsReceived.Value() - u.ReceiveBufferErrors.Value(),
			"UdpNoPorts":      u.UnknownPortErrors.Value(),
			"UdpRcvbufErrors": u.ReceiveBufferErrors.Value(),
			"UdpInErrors":     u.ReceiveBufferErrors.Value() + u.MalformedPacketsReceived.Value() + u.ChecksumErrors.Value(),
			"UdpInCsumErrors": u.ChecksumErrors.Value(),
		}
	}
	return s, served{Close: cleanup, Counters: counters, ConnCC: gvisorConnCC}, nil
}

// gvisorListener accepts as gonet's listener does but keeps each
// connection's endpoint, whose congestion control the server reads back.
type gvisorListener struct {
	ep        tcpip.Endpoint
	wq        *waiter.Queue
	closed    chan struct{}
	closeOnce sync.Once
}

// gvisorConn is a gonet connection with its endpoint.
type gvisorConn struct {
	*gonet.TCPConn
	ep tcpip.Endpoint
}

func (l *gvisorListener) Accept() (net.Conn, error) {
	n, wq, e := l.ep.Accept(nil)
	if isWouldBlock(e) {
		// Register before trying again, so no connection slips in between.
		entry, ready := waiter.NewChannelEntry(waiter.ReadableEvents)
		l.wq.EventRegister(&entry)
		defer l.wq.EventUnregister(&entry)
		for {
			if n, wq, e = l.ep.Accept(nil); !isWouldBlock(e) {
				break
			}
			select {
			case <-l.closed:
				return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: net.ErrClosed}
			case <-ready:
			}
		}
	}
	if e != nil {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: errors.New(e.String())}
	}
	return &gvisorConn{TCPConn: gonet.NewTCPConn(wq, n), ep: n}, nil
}

func isWouldBlock(e tcpip.Error) bool {
	_, ok := e.(*tcpip.ErrWouldBlock)
	return ok
}

func (l *gvisorListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed); l.ep.Close() })
	return nil
}

func (l *gvisorListener) Addr() net.Addr {
	a, e := l.ep.GetLocalAddress()
	if e != nil {
		return &net.TCPAddr{}
	}
	return &net.TCPAddr{IP: net.IP(a.Addr.AsSlice()), Port: int(a.Port)}
}

// gvisorConnCC reads CongestionControlOption of an accepted endpoint.
func gvisorConnCC(c net.Conn) (string, error) {
	gc, ok := c.(*gvisorConn)
	if !ok {
		return "", fmt.Errorf("%T is not a gVisor connection", c)
	}
	var cc tcpip.CongestionControlOption
	if e := gc.ep.GetSockOpt(&cc); e != nil {
		return "", errors.New(e.String())
	}
	return strings.TrimSpace(string(cc)), nil
}
