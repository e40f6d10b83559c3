package ipv4

import (
	"net/netip"

	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/wire"
)

// icmpInput is icmp_rcv.
func (l *Layer) icmpInput(p Packet, h wire.IPv4, kind addrKind) {
	l.ctr.inc(cIcmpInMsgs)
	m, err := wire.ParseICMPv4(p.Payload)
	if err != nil {
		l.ctr.inc(cIcmpInErrors)
		return
	}
	if !m.ChecksumValid() {
		l.ctr.inc(cIcmpInCsumErrors)
		l.ctr.inc(cIcmpInErrors)
		return
	}
	typ := m.Type()
	l.ctr.icmpIn[typ].Add(1)
	if kind == kindBroadcast {
		// Broadcast ICMP: echo/timestamp ignored (icmp_echo_ignore_broadcasts),
		// anything else but address-mask messages is an error.
		if typ != 17 && typ != 18 && (icmpEchoIgnoreBroadcasts || (typ != wire.ICMPv4Echo && typ != wire.ICMPv4Timestamp)) {
			l.ctr.inc(cIcmpInErrors)
			return
		}
	}
	switch typ {
	case wire.ICMPv4Echo:
		l.icmpEcho(p, m)
	case wire.ICMPv4DestUnreach, wire.ICMPv4TimeExceeded, wire.ICMPv4ParamProblem, wire.ICMPv4SourceQuench:
		l.icmpUnreach(m)
	}
}

// icmpEcho is icmp_echo + icmp_reply: the request's bytes with type 0, back
// to the sender from the address it pinged, TOS copied, DF clear. It
// allocates nothing: the reply is built in a pooled buffer.
func (l *Layer) icmpEcho(p Packet, m wire.ICMPv4) {
	if l.sys.IcmpEchoIgnoreAll.Load() != 0 {
		return
	}
	b := pkt.Get(len(m))
	b.Shard = p.Shard
	r := wire.ICMPv4(b.Append(len(m)))
	copy(r, m)
	r.SetType(wire.ICMPv4EchoReply)
	r.SetCode(0)
	r.SetChecksum()
	l.ctr.inc(cIcmpOutMsgs) // icmp_out_count, before the packet can be answered
	l.ctr.icmpOut[wire.ICMPv4EchoReply].Add(1)
	if err := l.output(p.Dst, p.Src, wire.IPProtocolICMP, p.TOS, PMTUDiscDont, b); err != nil {
		l.ctr.inc(cIcmpOutErrors)
	}
}

// icmpUnreach is icmp_unreach + icmp_socket_deliver: an error quoting one of
// our packets goes to the protocol's control handler; a fragmentation-needed
// message first lowers the path MTU (ipv4_update_pmtu).
func (l *Layer) icmpUnreach(m wire.ICMPv4) {
	q, rest, err := m.Quoted()
	if err != nil {
		l.ctr.inc(cIcmpInErrors)
		return
	}
	if l.classify(q.Src()) != kindLocal {
		return // not about a packet of ours
	}
	cm := ControlMessage{Type: m.Type(), Code: m.Code(), Src: q.Src(), Dst: q.Dst(), Proto: q.Protocol(), Quoted: rest}
	if cm.Type == wire.ICMPv4DestUnreach && cm.Code == wire.ICMPv4FragNeeded {
		if mtu := int(m.NextHopMTU()); mtu > 0 {
			cm.MTU = l.updatePMTU(q.Dst(), mtu)
		}
	}
	if h := l.controls[cm.Proto].Load(); h != nil {
		(*h)(cm)
	}
}

// icmpSend is __icmp_send: an error about packet orig (its IPv4 header and
// at least part of its payload). It never answers an ICMP error, a
// fragment other than the first, or a packet to or from a broadcast or
// multicast address, and it is rate limited like Linux.
func (l *Layer) icmpSend(orig []byte, typ, code uint8, info uint32) {
	h, err := wire.ParseIPv4Header(orig)
	if err != nil || h.FragOffset() != 0 {
		return
	}
	if n := int(h.TotalLen()); n >= h.HeaderLen() && n < len(h) {
		h = h[:n]
	}
	src, dst := h.Src(), h.Dst()
	if dk := l.classify(dst); dk == kindBroadcast || dk == kindMulticast {
		return
	}
	if !src.Is4() || src.IsUnspecified() || src.IsMulticast() || l.classify(src) == kindBroadcast {
		return
	}
	if h.Protocol() == wire.IPProtocolICMP {
		inner := h.Payload()
		if len(inner) < 1 || wire.ICMPv4TypeIsError(inner[0]) || inner[0] > 18 {
			return
		}
	}
	if !l.icmpRL.allow(l, typ, code, src) {
		return
	}
	// The error comes from the address the packet was sent to when that is
	// ours, else from the route's source (icmp_send's saddr choice).
	from := netip.Addr{}
	if l.classify(dst) == kindLocal {
		from = dst
	}
	quote := h[:min(len(h), icmpMaxQuote)]
	b := pkt.Get(wire.ICMPv4HeaderLen + len(quote))
	copy(b.Append(len(quote)), quote)
	wire.PrependICMPv4(b, &wire.ICMPv4Repr{Type: typ, Code: code, Rest: info})
	tos := h.TOS()&0x1e | 0xc0 // RT_TOS | IPTOS_PREC_INTERNETCONTROL
	l.ctr.inc(cIcmpOutMsgs)
	l.ctr.icmpOut[typ].Add(1)
	if err := l.output(from, src, wire.IPProtocolICMP, tos, PMTUDiscDont, b); err != nil {
		l.ctr.inc(cIcmpOutErrors)
	}
}

// SendUnreachable answers packet p, which a transport could not take, with
// an ICMP destination unreachable of the given code (a UDP datagram to a
// port nobody holds: ICMP_PORT_UNREACH, as __udp4_lib_rcv's icmp_send).
// Everything icmpSend refuses (errors about broadcasts, non-first
// fragments, ICMP errors) and the rate limit apply.
func (l *Layer) SendUnreachable(p Packet, code uint8) {
	n := len(p.Header) + len(p.Payload)
	orig := p.Header[:len(p.Header):len(p.Header)]
	if cap(p.Header) >= n && len(p.Payload) > 0 && &p.Header[:n][len(p.Header)] == &p.Payload[0] {
		orig = p.Header[:n] // the header and its payload are one buffer: no copy
	} else {
		orig = append(orig, p.Payload...)
	}
	l.icmpSend(orig, wire.ICMPv4DestUnreach, code, 0)
}
