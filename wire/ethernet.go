package wire

import (
	"encoding/binary"
	"errors"
	"net"

	"github.com/tapstack/tapstack/internal/pkt"
)

// EthernetHeaderLen is the length of an untagged Ethernet II header.
const EthernetHeaderLen = 14

// EtherTypes the stack knows by name.
const (
	EtherTypeIPv4 uint16 = 0x0800
	EtherTypeARP  uint16 = 0x0806
	EtherTypeVLAN uint16 = 0x8100 // 802.1Q tag: the stack drops and counts tagged frames
	EtherTypeIPv6 uint16 = 0x86dd
)

// ErrEthernetTruncated reports a frame shorter than an Ethernet header.
var ErrEthernetTruncated = errors.New("wire: ethernet frame shorter than 14 bytes")

// Ethernet is a view of an Ethernet II frame: header then payload.
type Ethernet []byte

// ParseEthernet checks that b holds a whole Ethernet header and returns the
// view. It never allocates.
func ParseEthernet(b []byte) (Ethernet, error) {
	if len(b) < EthernetHeaderLen {
		return nil, ErrEthernetTruncated
	}
	return Ethernet(b), nil
}

// Dst is the destination hardware address (a view into the frame).
func (e Ethernet) Dst() net.HardwareAddr { return net.HardwareAddr(e[0:6:6]) }

// Src is the source hardware address (a view into the frame).
func (e Ethernet) Src() net.HardwareAddr { return net.HardwareAddr(e[6:12:12]) }

// EtherType is the type field (0x8100 for an 802.1Q-tagged frame).
func (e Ethernet) EtherType() uint16 { return binary.BigEndian.Uint16(e[12:14]) }

// Payload is everything after the header.
func (e Ethernet) Payload() []byte { return e[EthernetHeaderLen:] }

// SetDst copies a 6-byte address into the destination field.
func (e Ethernet) SetDst(a net.HardwareAddr) { copy(e[0:6], a) }

// SetSrc copies a 6-byte address into the source field.
func (e Ethernet) SetSrc(a net.HardwareAddr) { copy(e[6:12], a) }

// SetEtherType sets the type field.
func (e Ethernet) SetEtherType(t uint16) { binary.BigEndian.PutUint16(e[12:14], t) }

// IsBroadcastMAC reports whether a is ff:ff:ff:ff:ff:ff.
func IsBroadcastMAC(a []byte) bool {
	return len(a) == 6 && a[0]&a[1]&a[2]&a[3]&a[4]&a[5] == 0xff
}

// IsMulticastMAC reports whether a has the group bit set (broadcast included).
func IsMulticastMAC(a []byte) bool { return len(a) == 6 && a[0]&1 == 1 }

// BroadcastMAC is ff:ff:ff:ff:ff:ff. Do not modify it.
var BroadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// PrependEthernet writes an Ethernet header into b's headroom in front of
// the current window (the L3 packet) and returns the header view.
func PrependEthernet(b *pkt.Buffer, dst, src net.HardwareAddr, etherType uint16) Ethernet {
	e := Ethernet(b.Prepend(EthernetHeaderLen))
	e.SetDst(dst)
	e.SetSrc(src)
	e.SetEtherType(etherType)
	return e
}
