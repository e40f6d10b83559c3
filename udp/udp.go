// Package udp is UDP (RFC 768) over IPv4 and IPv6 as Linux implements it: sockets
// bound to an address and port or connected to a peer, demultiplexed as
// __udp4_lib_lookup does, a receive queue per socket bounded by SO_RCVBUF
// with truesize accounting (__udp_enqueue_schedule_skb), ICMP errors handed
// to connected sockets (__udp4_lib_err), and the Udp counters of
// /proc/net/snmp.
package udp

import (
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/tapstack/tapstack/clock"
	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/wire"
)

// Network is what UDP needs from the IP layer.
type Network interface {
	// OutputPMTU sends b (UDP header and payload) from src to dst with the
	// socket's path MTU discovery mode, which decides DF and whether what
	// exceeds the path MTU is fragmented or refused with EMSGSIZE. It takes
	// ownership of b.
	OutputPMTU(src, dst netip.Addr, proto uint8, mode PMTUDisc, b *pkt.Buffer) error
	// Route returns the source address for dst.
	Route(dst netip.Addr) (src netip.Addr, mtu int, err error)
}

// PMTUDisc is a socket's path MTU discovery mode (IP_MTU_DISCOVER); the
// values are Linux's IP_PMTUDISC_*.
type PMTUDisc uint8

const (
	// PMTUDiscDont: never DF; a datagram larger than the path MTU is
	// fragmented.
	PMTUDiscDont PMTUDisc = iota
	// PMTUDiscWant (the default): DF on a datagram that fits the path MTU,
	// so that a router with a smaller MTU says so (ICMP fragmentation
	// needed lowers the path MTU, and a connected socket gets EMSGSIZE
	// once); a larger one is fragmented.
	PMTUDiscWant
	// PMTUDiscDo: always DF; a datagram larger than the path MTU fails
	// with EMSGSIZE.
	PMTUDiscDo
	// PMTUDiscProbe: always DF, bounded by the device MTU only, whatever
	// path MTU was learned (for a prober such as tracepath).
	PMTUDiscProbe
)

// Config configures a Stack.
type Config struct {
	Network Network
	Clock   clock.Clock // deadlines; nil → clock.Real()
	Sysctls *Sysctls    // nil → NewSysctls()
}

// Stack is the UDP layer: the socket table and the counters.
type Stack struct {
	net   Network
	clock clock.Clock
	sys   *Sysctls

	mu    sync.RWMutex
	ports map[uint16][]*Conn // bound sockets by local port
	// flows holds the forwarder's endpoints by four-tuple as well: a
	// proxy's thousands of flows to one port are found without a scan.
	flows  map[flowKey]*Conn
	closed bool

	mib [numCounters]atomic.Uint64

	fwd atomic.Pointer[Forwarder] // takes what no socket holds (forwarder.go)
}

// New returns a UDP layer over cfg.Network.
func New(cfg Config) *Stack {
	s := &Stack{net: cfg.Network, clock: cfg.Clock, sys: cfg.Sysctls, ports: map[uint16][]*Conn{}}
	if s.clock == nil {
		s.clock = clock.Real()
	}
	if s.sys == nil {
		s.sys = NewSysctls()
	}
	return s
}

// Verdict is what Deliver did with a datagram.
type Verdict int

const (
	Delivered Verdict = iota // queued on at least one socket
	Dropped                  // malformed, bad checksum, or every queue full: counted
	NoPort                   // nobody holds the port: the caller answers with ICMP port unreachable
	Ignored                  // a broadcast nobody holds (UdpIgnoredMulti): no ICMP
)

// Deliver takes one datagram (payload: UDP header and data) for dst, as
// __udp4_lib_rcv does. csumValid: the link vouched for the checksum;
// broadcast: dst is a broadcast address, delivered to every socket that
// matches (__udp4_lib_mcast_deliver) and never answered with ICMP.
func (s *Stack) Deliver(src, dst netip.Addr, payload []byte, csumValid, broadcast bool) Verdict {
	u, err := wire.ParseUDP(payload)
	if err != nil {
		s.mib[cInErrors].Add(1) // short_packet
		return Dropped
	}
	// The checksum is verified before a socket is looked for, so that a
	// corrupted datagram is not answered with port unreachable.
	if !csumValid && !u.VerifyChecksum(src, dst) {
		s.mib[cInCsumErrors].Add(1)
		s.mib[cInErrors].Add(1)
		return Dropped
	}
	from := netip.AddrPortFrom(src, u.SrcPort())
	to := netip.AddrPortFrom(dst, u.DstPort())
	if broadcast {
		return s.deliverBroadcast(from, to, u.Payload())
	}
	s.mu.RLock()
	c := s.lookupLocked(from, to)
	s.mu.RUnlock()
	if c == nil {
		if f := s.fwd.Load(); f != nil {
			return s.forward(f, from, to, u.Payload())
		}
		s.mib[cNoPorts].Add(1)
		return NoPort
	}
	if !c.enqueue(from, u.Payload()) {
		return Dropped
	}
	return Delivered
}

// lookupLocked is __udp4_lib_lookup's scoring: a socket connected to
// exactly from beats one bound to dst, which beats one bound to the
// wildcard of dst's family, which beats a dual-stack [::] one for IPv4; a
// socket connected elsewhere or bound to another address never matches.
func (s *Stack) lookupLocked(from, to netip.AddrPort) *Conn {
	if c := s.flows[flowKey{to, from}]; c != nil {
		return c // a forwarder's endpoint: the best score there is
	}
	var best *Conn
	bestScore := -1
	for _, c := range s.ports[to.Port()] {
		score := 0
		switch exact, ok := c.takes(to.Addr()); {
		case !ok:
			continue
		case exact:
			score += 2
		case c.local.Addr().Is4() == to.Addr().Is4():
			score++ // compute_score: a socket of the datagram's own family first
		}
		if c.remote.IsValid() {
			if c.remote != from {
				continue
			}
			score += 4
		}
		if score > bestScore {
			best, bestScore = c, score
		}
	}
	return best
}

func (s *Stack) deliverBroadcast(from, to netip.AddrPort, data []byte) Verdict {
	s.mu.RLock()
	var targets []*Conn
	for _, c := range s.ports[to.Port()] {
		if _, ok := c.takes(to.Addr()); !ok {
			continue
		}
		if c.remote.IsValid() && c.remote != from {
			continue
		}
		targets = append(targets, c)
	}
	s.mu.RUnlock()
	if len(targets) == 0 {
		s.mib[cIgnoredMulti].Add(1)
		return Ignored
	}
	v := Dropped
	for _, c := range targets {
		if c.enqueue(from, data) {
			v = Delivered
		}
	}
	return v
}

// Control takes an ICMP error quoting a datagram we sent from src to dst
// (quoted: its UDP header), as __udp4_lib_err does without IP_RECVERR: only
// a connected socket learns of it, and only of a hard error (port or
// protocol unreachable, a parameter problem, fragmentation needed, the
// fatal codes of icmp_err_convert). The error is returned once, by the
// socket's next call.
func (s *Stack) Control(typ, code uint8, src, dst netip.Addr, quoted []byte) {
	if len(quoted) < 4 {
		return
	}
	u := wire.UDP(quoted)
	local, remote := netip.AddrPortFrom(src, u.SrcPort()), netip.AddrPortFrom(dst, u.DstPort())
	err, hard, ok := wire.ICMPv4Errno(typ, code)
	if !ok {
		return // source quench, redirect: nothing for the socket
	}
	if typ == wire.ICMPv4DestUnreach && code == wire.ICMPv4FragNeeded {
		// The IP layer has lowered the path MTU already; a socket that
		// discovers it is told once (one with PMTUDiscDont is not).
		hard = true
	}
	s.mu.RLock()
	c := s.lookupLocked(remote, local)
	s.mu.RUnlock()
	if c == nil || !hard || !c.remote.IsValid() {
		return
	}
	if err == syscall.EMSGSIZE && PMTUDisc(c.pmtudisc.Load()) == PMTUDiscDont {
		return
	}
	c.setError(err)
}

// bind adds c to the table on port (0: an ephemeral port from
// ip_local_port_range, tried from a random point as inet_csk_get_port
// does). Two sockets may not share a port when their addresses overlap
// (equal, or either unspecified): EADDRINUSE.
func (s *Stack) bind(c *Conn, addr netip.Addr, port uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errStackClosed
	}
	if port == 0 {
		lo, hi := int(s.sys.PortLow.Load()), int(s.sys.PortHigh.Load())
		n := hi - lo + 1
		start := rand.IntN(n)
		for i := range n {
			p := uint16(lo + (start+i)%n)
			if s.freeLocked(addr, c.v6only, p) {
				port = p
				break
			}
		}
		if port == 0 {
			return syscall.EADDRNOTAVAIL
		}
	} else if !s.freeLocked(addr, c.v6only, port) {
		return syscall.EADDRINUSE
	}
	c.local = netip.AddrPortFrom(addr, port)
	s.ports[port] = append(s.ports[port], c)
	return nil
}

func (s *Stack) freeLocked(addr netip.Addr, v6only bool, port uint16) bool {
	for _, o := range s.ports[port] {
		if overlap(o.local.Addr(), o.v6only, addr, v6only) {
			return false
		}
	}
	return true
}

// overlap says whether sockets bound to a and b share an address
// (inet_rcv_saddr_equal): equal, or one a wildcard covering the other — a
// dual-stack [::] covers IPv4 too.
func overlap(a netip.Addr, aOnly bool, b netip.Addr, bOnly bool) bool {
	return a == b || covers(a, aOnly, b) || covers(b, bOnly, a)
}

func covers(w netip.Addr, v6only bool, a netip.Addr) bool {
	switch {
	case w == netip.IPv4Unspecified():
		return a.Is4()
	case w == netip.IPv6Unspecified():
		return a.Is6() || !v6only
	}
	return false
}

// takes says whether c, by its bound address, takes a datagram to a, and
// whether exactly.
func (c *Conn) takes(a netip.Addr) (exact, ok bool) {
	la := c.local.Addr()
	if la == a {
		return true, true
	}
	return false, covers(la, c.v6only, a)
}

func (s *Stack) unbind(c *Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.flows[flowKey{c.local, c.remote}] == c {
		delete(s.flows, flowKey{c.local, c.remote})
		return
	}
	list := s.ports[c.local.Port()]
	for i, o := range list {
		if o == c {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.ports, c.local.Port())
	} else {
		s.ports[c.local.Port()] = list
	}
}

// Close closes every socket; later calls on them return net.ErrClosed.
func (s *Stack) Close() {
	s.mu.Lock()
	s.closed = true
	var all []*Conn
	for _, list := range s.ports {
		all = append(all, list...)
	}
	for _, c := range s.flows {
		all = append(all, c)
	}
	s.mu.Unlock()
	for _, c := range all {
		c.Close()
	}
}
