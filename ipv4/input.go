package ipv4

import (
	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/wire"
)

// ipInput is the IPv4 handler: ip_rcv_core's checks, ip_rcv_finish's
// route decision, ip_local_deliver's reassembly, then protocol demux. b is
// the packet without its Ethernet header and is valid until return.
func (l *Layer) ipInput(b *pkt.Buffer) {
	if l.closed.Load() {
		l.ctr.inc(cInDiscards)
		return
	}
	data := b.Bytes()
	l.ctr.inc(cInReceives)
	l.ctr.add(cExtInOctets, uint64(len(data)))
	h, err := wire.ParseIPv4Header(data)
	if err != nil {
		l.ctr.inc(cInHdrErrors)
		return
	}
	if !h.ChecksumValid() {
		l.ctr.inc(cExtInCsumErrors)
		l.ctr.inc(cInHdrErrors)
		return
	}
	h, err = h.TrimToTotalLen()
	switch err {
	case nil:
	case wire.ErrIPv4TotalLenLong:
		l.ctr.inc(cExtInTruncatedPkts)
		return
	default:
		l.ctr.inc(cInHdrErrors)
		return
	}
	// ip_route_input_slow: martian sources are dropped; with forwarding off a
	// packet for another host is an address error (ip_error, EHOSTUNREACH).
	src := h.Src()
	if src.IsMulticast() || src == limitedBroadcast {
		l.ctr.inc(cInAddrErrors)
		return
	}
	// fib_validate_source with accept_local=0: one of our own addresses as
	// the source of a packet from the wire (a land attack) is a martian.
	// (A local route's range is not: with `local 0.0.0.0/0` for a
	// forwarder every source would be; Linux confines such a route to a
	// policy-routing table the sources never meet.)
	if !b.Loopback && l.assigned(src) {
		l.ctr.inc(cInAddrErrors)
		return
	}
	kind := l.classify(h.Dst())
	switch kind {
	case kindLocal:
	case kindBroadcast:
		l.ctr.inc(cExtInBcastPkts)
	default:
		l.ctr.inc(cInAddrErrors)
		return
	}
	if h.IsFragment() {
		whole := l.reasm.defrag(h, b.Shard)
		if whole == nil {
			return
		}
		defer whole.Release()
		l.localDeliver(wire.IPv4(whole.Bytes()), kind, b.Shard, false)
		return
	}
	l.localDeliver(h, kind, b.Shard, b.ChecksumValid)
}

// localDeliver is ip_local_deliver_finish / ip_protocol_deliver_rcu.
func (l *Layer) localDeliver(h wire.IPv4, kind addrKind, shard int, csumValid bool) {
	p := Packet{Src: h.Src(), Dst: h.Dst(), TOS: h.TOS(), TTL: h.TTL(),
		Payload: h.Payload(), Header: h.Header(), Shard: shard, ChecksumValid: csumValid, Broadcast: kind == kindBroadcast}
	proto := h.Protocol()
	hp := l.protos[proto].Load()
	if proto == wire.IPProtocolICMP {
		l.ctr.inc(cInDelivers)
		l.icmpInput(p, h, kind)
		if hp != nil { // a raw/ping socket sees ICMP too
			(*hp)(p)
		}
		return
	}
	if hp == nil {
		l.ctr.inc(cInUnknownProtos)
		if kind == kindLocal {
			l.icmpSend(h, wire.ICMPv4DestUnreach, wire.ICMPv4ProtoUnreach, 0)
		}
		return
	}
	l.ctr.inc(cInDelivers)
	(*hp)(p)
}
