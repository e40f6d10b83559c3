package wire

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"

	"github.com/tapstack/tapstack/internal/pkt"
)

// ARPLen is the length of an Ethernet/IPv4 ARP packet (RFC 826).
const ARPLen = 28

// ARP operations.
const (
	ARPRequest uint16 = 1
	ARPReply   uint16 = 2
)

// ARP parse errors.
var (
	ErrARPTruncated   = errors.New("wire: arp packet shorter than 28 bytes")
	ErrARPUnsupported = errors.New("wire: arp packet is not Ethernet/IPv4")
)

// ARP is a view of an Ethernet/IPv4 ARP packet.
type ARP []byte

// ParseARP checks that b is an Ethernet/IPv4 ARP packet (hardware type 1,
// protocol 0x0800, lengths 6 and 4) and returns the 28-byte view; trailing
// padding is cut off. It never allocates.
func ParseARP(b []byte) (ARP, error) {
	if len(b) < ARPLen {
		return nil, ErrARPTruncated
	}
	a := ARP(b[:ARPLen:ARPLen])
	if a.HardwareType() != 1 || a.ProtocolType() != EtherTypeIPv4 || a[4] != 6 || a[5] != 4 {
		return nil, ErrARPUnsupported
	}
	return a, nil
}

// HardwareType is the htype field (1 = Ethernet).
func (a ARP) HardwareType() uint16 { return binary.BigEndian.Uint16(a[0:2]) }

// ProtocolType is the ptype field (0x0800 = IPv4).
func (a ARP) ProtocolType() uint16 { return binary.BigEndian.Uint16(a[2:4]) }

// Op is the operation (ARPRequest or ARPReply).
func (a ARP) Op() uint16 { return binary.BigEndian.Uint16(a[6:8]) }

// SenderMAC is the sender hardware address (a view).
func (a ARP) SenderMAC() net.HardwareAddr { return net.HardwareAddr(a[8:14:14]) }

// SenderIP is the sender protocol address.
func (a ARP) SenderIP() netip.Addr { return netip.AddrFrom4([4]byte(a[14:18])) }

// TargetMAC is the target hardware address (a view).
func (a ARP) TargetMAC() net.HardwareAddr { return net.HardwareAddr(a[18:24:24]) }

// TargetIP is the target protocol address.
func (a ARP) TargetIP() netip.Addr { return netip.AddrFrom4([4]byte(a[24:28])) }

// ARPRepr is the parsed form of an Ethernet/IPv4 ARP packet.
type ARPRepr struct {
	Op                   uint16
	SenderMAC, TargetMAC net.HardwareAddr
	SenderIP, TargetIP   netip.Addr
}

// Emit writes r into a (at least ARPLen bytes). A nil TargetMAC writes zeros.
func (r *ARPRepr) Emit(a ARP) {
	binary.BigEndian.PutUint16(a[0:2], 1)
	binary.BigEndian.PutUint16(a[2:4], EtherTypeIPv4)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], r.Op)
	putMAC(a[8:14], r.SenderMAC)
	s := r.SenderIP.As4()
	copy(a[14:18], s[:])
	putMAC(a[18:24], r.TargetMAC)
	t := r.TargetIP.As4()
	copy(a[24:28], t[:])
}

func putMAC(dst []byte, m net.HardwareAddr) {
	if len(m) == 6 {
		copy(dst, m)
		return
	}
	clear(dst[:6])
}

// PrependARP writes r into b's headroom in front of the window.
func PrependARP(b *pkt.Buffer, r *ARPRepr) ARP {
	a := ARP(b.Prepend(ARPLen))
	r.Emit(a)
	return a
}
