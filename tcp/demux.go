package tcp

import (
	"net/netip"

	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/wire"
)

// segment is a parsed inbound segment. payload aliases the receive buffer
// and is valid only during Deliver.
type segment struct {
	local, remote netip.AddrPort
	seq, ack      seqnum
	flags         uint8
	wnd           uint16
	opts          wire.TCPOptions
	payload       []byte
	shard         int // the device shard (CPU) that received it
}

func (sg *segment) has(f uint8) bool { return sg.flags&f != 0 }

// seqLen is the sequence space the segment occupies (SYN and FIN count).
func (sg *segment) seqLen() int {
	n := len(sg.payload)
	if sg.has(wire.TCPFlagSYN) {
		n++
	}
	if sg.has(wire.TCPFlagFIN) {
		n++
	}
	return n
}

func (sg *segment) end() seqnum { return sg.seq.add(sg.seqLen()) }

// Deliver is the receive entry point (Linux tcp_v4_rcv): validate, find
// the socket (established hash, then listener), hand the segment over.
// csumValid says the device vouched for the checksum (CHECKSUM_UNNECESSARY,
// or CHECKSUM_PARTIAL from the local kernel): it is not verified again
// (tcp_checksum_complete is skipped when skb_csum_unnecessary).
func (s *Stack) Deliver(src, dst netip.Addr, b []byte, shard int, csumValid bool) {
	m := &s.mib
	m.inc(cInSegs)
	t := wire.TCP(b)
	if t.Valid() != nil {
		m.inc(cInErrs)
		return
	}
	if !csumValid && !t.VerifyChecksum(src, dst) {
		m.inc(cInCsumErrors)
		m.inc(cInErrs)
		return
	}
	var sg segment
	if wire.ParseTCPOptions(t.Options(), &sg.opts) != nil {
		m.inc(cTCPOptionErrors)
		m.inc(cInErrs)
		return
	}
	sg.local = netip.AddrPortFrom(dst, t.DstPort())
	sg.remote = netip.AddrPortFrom(src, t.SrcPort())
	sg.seq, sg.ack = seqnum(t.Seq()), seqnum(t.Ack())
	sg.flags = t.Flags()
	sg.wnd = t.Window()
	sg.payload = t.Payload()
	sg.shard = shard
	if !sg.has(wire.TCPFlagACK) {
		sg.ack = 0
	}

	s.mu.RLock()
	c := s.est[tuple{sg.local, sg.remote}]
	var g []*Listener
	if c == nil {
		g = s.lookupListener(sg.local)
		if len(g) == 0 {
			g = s.listeners[fwdKey] // any destination no listener holds (forwarder.go)
		}
	}
	s.mu.RUnlock()
	l := s.pickListener(g, &sg)

	var out outBatch
	switch {
	case c != nil:
		if c.incomingCPU.Load() != int32(shard) { // sk_incoming_cpu_update
			c.incomingCPU.Store(int32(shard))
		}
		c.input(&sg, &out)
	case l != nil:
		l.input(&sg, &out)
	default:
		s.sendReset(&sg, &out)
	}
	s.flush(&out)
}

// lookupListener mirrors __inet_lookup_listener: exact address first,
// then the wildcard address of the segment's family, then for IPv4 a
// dual-stack [::] listener. Caller holds s.mu.
// It returns the listener, or the SO_REUSEPORT group, bound there. Caller
// holds s.mu.
func (s *Stack) lookupListener(local netip.AddrPort) []*Listener {
	if g := s.listeners[local]; len(g) > 0 {
		return g
	}
	if !local.Addr().Is4() {
		return s.listeners[netip.AddrPortFrom(netip.IPv6Unspecified(), local.Port())]
	}
	if g := s.listeners[netip.AddrPortFrom(netip.IPv4Unspecified(), local.Port())]; len(g) > 0 {
		return g
	}
	// A dual-stack listener on [::] takes IPv4 as well unless IPV6_V6ONLY
	// (an AF_INET socket scores higher in compute_score, so it comes first).
	if g := s.listeners[netip.AddrPortFrom(netip.IPv6Unspecified(), local.Port())]; len(g) > 0 && !g[0].v6only {
		return g
	}
	return nil
}

// pickListener chooses the listener of group g for sg, called without s.mu.
// A reuseport group sends a segment of a pending handshake to the listener
// whose SYN queue holds it (the request sock is found in the established
// hash in Linux) and anything else to the member the flow hash selects
// (reuseport_select_sock): a SYN, or the ACK that returns a syncookie, which
// the same hash brings back to the listener that sent the cookie. Members
// that set SO_INCOMING_CPU take the flows of their shard first.
func (s *Stack) pickListener(g []*Listener, sg *segment) *Listener {
	switch len(g) {
	case 0:
		return nil
	case 1:
		return g[0]
	}
	if !sg.has(wire.TCPFlagSYN) || sg.has(wire.TCPFlagACK) {
		key := tuple{sg.local, sg.remote}
		for _, l := range g {
			l.mu.Lock()
			held := l.synq[key] != nil
			l.mu.Unlock()
			if held {
				return l
			}
		}
	}
	i := s.reuseportIndex(sg.local, sg.remote, len(g))
	// reuseport_select_sock_by_hash: from the hashed member on, the first
	// whose SO_INCOMING_CPU is the shard taking the segment; without one,
	// the hashed member. A cookie ACK of the flow comes in on the same
	// shard (the device's flow hash), so it finds the same member.
	for k := range g {
		j := i + k
		if j >= len(g) {
			j -= len(g)
		}
		if int(g[j].incomingCPU.Load()) == sg.shard {
			return g[j]
		}
	}
	return g[i]
}

// reuseportIndex is reuseport_select_sock's choice among n listeners:
// reciprocal_scale of the connection's flow hash (inet_ehashfn, keyed).
func (s *Stack) reuseportIndex(local, remote netip.AddrPort, n int) int {
	h := uint32(addrHash(s.ehashKey, local.Addr(), remote.Addr(), uint32(local.Port())<<16|uint32(remote.Port()), 0))
	return int(uint64(h) * uint64(n) >> 32)
}

// sendReset answers a segment that has no socket, or that a socket
// refuses, with a RST (tcp_v4_send_reset: never for a RST; seq from the
// ACK field, otherwise ACK the segment's sequence space).
func (s *Stack) sendReset(sg *segment, out *outBatch) {
	if sg.has(wire.TCPFlagRST) {
		return
	}
	f := wire.TCPFields{SrcPort: sg.local.Port(), DstPort: sg.remote.Port(), Flags: wire.TCPFlagRST}
	if sg.has(wire.TCPFlagACK) {
		f.Seq = uint32(sg.ack)
	} else {
		f.Ack = uint32(sg.end())
		f.Flags |= wire.TCPFlagACK
	}
	s.sendBare(sg.local.Addr(), sg.remote.Addr(), &f, nil, out)
	s.mib.inc(cOutRsts)
}

// sendBare builds a segment with no payload and the given options.
func (s *Stack) sendBare(src, dst netip.Addr, f *wire.TCPFields, o *wire.TCPOptions, out *outBatch) {
	hl := wire.TCPMinHeaderLen
	if o != nil {
		hl += wire.TCPOptionsLen(o)
	}
	b := pkt.Get(hl)
	h := b.Prepend(hl)
	f.Encode(h)
	if o != nil {
		wire.EncodeTCPOptions(h[wire.TCPMinHeaderLen:], o)
	}
	wire.TCP(h).SetChecksum(wire.TCPChecksum(src, dst, h))
	s.mib.inc(cOutSegs)
	out.push(src, dst, b, 0)
}

// insert adds c to the established hash; it fails when the 4-tuple is
// taken or MaxConnections is reached.
func (s *Stack) insert(c *Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if _, ok := s.est[c.id]; ok {
		return false
	}
	if s.maxConns > 0 && len(s.est) >= s.maxConns {
		s.mib.inc(cTCPMaxConnDrop)
		return false
	}
	s.est[c.id] = c
	c.inTable = true
	return true
}

func (s *Stack) remove(c *Conn) {
	s.mu.Lock()
	if s.est[c.id] == c {
		delete(s.est, c.id)
	}
	if c.twCounted {
		c.twCounted = false
		s.tw--
	}
	s.mu.Unlock()
}

// pickPort chooses an ephemeral port for local→remote (Linux
// __inet_hash_connect: walk ip_local_port_range from a moving offset,
// skipping ports with a listener or the same 4-tuple). Caller holds s.mu.
func (s *Stack) pickPort(laddr netip.Addr, remote netip.AddrPort) (uint16, bool) {
	lo, hi := uint32(s.sys.LocalPortLow.Load()), uint32(s.sys.LocalPortHigh.Load())
	if hi < lo || lo == 0 || hi > 65535 {
		lo, hi = 32768, 60999
	}
	n := hi - lo + 1
	for i := uint32(0); i < n; i++ {
		s.nextPort++
		p := uint16(lo + (s.nextPort % n))
		lp := netip.AddrPortFrom(laddr, p)
		if _, ok := s.est[tuple{lp, remote}]; ok {
			continue
		}
		if len(s.lookupListener(lp)) > 0 {
			continue
		}
		return p, true
	}
	return 0, false
}
