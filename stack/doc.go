// Package stack is tapstack's public face: one userspace IPv4 stack
// (Ethernet with ARP, IPv4 with ICMP and reassembly, TCP and UDP) that
// runs in the calling process on a link it is given, and speaks to the
// program through Go's net interfaces: net.Listener, net.Conn and
// net.PacketConn. It assembles the layers (driver → netdev → ipv4 → tcp,
// udp), names its knobs as Linux's sysctls, and reports what it does as
// nstat counters and ss socket listings.
//
// # Attaching a link
//
// New makes a stack; Attach gives it its one Link and its address, with
// the on-link route; AddRoute adds a default gateway or other routes.
// Package driver provides the links. On a real system that is a TAP
// device (creating one needs root or CAP_NET_ADMIN); the kernel's side
// of it needs an address and to be up, as with any interface:
//
//	tap, err := driver.OpenTAP("tap0", 1) // or driver.OpenTAPOffload for GSO/TSO
//	// ip addr add 10.0.0.1/24 dev tap0 && ip link set tap0 up
//	st, err := stack.New(stack.Config{})
//	defer st.Close()
//	err = st.Attach(tap, netip.MustParsePrefix("10.0.0.2/24"))
//
// In tests two stacks share an in-memory link, the two ends of
// driver.NewPipe (see the package example); driver.Impair and the pipe's
// PipeConfig.Impair add loss, delay and rate limits. Close resets every
// connection and stops everything the stack started.
//
// # TCP and UDP
//
// Listen ("tcp", "tcp4"), ListenPacket ("udp", "udp4"), Dial and
// DialContext (any of the four) take the networks and addresses (":80",
// "10.0.0.2:80") that their namesakes in package net take, so a stack
// plugs into code written for package net:
//
//	ln, err := st.Listen("tcp", ":8080")
//	go http.Serve(ln, handler)
//	c, err := st.Dial("tcp", "10.0.0.1:22")
//	pc, err := st.ListenPacket("udp", ":53")
//	client := &http.Client{Transport: &http.Transport{DialContext: st.DialContext}}
//	r := &net.Resolver{PreferGo: true, Dial: st.DialContext} // DNS over the stack's UDP
//
// Addresses are IP literals: the stack has no resolver of its own, but a
// net.Resolver like the one above resolves over it. Errors are what
// package net returns: a *net.OpError wrapping a syscall.Errno
// (ECONNREFUSED, ETIMEDOUT, EADDRINUSE), net.ErrClosed, or a timeout
// matching os.ErrDeadlineExceeded.
//
// The values behind the interfaces have more: a *Listener (ListenTCP
// returns one, with an explicit listen(2) backlog) shows its queue
// lengths and takes a new backlog; a *Conn has the TCP options of
// *net.TCPConn; a *UDPConn has the socket buffers and path MTU
// discovery. These types are defined by packages tcp and udp; stack's
// names are aliases, so a program need not import those packages.
//
// ListenConfig is the counterpart of net.ListenConfig: it sets the
// listen(2) backlog and SO_REUSEPORT, several listeners on one port, each
// with its own queues and accept loop, among which new connections are
// spread by flow hash — or, for members that call
// Listener.SetIncomingCPU(i) (SO_INCOMING_CPU), given to the member of the
// shard that receives them: Stack.Shards says how many there are.
//
// # Sysctls
//
// Every knob has its Linux name and its /proc/sys syntax:
// Config.Sysctls sets them before the stack starts, SetSysctl and Sysctl
// write and read them while it runs, SysctlNames lists them. The defaults
// are Linux's.
//
//	st, err := stack.New(stack.Config{Sysctls: map[string]string{
//		"net.core.somaxconn":          "4096",
//		"net.ipv4.tcp_max_syn_backlog": "4096",
//		"net.ipv4.tcp_rmem":           "4096 131072 6291456",
//	}})
//	err = st.SetSysctl("net/ipv4/tcp_syncookies", "2") // slashes work too
//	v, err := st.Sysctl("net.ipv4.ip_local_port_range") // "32768\t60999"
//
// # Counters and sockets
//
// Stats takes a snapshot of every counter under the name nstat gives it
// (IpInReceives, TcpExtListenOverflows, UdpRcvbufErrors, ...) with one
// softnet_stat row per input shard; WriteNstat prints it as `nstat -az`
// does and WriteJSON as JSON. Sockets and UDPSockets list the sockets as
// rows, and WriteSockets prints them as `ss -tanoi` does, a listener's
// accept and SYN queues included.
//
// Package metrics exports the same counters, softnet rows and listen
// queues to Prometheus (metrics.NewCollector); package admin serves them,
// with the nstat and ss text and pprof, over HTTP (admin.Handler). They
// are separate packages so that importing stack pulls in neither.
// Config.Logger receives a rate-limited structured line for each notable
// event, such as an accept queue overflowing or syncookies engaging.
//
// # Time
//
// Every timer and deadline (retransmission, delayed ACK, TIME_WAIT,
// keepalive, SetDeadline) reads Config.Clock, the wall clock unless set.
// A test that gives one clock.NewVirtual to both stacks and to the pipe
// between them (driver.PipeConfig.Clock) decides when time passes with
// its Advance: a minute of retransmissions runs in microseconds and the
// same way on every run (see ExampleConfig_clock). Package clock
// documents the Clock interface and both clocks.
package stack
