// Command tproxy is a tiny transparent proxy in the style of tun2socks:
// tapstack runs on a TAP device with every address of -range made local
// (AnyIP), and its forwarder takes every TCP connection and UDP flow the
// kernel's clients send into that range, whatever the address and port,
// and splices each to -upstream through this process's own (kernel)
// network. A connection is answered only once the upstream accepted it: an
// upstream that refuses makes the client's connect fail with "connection
// refused", as if the destination had refused it itself.
//
//	tproxy -netns tp -range 10.99.0.0/16 -upstream 127.0.0.1:8080
//	ip netns exec tp curl http://10.99.1.2/    # served by 127.0.0.1:8080
//
// With -netns, the namespace's kernel gets a route for -range via -addr.
// On SIGUSR1 and at exit it prints the counters and sockets, the
// forwarder's SYN queue (SYN-RECV rows) among them.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/tapstack/tapstack/examples/internal/tapnet"
	"github.com/tapstack/tapstack/stack"
	"github.com/tapstack/tapstack/udp"
)

// udpIdle is how long a UDP flow lives without a datagram either way (the
// kernel's conntrack keeps an unreplied UDP flow 30 s, a replied one 120 s).
const udpIdle = 60 * time.Second

func main() {
	var f tapnet.Flags
	fs := flag.NewFlagSet("tproxy", flag.ContinueOnError)
	f.Register(fs)
	rng := fs.String("range", "10.99.0.0/16", "destinations to take: every address in it is made local (ip route add local)")
	upstream := fs.String("upstream", "", "host:port every TCP connection is spliced to (required)")
	udpUpstream := fs.String("udp-upstream", "", "host:port every UDP flow is relayed to (empty: UDP flows are dropped)")
	maxInFlight := fs.Int("max-inflight", 512, "handshakes in progress at most (the forwarder's SYN queue)")
	dialTimeout := fs.Duration("dial-timeout", 5*time.Second, "how long to wait for the upstream before refusing the client")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	prefix, err := netip.ParsePrefix(*rng)
	if err != nil || !prefix.Addr().Is4() {
		tapnet.Exit("tproxy", tapnet.UsageError{Err: fmt.Errorf("-range %q: want an IPv4 prefix such as 10.99.0.0/16", *rng)})
	}
	if _, _, err := net.SplitHostPort(*upstream); err != nil {
		tapnet.Exit("tproxy", tapnet.UsageError{Err: fmt.Errorf("-upstream %q: want host:port", *upstream)})
	}
	if *udpUpstream != "" {
		if _, _, err := net.SplitHostPort(*udpUpstream); err != nil {
			tapnet.Exit("tproxy", tapnet.UsageError{Err: fmt.Errorf("-udp-upstream %q: want host:port", *udpUpstream)})
		}
	}
	if *maxInFlight < 1 {
		tapnet.Exit("tproxy", tapnet.UsageError{Err: fmt.Errorf("-max-inflight %d: want ≥ 1", *maxInFlight)})
	}
	env, err := f.Up()
	if err != nil {
		tapnet.Exit("tproxy", err)
	}
	if err := env.Stack.AddLocalRoute(prefix.Masked()); err != nil {
		env.Close()
		tapnet.Exit("tproxy", err)
	}
	if f.NetNS != "" {
		if err := env.IP("route", "replace", prefix.Masked().String(), "via", env.Addr.Addr().String(), "dev", env.Dev); err != nil {
			env.Close()
			tapnet.Exit("tproxy", err)
		}
	}
	p := &proxy{upstream: *upstream, udpUpstream: *udpUpstream, dialTimeout: *dialTimeout}
	fwd, err := env.Stack.NewTCPForwarder(*maxInFlight, p.tcp)
	if err != nil {
		env.Close()
		tapnet.Exit("tproxy", err)
	}
	ufwd, err := env.Stack.NewUDPForwarder(p.udp)
	if err != nil {
		env.Close()
		tapnet.Exit("tproxy", err)
	}
	log.Printf("tapstack tproxy: %s on %s takes %s, TCP to %s, UDP to %s; SIGUSR1 prints counters",
		env.Addr, f.Tap, prefix.Masked(), *upstream, orNone(*udpUpstream))
	if f.NetNS != "" {
		log.Printf("try: ip netns exec %s curl http://%s/", f.NetNS, netip.AddrFrom4(prefix.Masked().Addr().As4()).Next())
	}
	sig := env.Wait(os.Stdout)
	log.Printf("%v: shutting down (%d TCP connections spliced, %d refused, %d UDP flows)", sig, p.spliced.Load(), p.refused.Load(), p.flows.Load())
	env.Report(os.Stdout)
	fwd.Close()
	ufwd.Close()
	env.Close()
}

func orNone(s string) string {
	if s == "" {
		return "nowhere (dropped)"
	}
	return s
}

type proxy struct {
	upstream, udpUpstream   string
	dialTimeout             time.Duration
	spliced, refused, flows atomic.Int64
}

// tcp decides a connection attempt: dial the upstream first, and answer
// the client only if it took the connection.
func (p *proxy) tcp(r *stack.TCPForwarderRequest) {
	local, remote := r.ID()
	up, err := net.DialTimeout("tcp", p.upstream, p.dialTimeout)
	if err != nil {
		p.refused.Add(1)
		log.Printf("%v → %v: upstream %s: %v: refusing", remote, local, p.upstream, err)
		r.Reset()
		return
	}
	c, err := r.Accept()
	if err != nil {
		up.Close()
		log.Printf("%v → %v: handshake: %v", remote, local, err)
		return
	}
	p.spliced.Add(1)
	splice(c, up.(*net.TCPConn))
}

// splice copies both ways, passing each side's FIN on as a half-close.
func splice(c *stack.Conn, up *net.TCPConn) {
	done := make(chan struct{})
	go func() {
		io.Copy(up, c)
		up.CloseWrite()
		close(done)
	}()
	io.Copy(c, up)
	c.CloseWrite()
	<-done
	c.Close()
	up.Close()
}

// udp opens the flow's endpoint and relays it to the UDP upstream; it runs
// on the receive path, so the work goes to goroutines.
func (p *proxy) udp(r *stack.UDPForwarderRequest) {
	if p.udpUpstream == "" {
		return // no endpoint: the datagram is dropped (UdpNoPorts)
	}
	c, err := r.CreateEndpoint()
	if err != nil {
		log.Printf("udp flow: %v", err)
		return
	}
	p.flows.Add(1)
	go p.relayUDP(c)
}

func (p *proxy) relayUDP(c *stack.UDPConn) {
	defer c.Close()
	up, err := net.Dial("udp", p.udpUpstream)
	if err != nil {
		log.Printf("udp flow %v → %v: upstream: %v", c.RemoteAddr(), c.LocalAddr(), err)
		return
	}
	defer up.Close()
	go func() {
		buf := make([]byte, udp.MaxPayload)
		for {
			up.SetReadDeadline(time.Now().Add(udpIdle))
			n, err := up.Read(buf)
			if err != nil {
				c.Close() // ends the other direction too
				return
			}
			c.Write(buf[:n])
		}
	}()
	buf := make([]byte, udp.MaxPayload)
	for {
		c.SetReadDeadline(time.Now().Add(udpIdle))
		n, err := c.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, net.ErrClosed) {
				log.Printf("udp flow %v → %v: %v", c.RemoteAddr(), c.LocalAddr(), err)
			}
			up.Close()
			return
		}
		up.Write(buf[:n])
	}
}
