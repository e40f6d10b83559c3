package ipv4

import (
	"net"
	"net/netip"

	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/wire"
)

// arpInput is the ARP handler (arp_rcv + arp_process). arp_rcv ignores
// ARP on an IFF_NOARP device; an L3 device never delivers any.
func (l *Layer) arpInput(b *pkt.Buffer) {
	if l.closed.Load() || l.neigh.noARP {
		return
	}
	a, err := wire.ParseARP(b.Bytes())
	if err != nil {
		l.ctr.inc(cArpInDiscards)
		return
	}
	sha := a.SenderMAC()
	sip, tip := a.SenderIP(), a.TargetIP()
	op := a.Op()
	if (op != wire.ARPRequest && op != wire.ARPReply) || tip.IsMulticast() || tip.IsLoopback() ||
		wire.IsMulticastMAC(sha) || sip.IsMulticast() || sip == limitedBroadcast {
		l.ctr.inc(cArpInDiscards)
		return
	}
	tipLocal := l.classify(tip) == kindLocal
	if !sip.IsValid() || sip.IsUnspecified() {
		// An ARP probe (RFC 5227 duplicate address detection): answer, learn nothing.
		if op == wire.ARPRequest && tipLocal {
			l.sendARP(wire.ARPReply, tip, sha, sip, sha)
		}
		return
	}
	if op == wire.ARPRequest && tipLocal {
		// neigh_event_ns: the asker becomes a STALE neighbour, then we reply.
		l.neigh.update(sip, sha, nudStale, true)
		l.sendARP(wire.ARPReply, tip, sha, sip, sha)
		return
	}
	// Replies and others' requests only refresh an existing entry (arp_accept=0).
	st := nudStale
	if op == wire.ARPReply && tipLocal && !wire.IsMulticastMAC(a.TargetMAC()) {
		st = nudReachable
	}
	l.neigh.update(sip, sha, st, false)
}

// sendARP builds and transmits an ARP packet (arp_create + arp_xmit). A nil
// dstMAC broadcasts; a nil tha writes zeros. On an L3 device it sends
// nothing, as arp_send_dst returns for IFF_NOARP (so Start's gratuitous
// ARP is never sent there either).
func (l *Layer) sendARP(op uint16, sip netip.Addr, tha net.HardwareAddr, tip netip.Addr, dstMAC net.HardwareAddr) {
	if l.neigh.noARP {
		return
	}
	b := pkt.Get(wire.ARPLen)
	r := wire.ARPRepr{Op: op, SenderMAC: l.mac, SenderIP: sip, TargetMAC: tha, TargetIP: tip}
	wire.PrependARP(b, &r)
	if dstMAC == nil {
		dstMAC = wire.BroadcastMAC
	}
	_ = l.dev.Transmit(dstMAC, wire.EtherTypeARP, b)
}

// solicit is arp_solicit: a broadcast request while INCOMPLETE, a unicast
// probe to the known address while PROBE.
func (l *Layer) solicit(target netip.Addr, unicast net.HardwareAddr) {
	src, _, err := l.Route(target)
	if err != nil {
		return
	}
	l.sendARP(wire.ARPRequest, src, nil, target, unicast)
}
