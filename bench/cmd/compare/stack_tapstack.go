package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/stack"
)

func init() {
	registerStack(&stackDef{Name: "tapstack", Label: "tapstack (TAP)", TAP: true, Listen: listenTapstack, ListenPacket: listenPacketTapstack,
		CheckCC: checkTapstackCC, DefaultCC: tapstackDefaultCC, Forward: forwardTapstack})
}

// tapstackDefaultCC is net.ipv4.tcp_congestion_control of a stack built
// with no sysctls.
func tapstackDefaultCC() string {
	s, err := stack.New(stack.Config{})
	if err != nil {
		return "unknown"
	}
	defer s.Close()
	name, _ := s.Sysctl(ccSysctl)
	return name
}

const ccSysctl = "net.ipv4.tcp_congestion_control"

// tapstackSysctls are the stack's sysctls for congestion control name
// (none for "default": Linux defaults for every sysctl).
func tapstackSysctls(name string) map[string]string {
	if !ccChosen(name) {
		return nil
	}
	return map[string]string{ccSysctl: name}
}

// checkTapstackCC builds a stack with the sysctl, as the server does.
func checkTapstackCC(name string) error {
	s, err := stack.New(stack.Config{Sysctls: tapstackSysctls(name)})
	if err != nil {
		return fmt.Errorf("tapstack cannot run congestion control %q: %w", name, err)
	}
	s.Close()
	return nil
}

// listenTapstack attaches a tapstack to a fresh TAP (with virtio-net
// offloads when c.Offload) and listens with the given backlog; Linux
// defaults for every sysctl but the congestion control (-cc).
func listenTapstack(c serverConfig) (net.Listener, served, error) {
	s, st, err := attachTapstack(c)
	if err != nil {
		return nil, served{}, err
	}
	if c.Reuse > 1 {
		lc := &stack.ListenConfig{Stack: s, Backlog: c.Backlog, ReusePort: true}
		var lns []net.Listener
		for range c.Reuse {
			ln, err := lc.Listen(context.Background(), "tcp", c.Addr.String())
			if err != nil {
				for _, l := range lns {
					l.Close()
				}
				st.Close()
				return nil, served{}, err
			}
			lns = append(lns, ln)
		}
		if c.Reuse == s.Shards() { // one member per shard: SO_INCOMING_CPU, as tapnet.ListenTCP
			for i, ln := range lns {
				ln.(*stack.Listener).SetIncomingCPU(i)
			}
		}
		return fanIn(lns), st, nil
	}
	ln, err := s.ListenTCP(c.Addr, c.Backlog)
	if err != nil {
		st.Close()
		return nil, served{}, err
	}
	return ln, st, nil
}

// listenPacketTapstack is listenTapstack for the UDP workloads: a UDP
// socket on c.Addr (the stack's SO_RCVBUF default, net.core.rmem_default).
func listenPacketTapstack(c serverConfig) (net.PacketConn, served, error) {
	s, st, err := attachTapstack(c)
	if err != nil {
		return nil, served{}, err
	}
	pc, err := s.ListenUDP(c.Addr)
	if err != nil {
		st.Close()
		return nil, served{}, err
	}
	return pc, st, nil
}

// forwardTapstack attaches a tapstack to a fresh TAP, makes fwdRange
// local (AnyIP) and installs the TCP forwarder: every SYN into the range
// reaches a handler, on a goroutine of its own, which accepts it (SYN-ACK,
// then the established Conn) and hands the connection to h.
func forwardTapstack(c serverConfig, h *fwdHolder) (served, error) {
	s, st, err := attachTapstack(c)
	if err != nil {
		return served{}, err
	}
	if err := s.AddLocalRoute(fwdRange); err != nil {
		st.Close()
		return served{}, err
	}
	_, err = s.NewTCPForwarder(fwdMaxInFlight, func(r *stack.TCPForwarderRequest) {
		conn, err := r.Accept()
		if err != nil {
			h.fail(err)
			return
		}
		h.serve(conn)
	})
	if err != nil {
		st.Close()
		return served{}, err
	}
	return st, nil
}

// attachTapstack builds the stack on the TAP, configures the TAP's kernel
// side and a default route; served's counters are every counter of the
// stack under its nstat name.
func attachTapstack(c serverConfig) (*stack.Stack, served, error) {
	s, err := stack.New(stack.Config{Sysctls: tapstackSysctls(c.CC)})
	if err != nil {
		return nil, served{}, err
	}
	var link driver.Link
	if c.Offload {
		link, err = driver.OpenTAPOffload(tapName, max(c.Queues, 1))
	} else {
		link, err = driver.OpenTAP(tapName, max(c.Queues, 1))
	}
	if err != nil {
		s.Close()
		return nil, served{}, fmt.Errorf("open TAP: %w", err)
	}
	if err := s.Attach(link, tapStackAddr); err != nil {
		link.Close()
		s.Close()
		return nil, served{}, err
	}
	if err := configureTAPPeer(c.TxQueueLen); err != nil {
		s.Close()
		return nil, served{}, err
	}
	if err := s.AddRoute(netip.MustParsePrefix("0.0.0.0/0"), tapKernelAddr.Addr()); err != nil {
		s.Close()
		return nil, served{}, err
	}
	counters := func() map[string]uint64 {
		m := map[string]uint64{}
		for _, c := range s.Stats().Counters {
			m[c.Name] = c.Value
		}
		return m
	}
	// A connection takes the sysctl's algorithm when it is created; the
	// library shows no per-connection name, so the stack's value at accept
	// time is what the accepted connection runs.
	connCC := func(net.Conn) (string, error) { return s.Sysctl(ccSysctl) }
	return s, served{Counters: counters, ConnCC: connCC, Close: func() {
		if dir := os.Getenv("COMPARE_PROFILE_DIR"); dir != "" {
			// With the profiles, the counters say what the stack did.
			if f, err := os.CreateTemp(dir, "tapstack-*.nstat"); err == nil {
				s.Stats().WriteNstat(f)
				f.Close()
			}
		}
		s.Close()
	}}, nil
}
