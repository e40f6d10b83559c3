// Package driver holds the link drivers: a TAP device (github.com/songgao/water,
// multi-queue), an in-memory pipe pair with impairment for tests, and a pcap
// tee, an impairing wrapper for any link, and a TAP with virtio-net offloads
// (GSO/TSO); and two links that carry bare IP packets (L3Link): a TUN device
// and a Channel the application injects packets into and takes them from.
// They all satisfy Link, the one interface the device layer sees.
package driver

import (
	"net"

	"github.com/tapstack/tapstack/internal/pkt"
)

// Link is an Ethernet link with one or more queues. Each queue has its own
// reader (netdev runs one goroutine per queue); writes may come from any
// goroutine. Frames are whole Ethernet frames without FCS.
type Link interface {
	// Queues is the number of receive/transmit queues (≥ 1).
	Queues() int
	// ReadFrame blocks until a frame arrives on queue q and copies it into
	// b, returning its length. After Close it returns net.ErrClosed.
	ReadFrame(q int, b []byte) (int, error)
	// WriteFrame sends one frame on queue q (any valid q; the caller picks
	// its shard's queue). It does not retain b.
	WriteFrame(q int, b []byte) error
	// MTU is the largest IP packet the link carries (1500 for Ethernet).
	MTU() int
	// MAC is the hardware address the stack uses on this link.
	MAC() net.HardwareAddr
	// Close stops the link and unblocks every reader.
	Close() error
}

// L3Link is a link that carries bare IP packets: no Ethernet header, no
// hardware address (MAC returns nil), frames that are whole IPv4 or IPv6
// packets told apart by their version nibble, MTU the largest of them.
// Linux gives such a device (a TUN: tun_net_init for IFF_TUN) no
// header_ops and the flags IFF_POINTOPOINT|IFF_NOARP, so netdev demuxes by
// the version nibble (tun_get_user with IFF_NO_PI) and sends without a
// header, and the neighbour layer sends straight to the device (NUD_NOARP,
// neigh_direct_output). A Link without the method carries Ethernet frames.
type L3Link interface {
	Link
	// L3 reports that the link carries bare IP packets. A wrapper answers
	// for the link it wraps.
	L3() bool
}

// IsL3 reports whether l carries bare IP packets (an L3Link whose L3 is
// true).
func IsL3(l Link) bool {
	l3, ok := l.(L3Link)
	return ok && l3.L3()
}

// LargeFrameLink is a Link whose reads may return frames longer than
// MTU()+14: an offload TAP hands over 64 KB GSO super-frames (a TCP segment
// GRO would have built). netdev reads such a link into buffers of
// MaxFrameSize bytes.
type LargeFrameLink interface {
	Link
	// MaxFrameSize is the longest frame ReadFrame returns.
	MaxFrameSize() int
}

// RxInfo is what a link knows of a received frame beyond its bytes.
type RxInfo struct {
	// ChecksumValid: the frame's TCP/UDP checksum need not be verified
	// (Linux CHECKSUM_UNNECESSARY; or CHECKSUM_PARTIAL, a frame the local
	// kernel built and never checksummed, whose checksum field then holds
	// only the pseudo-header sum).
	ChecksumValid bool
}

// RxInfoLink is a link that tells, per frame, what it knows (RxInfo).
// netdev prefers ReadFrameInfo to ReadFrame when a link has it.
type RxInfoLink interface {
	// ReadFrameInfo is ReadFrame that also returns the frame's RxInfo.
	ReadFrameInfo(q int, b []byte) (int, RxInfo, error)
}

// GSOLink is a link that segments TCP/IPv4 super-frames itself (TSO): the
// stack hands it one frame of up to GSOMax bytes and the MSS to cut it at.
type GSOLink interface {
	// WriteGSO sends an Ethernet+IPv4+TCP frame whose IPv4 total length
	// covers the whole payload, to be cut into segments of mss payload bytes
	// (each with its own IPv4 length, ID and checksums). The TCP checksum
	// field is ignored and may be overwritten. It does not retain frame.
	WriteGSO(q int, frame []byte, mss int) error
}

// MaxGSOFrameSize is the largest TCP/IPv4 super-frame: a 65535-byte IPv4
// packet behind an Ethernet header.
const MaxGSOFrameSize = 14 + 65535

// ErrNoGSO is returned by WriteGSO on a link (or wrapper) that cannot
// segment super-frames.
var ErrNoGSO = pkt.ErrNoGSO

// MaxFrameSize is the longest frame l's ReadFrame can return: its
// MaxFrameSize when it is a LargeFrameLink, else MTU()+14.
func MaxFrameSize(l Link) int {
	if lf, ok := l.(LargeFrameLink); ok {
		return lf.MaxFrameSize()
	}
	return l.MTU() + 14
}

// GSOMax is the largest frame l's WriteGSO accepts, 0 when l is not a
// GSOLink (or is a wrapper over a link that is not). A GSOLink without a
// GSOMax method accepts MaxGSOFrameSize.
func GSOMax(l Link) int {
	if g, ok := l.(interface{ GSOMax() int }); ok {
		return g.GSOMax()
	}
	if _, ok := l.(GSOLink); ok {
		return MaxGSOFrameSize
	}
	return 0
}
