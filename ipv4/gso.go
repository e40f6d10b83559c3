package ipv4

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/netdev"
	"github.com/tapstack/tapstack/wire"
)

// ErrNoGSO is returned by OutputGSO when the device cannot segment TCP
// super-packets (GSOMax() == 0); the caller sends MSS-sized segments with
// Output instead. It wraps netdev.ErrNoGSO.
var ErrNoGSO = fmt.Errorf("ipv4: device has no TCP segmentation offload: %w", netdev.ErrNoGSO)

var (
	errGSOProto   = errors.New("ipv4: GSO carries TCP only")
	errGSOSegment = errors.New("ipv4: GSO super-segment without a whole TCP header")
	errGSOMSS     = errors.New("ipv4: GSO needs an MSS > 0")
	errGSOCast    = errors.New("ipv4: GSO to a broadcast or multicast address")
)

// GSOMax is the longest IPv4 packet (header included) OutputGSO accepts: at
// most 65535, 0 when the device cannot segment. A TCP sender fills a
// super-segment with up to GSOMax()-20-(TCP header) payload bytes.
func (l *Layer) GSOMax() int {
	return l.gsoMax
}

// OutputGSO sends b, a TCP super-segment (header and up to 64 KB of
// payload), from src to dst as one IPv4 packet for the device to cut into
// segments of mss payload bytes (TSO): one header with DF set, the whole
// length and a valid checksum, and an ID that reserves one per segment,
// since the segmentation numbers them upwards from it (ip_select_ident_segs).
// The TCP checksum field need not be computed; the device (or this layer,
// for a packet to one of our own addresses) fills it in. A zero src is
// chosen by the route; the neighbour is resolved as for Output. Each
// segment (20 + TCP header + mss) must fit the path MTU, else ErrMsgSize.
// It fails with ErrNoGSO when GSOMax() is 0, leaving b to the caller (to
// segment in software); otherwise it always takes ownership of b.
func (l *Layer) OutputGSO(src, dst netip.Addr, proto uint8, b *pkt.Buffer, mss int) error {
	if l.closed.Load() {
		b.Release()
		return ErrClosed
	}
	if l.gsoMax == 0 {
		return ErrNoGSO
	}
	seg := wire.TCP(b.Bytes())
	switch {
	case proto != wire.IPProtocolTCP:
		b.Release()
		return errGSOProto
	case mss <= 0:
		b.Release()
		return errGSOMSS
	case seg.Valid() != nil:
		b.Release()
		return errGSOSegment
	}
	nh, err := l.resolve(dst)
	if err != nil {
		l.ctr.inc(cOutNoRoutes)
		b.Release()
		return err
	}
	if nh.kind == kindBroadcast || nh.kind == kindMulticast {
		b.Release()
		return errGSOCast
	}
	if !src.IsValid() {
		src = nh.src
	}
	total := wire.IPv4MinHeaderLen + b.Len()
	if total > l.gsoMax || wire.IPv4MinHeaderLen+seg.HeaderLen()+mss > nh.mtu {
		// Like ip_fragment with DF: the sender learns the limit from the error.
		l.ctr.inc(cFragFails)
		b.Release()
		return ErrMsgSize
	}
	// ip_output counts the GSO skb once, before the device segments it.
	l.ctr.inc(cOutRequests)
	l.ctr.add(cExtOutOctets, uint64(total))
	segs := max(1, (len(seg)-seg.HeaderLen()+mss-1)/mss)
	r := wire.IPv4Repr{ID: l.ident.nextSegs(src, dst, proto, segs), DF: true,
		TTL: uint8(l.sys.DefaultTTL.Load()), Protocol: proto, Src: src, Dst: dst}
	if nh.kind == kindLocal {
		// The lo route delivers the super-packet whole, so its checksum must
		// be complete here: no device will finish it.
		seg.SetChecksum(0)
		seg.SetChecksum(wire.TCPChecksum(src, dst, seg))
		wire.PrependIPv4(b, &r)
		return l.finishOutput(nh, b)
	}
	wire.PrependIPv4(b, &r)
	return l.neigh.output(nh.via, b, mss)
}

// transmit hands an IPv4 packet to the device: a super-packet to be cut at
// gsoMSS when that is > 0 (dev_hard_start_xmit of a GSO skb to a TSO
// device), else one frame. It consumes b.
func (l *Layer) transmit(mac net.HardwareAddr, b *pkt.Buffer, gsoMSS int) error {
	if gsoMSS > 0 {
		return l.dev.TransmitGSO(mac, wire.EtherTypeIPv4, b, gsoMSS)
	}
	return l.dev.Transmit(mac, wire.EtherTypeIPv4, b)
}

// gsoMaxOf is the longest IPv4 super-packet a device accepting Ethernet
// frames of up to devGSOMax bytes can take.
func gsoMaxOf(devGSOMax int) int {
	if devGSOMax <= wire.EthernetHeaderLen {
		return 0
	}
	return min(devGSOMax-wire.EthernetHeaderLen, 65535)
}
