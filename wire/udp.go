package wire

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/tapstack/tapstack/internal/pkt"
)

// UDPHeaderLen is the length of a UDP header (RFC 768).
const UDPHeaderLen = 8

// Errors returned by ParseUDP.
var (
	ErrUDPTruncated = errors.New("wire: UDP datagram shorter than its header")
	ErrUDPLength    = errors.New("wire: UDP length field disagrees with the IP payload")
)

// UDP is a view over a UDP datagram (header and payload).
type UDP []byte

// ParseUDP checks a UDP datagram carried in an IP payload of len(b) bytes
// and returns the view trimmed to the header's length field, as
// __udp4_lib_rcv does: a length below 8 or above the IP payload is an error
// (UdpInErrors); a shorter length than the payload drops the excess.
func ParseUDP(b []byte) (UDP, error) {
	if len(b) < UDPHeaderLen {
		return nil, ErrUDPTruncated
	}
	n := int(binary.BigEndian.Uint16(b[4:]))
	if n < UDPHeaderLen || n > len(b) {
		return nil, ErrUDPLength
	}
	return UDP(b[:n]), nil
}

func (u UDP) SrcPort() uint16      { return binary.BigEndian.Uint16(u[0:]) }
func (u UDP) DstPort() uint16      { return binary.BigEndian.Uint16(u[2:]) }
func (u UDP) Length() uint16       { return binary.BigEndian.Uint16(u[4:]) }
func (u UDP) Checksum() uint16     { return binary.BigEndian.Uint16(u[6:]) }
func (u UDP) Payload() []byte      { return u[UDPHeaderLen:] }
func (u UDP) SetChecksum(c uint16) { binary.BigEndian.PutUint16(u[6:], c) }

// VerifyChecksum reports whether the datagram's checksum is right for the
// IPv4 pseudo-header (src, dst). A zero checksum field means the sender
// computed none, which IPv4 allows (RFC 768).
func (u UDP) VerifyChecksum(src, dst netip.Addr) bool {
	if u.Checksum() == 0 {
		// No checksum: allowed over IPv4 (RFC 768), not over IPv6 (RFC
		// 8200 §8.1; Linux udp6_csum_init drops it).
		return src.Unmap().Is4()
	}
	return Checksum(u, PseudoHeaderSum(src, dst, IPProtocolUDP, len(u))) == 0xffff
}

// PrependUDP prepends a UDP header to the payload in b and fills in the
// checksum over the pseudo-header of the addresses' family (a computed 0 is
// sent as 0xffff, RFC 768 and RFC 8200 §8.1).
func PrependUDP(b *pkt.Buffer, src, dst netip.AddrPort) UDP {
	u := UDP(b.Prepend(UDPHeaderLen))
	binary.BigEndian.PutUint16(u[0:], src.Port())
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(b.Len()))
	u.SetChecksum(0)
	u = UDP(b.Bytes())
	c := ^Checksum(u, PseudoHeaderSum(src.Addr(), dst.Addr(), IPProtocolUDP, len(u)))
	if c == 0 {
		c = 0xffff
	}
	u.SetChecksum(c)
	return u
}
