// Command echo runs tapstack on a TAP device and echoes every TCP connection
// and every UDP datagram on -port (RFC 862). The stack answers ping on -addr. On SIGUSR1 and at
// exit it prints every counter (nstat style) and the socket listing (ss
// style). With -accept=false it never accepts, so a user can watch the
// accept queue and the SYN queue fill (ss: Recv-Q/Send-Q; nstat:
// TcpExtListenOverflows, TcpExtListenDrops).
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"

	"github.com/tapstack/tapstack/examples/internal/tapnet"
	"github.com/tapstack/tapstack/stack"
	"github.com/tapstack/tapstack/udp"
)

func main() {
	var f tapnet.Flags
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	f.Register(fs)
	port := fs.Int("port", 7, "TCP and UDP port to echo on")
	backlog := fs.Int("backlog", 4096, "listen(2) backlog (clamped by net.core.somaxconn)")
	accept := fs.Bool("accept", true, "accept connections (false: never accept, to watch the queues fill)")
	reuseport := fs.Int("reuseport", 1, "SO_REUSEPORT listeners on the port, each with its own queues and accept loop")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if *port < 1 || *port > 65535 {
		tapnet.Exit("echo", tapnet.UsageError{Err: fmt.Errorf("-port %d: want 1..65535", *port)})
	}
	if *backlog < 0 {
		tapnet.Exit("echo", tapnet.UsageError{Err: fmt.Errorf("-backlog %d: want ≥ 0", *backlog)})
	}
	if *reuseport < 1 || *reuseport > 1024 {
		tapnet.Exit("echo", tapnet.UsageError{Err: fmt.Errorf("-reuseport %d: want 1..1024", *reuseport)})
	}
	env, err := f.Up()
	if err != nil {
		tapnet.Exit("echo", err)
	}
	lns, err := env.ListenTCP(netip.AddrPortFrom(env.Addr.Addr(), uint16(*port)), *backlog, *reuseport)
	if err != nil {
		env.Close()
		tapnet.Exit("echo", err)
	}
	closeAll := func() {
		for _, ln := range lns {
			ln.Close()
		}
	}
	pc, err := env.Stack.ListenUDP(netip.AddrPortFrom(env.Addr.Addr(), uint16(*port)))
	if err != nil {
		closeAll()
		env.Close()
		tapnet.Exit("echo", err)
	}
	go serveUDP(pc)
	log.Printf("tapstack echo: %s on %s, TCP echo on port %d (accept=%v, %d listener(s)), UDP echo on port %d; SIGUSR1 prints counters", env.Addr, f.Tap, *port, *accept, len(lns), *port)
	if f.NetNS != "" {
		log.Printf("try: ip netns exec %s ping -c 3 %s", f.NetNS, env.Addr.Addr())
		log.Printf("     echo hello | ip netns exec %s nc -q1 %s %d", f.NetNS, env.Addr.Addr(), *port)
		log.Printf("     echo hello | ip netns exec %s nc -u -w1 %s %d", f.NetNS, env.Addr.Addr(), *port)
	}
	if *accept {
		for _, ln := range lns {
			go serve(ln)
		}
	}
	sig := env.Wait(os.Stdout)
	log.Printf("%v: shutting down", sig)
	env.Report(os.Stdout)
	closeAll()
	pc.Close()
	env.Close()
}

// serveUDP sends every datagram back to its sender.
func serveUDP(pc *stack.UDPConn) {
	buf := make([]byte, udp.MaxPayload)
	for {
		n, from, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		pc.WriteToUDPAddrPort(buf[:n], from)
	}
}

func serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}
