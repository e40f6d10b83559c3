package main

import (
	"crypto/rand"
	"fmt"
	"net"

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
	"gvisor.dev/gvisor/pkg/waiter"
)

func init() {
	registerStack(&stackDef{Name: "gvisor", Label: "gVisor netstack (TAP)", TAP: true, Listen: listenGVisor})
}

// listenGVisor builds a gVisor stack on an fdbased endpoint over the TAP
// (readv dispatch: a TAP fd is not a socket) and listens with the given
// backlog. SACK and receive-buffer moderation are on, as in Linux.
func listenGVisor(c serverConfig) (net.Listener, served, error) {
	// One fd: tun.OpenTAP cannot open a multi-queue TAP, so -queues applies
	// to tapstack only.
	fd, err := tun.OpenTAP(tapName)
	if err != nil {
		return nil, served{}, fmt.Errorf("open TAP: %w", err)
	}
	fds := []int{fd}
	closeFDs := func() { unix.Close(fd) }
	if err := configureTAPPeer(); err != nil {
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
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol},
	})
	cleanup := func() { s.Close(); s.Wait() }
	fail := func(what string, e tcpip.Error) (net.Listener, served, error) {
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

	var wq waiter.Queue
	ep, e := s.NewEndpoint(tcp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if e != nil {
		return fail("NewEndpoint", e)
	}
	if e := ep.Bind(tcpip.FullAddress{Addr: addr, Port: c.Addr.Port()}); e != nil {
		ep.Close()
		return fail("Bind", e)
	}
	if e := ep.Listen(c.Backlog); e != nil {
		ep.Close()
		return fail("Listen", e)
	}
	counters := func() map[string]uint64 {
		t := s.Stats().TCP
		return map[string]uint64{"TcpOutSegs": t.SegmentsSent.Value(), "TcpRetransSegs": t.Retransmits.Value(),
			"TcpExtTCPTimeouts": t.Timeouts.Value()}
	}
	return gonet.NewTCPListener(s, &wq, ep), served{Close: cleanup, Counters: counters}, nil
}
