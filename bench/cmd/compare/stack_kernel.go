package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

func init() {
	registerStack(&stackDef{Name: "kernel", Label: "Linux kernel (veth)", Listen: listenKernel, ListenPacket: listenPacketKernel,
		CheckCC: checkKernelCC, DefaultCC: kernelDefaultCC})
}

// kernelDefaultCC is net.ipv4.tcp_congestion_control (new namespaces
// inherit the host's).
func kernelDefaultCC() string {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_congestion_control")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// listenKernel listens with kernel sockets; a second listen(2) on the
// listening socket sets the backlog (Go always passes somaxconn). With
// -cc the listener gets TCP_CONGESTION and accepted sockets inherit it.
func listenKernel(c serverConfig) (net.Listener, served, error) {
	if c.Reuse > 1 {
		var lns []net.Listener
		for range c.Reuse {
			ln, _, err := listenKernelOne(c, true)
			if err != nil {
				for _, l := range lns {
					l.Close()
				}
				return nil, served{}, err
			}
			lns = append(lns, ln)
		}
		return fanIn(lns), served{Close: func() {}, Counters: readKernelTCPCounters, ConnCC: kernelConnCC}, nil
	}
	return listenKernelOne(c, false)
}

func listenKernelOne(c serverConfig, reuse bool) (net.Listener, served, error) {
	cc := ccControl(c.CC)
	control := cc
	if reuse {
		control = func(network, address string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) }); err != nil {
				return err
			}
			if serr != nil {
				return serr
			}
			if cc != nil {
				return cc(network, address, rc)
			}
			return nil
		}
	}
	ln, err := (&net.ListenConfig{Control: control}).Listen(context.Background(), "tcp4", c.Addr.String())
	if err != nil {
		return nil, served{}, err
	}
	raw, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		ln.Close()
		return nil, served{}, err
	}
	var lerr error
	if err := raw.Control(func(fd uintptr) { lerr = unix.Listen(int(fd), c.Backlog) }); err != nil {
		lerr = err
	}
	if lerr != nil {
		ln.Close()
		return nil, served{}, fmt.Errorf("listen backlog %d: %w", c.Backlog, lerr)
	}
	// The server netns has no other TCP than this server's.
	return ln, served{Close: func() {}, Counters: readKernelTCPCounters, ConnCC: kernelConnCC}, nil
}

// listenPacketKernel is a kernel UDP socket (SO_RCVBUF: the netns's
// net.core.rmem_default); the server netns has no other UDP or IP traffic,
// so its snmp counters are the socket's.
func listenPacketKernel(c serverConfig) (net.PacketConn, served, error) {
	pc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(c.Addr))
	if err != nil {
		return nil, served{}, err
	}
	return pc, served{Close: func() {}, Counters: readKernelTCPCounters}, nil
}
