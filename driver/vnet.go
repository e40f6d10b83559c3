package driver

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/tapstack/tapstack/wire"
)

// vnetHdrLen is the size of struct virtio_net_hdr_v1 (with num_buffers),
// the header set with TUNSETVNETHDRSZ in front of every frame.
const vnetHdrLen = 12

// virtio_net_hdr flags and gso_type values (include/uapi/linux/virtio_net.h).
const (
	vnetFlagNeedsCsum = 0x01
	vnetFlagDataValid = 0x02
	vnetGSONone       = 0x00
	vnetGSOTCPv4      = 0x01
	vnetGSOECN        = 0x80
)

// vnetHdr is a view of a virtio_net_hdr_v1, little-endian (TUNSETVNETLE).
type vnetHdr []byte

func (h vnetHdr) flags() uint8        { return h[0] }
func (h vnetHdr) gsoType() uint8      { return h[1] }
func (h vnetHdr) gsoSize() int        { return int(binary.LittleEndian.Uint16(h[4:])) }
func (h vnetHdr) csumStart() int      { return int(binary.LittleEndian.Uint16(h[6:])) }
func (h vnetHdr) csumOffset() int     { return int(binary.LittleEndian.Uint16(h[8:])) }
func (h vnetHdr) setFlags(f uint8)    { h[0] = f }
func (h vnetHdr) setGSOType(t uint8)  { h[1] = t }
func (h vnetHdr) setHdrLen(n int)     { binary.LittleEndian.PutUint16(h[2:], uint16(n)) }
func (h vnetHdr) setGSOSize(n int)    { binary.LittleEndian.PutUint16(h[4:], uint16(n)) }
func (h vnetHdr) setCsumStart(n int)  { binary.LittleEndian.PutUint16(h[6:], uint16(n)) }
func (h vnetHdr) setCsumOffset(n int) { binary.LittleEndian.PutUint16(h[8:], uint16(n)) }
func (h vnetHdr) clear()              { clear(h[:vnetHdrLen]) }

var (
	errBadCsumRange = errors.New("driver: virtio header checksum range outside the frame")
	errNotTCPv4     = errors.New("driver: GSO frame is not TCP over IPv4")
)

// completeChecksum finishes a CHECKSUM_PARTIAL frame as skb_checksum_help
// does: the field at csum_start+csum_offset already holds the pseudo-header
// sum, so the one's-complement sum from csum_start on, folded and
// complemented, is the checksum (0 sent as 0xffff, CSUM_MANGLED_0).
// partialChecksumInFrame reports whether a NEEDS_CSUM header's checksum
// range lies inside a frame of n bytes (DATA_VALID needs no range).
func partialChecksumInFrame(h vnetHdr, n int) bool {
	if h.flags()&vnetFlagNeedsCsum == 0 {
		return true
	}
	return h.csumStart()+h.csumOffset()+2 <= n
}

func completeChecksum(h vnetHdr, frame []byte) error {
	if h.flags()&vnetFlagNeedsCsum == 0 {
		return nil
	}
	start, field := h.csumStart(), h.csumStart()+h.csumOffset()
	if field+2 > len(frame) {
		return errBadCsumRange
	}
	sum := ^wire.Checksum(frame[start:], 0)
	if sum == 0 {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(frame[field:], sum)
	return nil
}

// gsoHeader fills h for a TCP/IPv4 super-frame to be cut at mss
// (virtio_net_hdr_from_skb for a CHECKSUM_PARTIAL TCPv4 skb), and puts the
// pseudo-header sum in the frame's TCP checksum field as the kernel expects
// of a partial checksum.
func gsoHeader(h vnetHdr, frame []byte, mss int) error {
	if len(frame) < 14+20 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
		return errNotTCPv4
	}
	ip := frame[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ihl < 20 || ip[9] != 6 || len(ip) < ihl+20 {
		return errNotTCPv4
	}
	totLen := int(binary.BigEndian.Uint16(ip[2:]))
	tcp := ip[ihl:]
	doff := int(tcp[12]>>4) * 4
	if totLen != len(ip) || doff < 20 || len(tcp) < doff {
		return errNotTCPv4
	}
	var src, dst [4]byte
	copy(src[:], ip[12:16])
	copy(dst[:], ip[16:20])
	pseudo := wire.PseudoHeaderSum(netip.AddrFrom4(src), netip.AddrFrom4(dst), 6, len(tcp))
	binary.BigEndian.PutUint16(tcp[16:], pseudo)

	h.clear()
	h.setFlags(vnetFlagNeedsCsum)
	h.setCsumStart(14 + ihl)
	h.setCsumOffset(16)
	h.setHdrLen(14 + ihl + doff)
	if len(tcp)-doff > mss {
		t := uint8(vnetGSOTCPv4)
		if tcp[13]&0x80 != 0 { // CWR: the kernel keeps it on the first segment only
			t |= vnetGSOECN
		}
		h.setGSOType(t)
		h.setGSOSize(mss)
	}
	return nil
}
