package udp

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/internal/sockwait"
	"github.com/tapstack/tapstack/wire"
)

// MaxPayload is the largest datagram payload over IPv4: 65535 bytes less
// the IPv4 and UDP headers. A larger write fails with EMSGSIZE.
const MaxPayload = 65535 - wire.IPv4MinHeaderLen - wire.UDPHeaderLen

// truesizeOverhead is what a queued datagram costs the receive buffer on
// top of its bytes, Linux's skb->truesize analogue: sizeof(struct sk_buff)
// and skb_shared_info, cache-aligned (SKB_TRUESIZE). Linux charges the
// whole buffer the driver received into; here the datagram is copied into
// a buffer of its own size, rounded to 64 bytes.
const truesizeOverhead = 576

// sockMinRcvbuf is Linux's SOCK_MIN_RCVBUF (2048 + sizeof(struct sk_buff)),
// the floor of SO_RCVBUF and SO_SNDBUF.
const sockMinRcvbuf = 2304

var errStackClosed = errors.New("udp: stack closed")

// Conn is a UDP socket. It is a net.PacketConn, and a net.Conn once
// connected (Dial).
type Conn struct {
	s      *Stack
	local  netip.AddrPort // bound address (possibly 0.0.0.0) and port
	remote netip.AddrPort // connected peer; invalid when unconnected
	v6only bool           // IPV6_V6ONLY on a [::] socket

	mu        sync.Mutex
	q         []dgram // ring of received datagrams
	head, n   int
	rmemAlloc int   // sk_rmem_alloc: truesize of the queued datagrams
	rcvbuf    int   // sk_rcvbuf
	drops     int   // sk_drops
	err       error // pending socket error (sk_err), returned once
	closed    bool

	sndbuf   atomic.Int64  // sk_sndbuf
	wmem     atomic.Int64  // sk_wmem_alloc: truesize of sent datagrams the link has not taken yet
	pmtudisc atomic.Uint32 // IP_MTU_DISCOVER (a PMTUDisc)

	w sockwait.Waits // readers; writers waiting for send buffer room (sock_wait_for_wmem); deadlines
}

type dgram struct {
	b    *pkt.Buffer
	from netip.AddrPort
	size int // truesize charged
}

var (
	_ net.PacketConn = (*Conn)(nil)
	_ net.Conn       = (*Conn)(nil)
)

func (s *Stack) newConn() *Conn {
	c := &Conn{s: s, rcvbuf: clampBuf(s.sys.RmemDefault.Load())}
	c.sndbuf.Store(int64(clampBuf(s.sys.WmemDefault.Load())))
	if s.sys.NoPMTUDisc.Load() == 0 {
		c.pmtudisc.Store(uint32(PMTUDiscWant))
	}
	return c
}

// sender is the Conn as the owner of the buffers it sent (pkt.Owner): what
// the link has not written yet stays charged to the send buffer.
type sender Conn

// Uncharge is sock_wfree: the link took a datagram; writers waiting for
// room are woken once half the send buffer is free (sock_def_write_space).
func (o *sender) Uncharge(n int) {
	c := (*Conn)(o)
	if c.wmem.Add(-int64(n))*2 < c.sndbuf.Load() {
		c.w.Wr.Wake()
	}
}

// txTruesize is what a datagram of n payload bytes costs the send buffer:
// the skb ip_append_data allocates (UDP, IP and link headers) with its
// overhead, as the receive side charges.
func txTruesize(n int) int {
	return truesizeOverhead + (n+wire.UDPHeaderLen+wire.IPv4MinHeaderLen+14+63)&^63
}

func clampBuf(v int64) int { return max(int(v), sockMinRcvbuf) }

// Listen opens a socket bound to laddr (an unspecified address: every
// address; port 0: an ephemeral port), udp_lib_get_port's rules. A socket
// on [::] is dual-stack: it takes IPv4 datagrams too (see ListenOptions).
func (s *Stack) Listen(laddr netip.AddrPort) (*Conn, error) {
	return s.ListenOpts(laddr, ListenOptions{})
}

// ListenOptions are the options a socket takes before bind(2).
type ListenOptions struct {
	// V6Only is IPV6_V6ONLY: a socket on [::] takes IPv6 only, and then
	// shares its port with an IPv4 socket on 0.0.0.0. Without it (Linux's
	// default) the two conflict (EADDRINUSE).
	V6Only bool
}

// ListenOpts is Listen with options.
func (s *Stack) ListenOpts(laddr netip.AddrPort, o ListenOptions) (*Conn, error) {
	c := s.newConn()
	a := laddr.Addr()
	if !a.IsValid() {
		a = netip.IPv4Unspecified()
	}
	a = a.Unmap()
	if o.V6Only && a.Is4() {
		return nil, &net.OpError{Op: "listen", Net: "udp", Addr: net.UDPAddrFromAddrPort(laddr), Err: os.NewSyscallError("setsockopt", syscall.ENOPROTOOPT)}
	}
	c.v6only = o.V6Only
	if err := s.bind(c, a, laddr.Port()); err != nil {
		return nil, &net.OpError{Op: "listen", Net: "udp", Source: nil, Addr: net.UDPAddrFromAddrPort(laddr), Err: osErr("bind", err)}
	}
	return c, nil
}

// Dial opens a socket connected to raddr (ip4_datagram_connect): the source
// address comes from the route, the port from ip_local_port_range unless
// laddr gives one. Datagrams from anyone else are not delivered to it, and
// ICMP errors about what it sends come back from its next call.
func (s *Stack) Dial(laddr, raddr netip.AddrPort) (*Conn, error) {
	fail := func(err error) (*Conn, error) {
		return nil, &net.OpError{Op: "dial", Net: "udp", Addr: net.UDPAddrFromAddrPort(raddr), Err: err}
	}
	raddr = netip.AddrPortFrom(raddr.Addr().Unmap(), raddr.Port())
	if !raddr.Addr().IsValid() || raddr.Port() == 0 {
		return fail(&net.AddrError{Err: "not an address and port", Addr: raddr.String()})
	}
	src := laddr.Addr()
	if !src.IsValid() || src.IsUnspecified() {
		var err error
		if src, _, err = s.net.Route(raddr.Addr()); err != nil {
			return fail(err)
		}
	}
	c := s.newConn()
	c.remote = raddr
	if err := s.bind(c, src, laddr.Port()); err != nil {
		return fail(osErr("connect", err))
	}
	return c, nil
}

func osErr(op string, err error) error {
	if e, ok := err.(syscall.Errno); ok {
		return os.NewSyscallError(op, e)
	}
	return err
}

// enqueue is __udp_enqueue_schedule_skb: a datagram is refused when the
// queue already holds more than SO_RCVBUF (so one datagram may take it
// past), counted in UdpRcvbufErrors and UdpInErrors; otherwise it is
// copied into a buffer of its own and readers are woken.
func (c *Conn) enqueue(from netip.AddrPort, data []byte) bool {
	size := truesizeOverhead + (len(data)+63)&^63
	c.mu.Lock()
	if c.closed || c.rmemAlloc > c.rcvbuf {
		c.drops++
		c.mu.Unlock()
		c.s.mib[cRcvbufErrors].Add(1)
		c.s.mib[cInErrors].Add(1)
		return false
	}
	b := pkt.Get(len(data))
	copy(b.Append(len(data)), data)
	if c.n == len(c.q) {
		c.grow()
	}
	c.q[(c.head+c.n)%len(c.q)] = dgram{b, from, size}
	c.n++
	c.rmemAlloc += size
	c.mu.Unlock()
	c.s.mib[cInDatagrams].Add(1)
	c.w.Rd.Wake()
	return true
}

func (c *Conn) grow() {
	q := make([]dgram, max(2*len(c.q), 16))
	for i := range c.n {
		q[i] = c.q[(c.head+i)%len(c.q)]
	}
	c.q, c.head = q, 0
}

func (c *Conn) setError(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
	c.w.Rd.Wake()
}

func (c *Conn) opErr(op string, addr netip.AddrPort, err error) error {
	if e, ok := err.(syscall.Errno); ok {
		err = os.NewSyscallError(op, e)
	}
	var a net.Addr
	if addr.IsValid() {
		a = net.UDPAddrFromAddrPort(addr)
	}
	return &net.OpError{Op: op, Net: "udp", Source: net.UDPAddrFromAddrPort(c.local), Addr: a, Err: err}
}

// ReadFromUDPAddrPort reads one datagram into p and returns its sender. A
// datagram longer than p is cut to len(p) and the rest discarded, as
// recvfrom(2) does. It blocks until a datagram arrives, the read deadline
// passes, a pending ICMP error is reported, or the socket is closed.
func (c *Conn) ReadFromUDPAddrPort(p []byte) (int, netip.AddrPort, error) {
	n, _, from, err := c.read(p)
	return n, from, err
}

// ReadMsgUDPAddrPort is recvmsg(2): as ReadFromUDPAddrPort, and flags has
// syscall.MSG_TRUNC when the datagram was longer than p. The socket
// delivers no ancillary data (no IP_PKTINFO or IP_RECVERR), so oobn is
// always 0.
func (c *Conn) ReadMsgUDPAddrPort(p, oob []byte) (n, oobn, flags int, addr netip.AddrPort, err error) {
	n, size, from, err := c.read(p)
	if size > n {
		flags |= syscall.MSG_TRUNC
	}
	return n, 0, flags, from, err
}

// ReadMsgUDP is ReadMsgUDPAddrPort with a *net.UDPAddr, as net.UDPConn has.
func (c *Conn) ReadMsgUDP(p, oob []byte) (n, oobn, flags int, addr *net.UDPAddr, err error) {
	n, oobn, flags, from, err := c.ReadMsgUDPAddrPort(p, oob)
	if err == nil {
		addr = net.UDPAddrFromAddrPort(from)
	}
	return n, oobn, flags, addr, err
}

// read takes the next datagram: the bytes copied to p and the datagram's
// length.
func (c *Conn) read(p []byte) (int, int, netip.AddrPort, error) {
	for {
		if c.w.ReadPassed() {
			c.w.Rd.Wake() // chain the wake-up to other readers
			return 0, 0, netip.AddrPort{}, c.opErr("read", c.remote, os.ErrDeadlineExceeded)
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return 0, 0, netip.AddrPort{}, c.opErr("read", c.remote, net.ErrClosed)
		}
		if c.err != nil { // sock_error: reported once
			err := c.err
			c.err = nil
			c.mu.Unlock()
			return 0, 0, netip.AddrPort{}, c.opErr("read", c.remote, err)
		}
		if c.n > 0 {
			d := c.q[c.head]
			c.q[c.head] = dgram{}
			c.head = (c.head + 1) % len(c.q)
			c.n--
			c.rmemAlloc -= d.size
			more := c.n > 0
			c.mu.Unlock()
			n, size := copy(p, d.b.Bytes()), d.b.Len()
			d.b.Release()
			if more {
				c.w.Rd.Wake()
			}
			return n, size, d.from, nil
		}
		c.mu.Unlock()
		<-c.w.Rd.Get()
	}
}

// ReadFrom implements net.PacketConn (the address is a *net.UDPAddr).
func (c *Conn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, from, err := c.ReadFromUDPAddrPort(p)
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

// Read implements net.Conn: it reads the next datagram (on a connected
// socket, only the peer's reach it).
func (c *Conn) Read(p []byte) (int, error) {
	n, _, err := c.ReadFromUDPAddrPort(p)
	return n, err
}

// WriteToUDPAddrPort sends p as one datagram to addr (udp_sendmsg). On a
// connected socket addr must be the peer or unset (EISCONN otherwise). A
// payload above MaxPayload is EMSGSIZE; one above the path MTU is
// fragmented, or EMSGSIZE under PMTUDiscDo (SetPMTUDiscover). Sending to a
// broadcast address is allowed, as on the sockets Go's net package opens
// (SO_BROADCAST).
//
// A datagram stays charged to SO_SNDBUF until the link has written it: a
// write that finds the send buffer full blocks until the link drains it
// (sock_alloc_send_pskb), or until the write deadline passes.
func (c *Conn) WriteToUDPAddrPort(p []byte, addr netip.AddrPort) (int, error) {
	for {
		if c.w.WritePassed() {
			c.w.Wr.Wake() // chain the wake-up to other writers
			return 0, c.opErr("write", addr, os.ErrDeadlineExceeded)
		}
		c.mu.Lock()
		switch {
		case c.closed:
			c.mu.Unlock()
			return 0, c.opErr("write", addr, net.ErrClosed)
		case c.err != nil:
			err := c.err
			c.err = nil
			c.mu.Unlock()
			return 0, c.opErr("write", addr, err)
		}
		c.mu.Unlock()
		if c.wmem.Load() < c.sndbuf.Load() {
			break
		}
		<-c.w.Wr.Get()
	}
	if c.remote.IsValid() {
		if addr.IsValid() && addr != c.remote {
			return 0, c.opErr("write", addr, syscall.EISCONN)
		}
		addr = c.remote
	}
	if !addr.IsValid() {
		return 0, c.opErr("write", addr, syscall.EDESTADDRREQ)
	}
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if !addr.Addr().IsValid() || addr.Port() == 0 {
		return 0, c.opErr("write", addr, syscall.EINVAL)
	}
	switch la := c.local.Addr(); {
	case la.Is4() && !addr.Addr().Is4():
		return 0, c.opErr("write", addr, syscall.EAFNOSUPPORT) // an AF_INET socket
	case la.Is6() && addr.Addr().Is4() && (c.v6only || !la.IsUnspecified()):
		return 0, c.opErr("write", addr, syscall.ENETUNREACH) // udpv6_sendmsg: no v4-mapped path
	}
	if len(p) > MaxPayload {
		return 0, c.opErr("write", addr, syscall.EMSGSIZE)
	}
	src := c.local.Addr()
	if src.IsUnspecified() {
		var err error
		if src, _, err = c.s.net.Route(addr.Addr()); err != nil {
			return 0, c.opErr("write", addr, err)
		}
	}
	b := pkt.Get(wire.UDPHeaderLen + len(p))
	copy(b.Append(len(p)), p)
	wire.PrependUDP(b, netip.AddrPortFrom(src, c.local.Port()), addr)
	size := txTruesize(len(p))
	c.wmem.Add(int64(size))
	b.SetOwner((*sender)(c), size)
	if err := c.s.net.OutputPMTU(src, addr.Addr(), wire.IPProtocolUDP, PMTUDisc(c.pmtudisc.Load()), b); err != nil {
		if errors.Is(err, syscall.ENOBUFS) {
			// udp_send_skb: a full device queue is not the sender's error.
			c.s.mib[cSndbufErrors].Add(1)
			return len(p), nil
		}
		return 0, c.opErr("write", addr, err)
	}
	c.s.mib[cOutDatagrams].Add(1)
	return len(p), nil
}

// WriteTo implements net.PacketConn; addr must be a *net.UDPAddr.
func (c *Conn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, c.opErr("write", netip.AddrPort{}, syscall.EINVAL)
	}
	return c.WriteToUDPAddrPort(p, ua.AddrPort())
}

// Write implements net.Conn on a connected socket.
func (c *Conn) Write(p []byte) (int, error) {
	return c.WriteToUDPAddrPort(p, netip.AddrPort{})
}

// Close implements net.Conn: queued datagrams are freed and blocked reads
// return net.ErrClosed.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return c.opErr("close", c.remote, net.ErrClosed)
	}
	c.closed = true
	for c.n > 0 {
		c.q[c.head].b.Release()
		c.q[c.head] = dgram{}
		c.head = (c.head + 1) % len(c.q)
		c.n--
	}
	c.rmemAlloc = 0
	c.mu.Unlock()
	c.s.unbind(c)
	c.w.Stop()
	c.w.Wake()
	return nil
}

// LocalAddr implements net.Conn (a *net.UDPAddr).
func (c *Conn) LocalAddr() net.Addr { return net.UDPAddrFromAddrPort(c.local) }

// RemoteAddr implements net.Conn: the peer of a connected socket, else nil.
func (c *Conn) RemoteAddr() net.Addr {
	if !c.remote.IsValid() {
		return nil
	}
	return net.UDPAddrFromAddrPort(c.remote)
}

// LocalAddrPort and RemoteAddrPort return the endpoints as netip values.
func (c *Conn) LocalAddrPort() netip.AddrPort  { return c.local }
func (c *Conn) RemoteAddrPort() netip.AddrPort { return c.remote }

// SetDeadline implements net.Conn.
func (c *Conn) SetDeadline(t time.Time) error {
	c.w.Set(c.s.clock, t, sockwait.Both)
	return nil
}

// SetReadDeadline implements net.Conn.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.w.Set(c.s.clock, t, sockwait.Read)
	return nil
}

// SetWriteDeadline implements net.Conn: it bounds a write waiting for send
// buffer room.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.w.Set(c.s.clock, t, sockwait.Write)
	return nil
}

// SetReadBuffer sets SO_RCVBUF as Linux does: twice bytes, clamped to
// net.core.rmem_max first, never below SOCK_MIN_RCVBUF.
func (c *Conn) SetReadBuffer(bytes int) error {
	v := max(min(int64(bytes), c.s.sys.RmemMax.Load())*2, sockMinRcvbuf)
	c.mu.Lock()
	c.rcvbuf = int(v)
	c.mu.Unlock()
	return nil
}

// SetWriteBuffer sets SO_SNDBUF (twice bytes, clamped to
// net.core.wmem_max): how much of what the socket sent may wait for the
// link before a write blocks.
func (c *Conn) SetWriteBuffer(bytes int) error {
	c.sndbuf.Store(max(min(int64(bytes), c.s.sys.WmemMax.Load())*2, sockMinRcvbuf))
	c.w.Wr.Wake() // a larger buffer may have room now
	return nil
}

// SetPMTUDiscover sets IP_MTU_DISCOVER: whether datagrams carry DF and what
// happens to one larger than the path MTU (see PMTUDisc). A new socket has
// PMTUDiscWant unless net.ipv4.ip_no_pmtu_disc is set.
func (c *Conn) SetPMTUDiscover(mode PMTUDisc) error {
	if mode > PMTUDiscProbe {
		return c.opErr("setsockopt", c.remote, syscall.EINVAL)
	}
	c.pmtudisc.Store(uint32(mode))
	return nil
}

// PMTUDiscover returns the IP_MTU_DISCOVER mode.
func (c *Conn) PMTUDiscover() PMTUDisc { return PMTUDisc(c.pmtudisc.Load()) }

// PathMTU is getsockopt(IP_MTU) on a connected socket: the path MTU to the
// peer as learned so far (ENOTCONN on an unconnected socket). With
// PMTUDiscDo, a datagram of PathMTU less 28 bytes is the largest that can
// be sent.
func (c *Conn) PathMTU() (int, error) {
	if !c.remote.IsValid() {
		return 0, c.opErr("getsockopt", c.remote, syscall.ENOTCONN)
	}
	_, mtu, err := c.s.net.Route(c.remote.Addr())
	if err != nil {
		return 0, c.opErr("getsockopt", c.remote, err)
	}
	return mtu, nil
}

// SocketInfo is one UDP socket as `ss -uanm` shows it.
type SocketInfo struct {
	State         string // UNCONN or ESTAB (connected)
	Local, Remote netip.AddrPort
	RecvQ         int // queued bytes as charged (sk_rmem_alloc)
	SendQ         int // sent bytes the link has not written yet, as charged (sk_wmem_alloc)
	RcvBuf        int // SO_RCVBUF
	SndBuf        int // SO_SNDBUF
	Drops         int // datagrams refused by a full queue (sk_drops)
	Datagrams     int // datagrams queued
}

// Sockets lists every UDP socket by local port.
func (s *Stack) Sockets() []SocketInfo {
	s.mu.RLock()
	var out []SocketInfo
	row := func(c *Conn) {
		c.mu.Lock()
		si := SocketInfo{State: "UNCONN", Local: c.local, Remote: c.remote, RecvQ: c.rmemAlloc,
			SendQ: int(c.wmem.Load()), RcvBuf: c.rcvbuf, SndBuf: int(c.sndbuf.Load()), Drops: c.drops, Datagrams: c.n}
		c.mu.Unlock()
		if c.remote.IsValid() {
			si.State = "ESTAB"
		}
		out = append(out, si)
	}
	for _, list := range s.ports {
		for _, c := range list {
			row(c)
		}
	}
	for _, c := range s.flows { // the forwarder's endpoints
		row(c)
	}
	s.mu.RUnlock()
	sortSockets(out)
	return out
}
