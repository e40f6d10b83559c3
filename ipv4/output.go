package ipv4

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"

	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/wire"
)

// identGen hands out IP IDs from hashed per-(src,dst,proto) counters with
// random starting points, as __ip_select_ident does with ip_idents.
type identGen struct {
	key     uint64
	buckets [2048]atomic.Uint32
}

func (g *identGen) init() {
	g.key = rand.Uint64() | 1
	for i := range g.buckets {
		g.buckets[i].Store(rand.Uint32())
	}
}

func (g *identGen) next(src, dst netip.Addr, proto uint8) uint16 {
	return g.nextSegs(src, dst, proto, 1)
}

// nextSegs reserves segs consecutive IDs and returns the first, for a
// super-packet whose segments the device numbers upwards
// (ip_select_ident_segs).
func (g *identGen) nextSegs(src, dst netip.Addr, proto uint8, segs int) uint16 {
	s, d := src.As4(), dst.As4()
	x := uint64(binary.BigEndian.Uint32(s[:]))<<32 | uint64(binary.BigEndian.Uint32(d[:]))
	x ^= uint64(proto) << 17
	x *= g.key
	x ^= x >> 29
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 32
	n := uint32(segs)
	return uint16(g.buckets[x%uint64(len(g.buckets))].Add(n) - n + 1)
}

// PMTUDisc is how a packet meets the path MTU, the modes of Linux's
// IP_MTU_DISCOVER socket option.
type PMTUDisc uint8

const (
	// PMTUDiscDont never sets DF: a packet larger than the path MTU is
	// fragmented (IP_PMTUDISC_DONT).
	PMTUDiscDont PMTUDisc = iota
	// PMTUDiscWant sets DF on a packet that fits the path MTU, so a router
	// with a smaller MTU reports it, and fragments a larger one without DF
	// (IP_PMTUDISC_WANT, Linux's default for UDP and raw sockets).
	PMTUDiscWant
	// PMTUDiscDo always sets DF; a packet larger than the path MTU is
	// refused with EMSGSIZE (IP_PMTUDISC_DO, what TCP uses).
	PMTUDiscDo
	// PMTUDiscProbe always sets DF and ignores the learned path MTU: only
	// the device's MTU bounds the packet (IP_PMTUDISC_PROBE).
	PMTUDiscProbe
)

// Output sends b (transport header and payload) from src to dst. A zero src
// is chosen by the route. It prepends the IPv4 header, sets DF for TCP (path
// MTU discovery) and fragments anything else larger than the path MTU. It
// always takes ownership of b.
func (l *Layer) Output(src, dst netip.Addr, proto uint8, b *pkt.Buffer) error {
	mode := PMTUDiscDont
	if proto == wire.IPProtocolTCP {
		mode = PMTUDiscDo
	}
	l.countRawICMP(proto, b)
	return l.output(src, dst, proto, 0, mode, b)
}

// OutputPMTU is Output with the socket's path MTU discovery mode (a UDP
// socket's IP_MTU_DISCOVER): it decides DF and whether a packet larger than
// the path MTU is fragmented or refused with ErrMsgSize.
func (l *Layer) OutputPMTU(src, dst netip.Addr, proto uint8, mode PMTUDisc, b *pkt.Buffer) error {
	l.countRawICMP(proto, b)
	return l.output(src, dst, proto, 0, mode&^fromSocket|fromSocket, b)
}

// countRawICMP is raw_send_hdrinc's icmp_out_count for ICMP a caller built.
func (l *Layer) countRawICMP(proto uint8, b *pkt.Buffer) {
	if proto == wire.IPProtocolICMP && b.Len() > 0 {
		l.ctr.inc(cIcmpOutMsgs)
		l.ctr.icmpOut[b.Bytes()[0]].Add(1)
	}
}

// fromSocket marks a mode passed by a socket's send call: a packet too big
// for DF is refused as __ip_append_data does, before it is counted as sent.
const fromSocket PMTUDisc = 0x80

// output is ip_queue_xmit/ip_build_and_send_pkt → ip_local_out → ip_output,
// with __ip_make_skb's choice of DF: set for PMTUDiscDo and Probe, and for
// PMTUDiscWant when the packet fits the path MTU.
func (l *Layer) output(src, dst netip.Addr, proto, tos uint8, mode PMTUDisc, b *pkt.Buffer) error {
	if l.closed.Load() {
		b.Release()
		return ErrClosed
	}
	nh, err := l.resolve(dst)
	if err != nil {
		l.ctr.inc(cOutNoRoutes)
		b.Release()
		return err
	}
	if !src.IsValid() {
		src = nh.src
	}
	sock := mode&fromSocket != 0
	mode &^= fromSocket
	mtu := nh.mtu
	if mode == PMTUDiscProbe { // ip_skb_dst_mtu with IP_PMTUDISC_PROBE: the device's MTU
		mtu = l.mtu
		if nh.kind == kindLocal {
			mtu = loopbackMTU
		}
	}
	total := wire.IPv4MinHeaderLen + b.Len()
	df := mode >= PMTUDiscDo || (mode == PMTUDiscWant && total <= mtu)
	if sock && df && total > mtu { // __ip_append_data: EMSGSIZE, nothing sent or counted
		b.Release()
		return ErrMsgSize
	}
	l.ctr.inc(cOutRequests)
	r := wire.IPv4Repr{TOS: tos, ID: l.ident.next(src, dst, proto), DF: df,
		TTL: uint8(l.sys.DefaultTTL.Load()), Protocol: proto, Src: src, Dst: dst}
	if total <= mtu {
		wire.PrependIPv4(b, &r)
		l.ctr.add(cExtOutOctets, uint64(total))
		return l.finishOutput(nh, b)
	}
	if df || nh.kind == kindLocal {
		// ip_fragment: DF set and too big → EMSGSIZE (the local sender learns
		// the MTU from the error rather than from ICMP).
		l.ctr.inc(cFragFails)
		b.Release()
		return ErrMsgSize
	}
	return l.fragment(nh, &r, b)
}

// fragment is ip_do_fragment's slow path: copies of the header in front of
// payload slices of (mtu-20)&^7 bytes. It consumes b.
func (l *Layer) fragment(nh nextHop, r *wire.IPv4Repr, b *pkt.Buffer) error {
	payload := b.Bytes()
	hl := r.HeaderLen()
	chunk := (nh.mtu - hl) &^ 7
	if chunk < 8 {
		l.ctr.inc(cFragFails)
		b.Release()
		return ErrMsgSize
	}
	var firstErr error
	for off := 0; off < len(payload); off += chunk {
		n := min(chunk, len(payload)-off)
		fb := pkt.Get(n)
		fb.Shard = b.Shard
		copy(fb.Append(n), payload[off:off+n])
		r.FragOffset = off
		r.MF = off+n < len(payload)
		if !r.MF {
			b.MoveOwner(fb) // the sender's charge leaves with the last fragment
		}
		wire.PrependIPv4(fb, r)
		l.ctr.inc(cFragCreates)
		l.ctr.add(cExtOutOctets, uint64(fb.Len()))
		if err := l.finishOutput(nh, fb); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	b.Release()
	if firstErr == nil {
		l.ctr.inc(cFragOKs)
	}
	return firstErr
}

// finishOutput is ip_finish_output2: loopback for our own addresses (the lo
// route, through the device backlog like netif_rx), broadcast, or the
// neighbour layer. It consumes b.
func (l *Layer) finishOutput(nh nextHop, b *pkt.Buffer) error {
	switch nh.kind {
	case kindLocal:
		b.Orphan() // loopback_xmit: the packet stays in the stack
		wire.PrependEthernet(b, l.mac, l.mac, wire.EtherTypeIPv4)
		b.Loopback = true
		l.dev.Receive(b) // a false return was dropped and counted by the device
		return nil
	case kindBroadcast:
		return l.dev.Transmit(wire.BroadcastMAC, wire.EtherTypeIPv4, b)
	case kindMulticast:
		// ip_eth_mc_map: 01:00:5e and the low 23 bits of the group.
		g := nh.via.As4()
		mac := [6]byte{0x01, 0x00, 0x5e, g[1] & 0x7f, g[2], g[3]}
		return l.dev.Transmit(mac[:], wire.EtherTypeIPv4, b)
	}
	return l.neigh.output(nh.via, b, 0)
}
