package wire

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/tapstack/tapstack/internal/pkt"
)

// IPv4 header sizes.
const (
	IPv4MinHeaderLen = 20
	IPv4MaxHeaderLen = 60
	IPv4MaxLen       = 65535
)

// IP protocol numbers.
const (
	IPProtocolICMP uint8 = 1
	IPProtocolTCP  uint8 = 6
	IPProtocolUDP  uint8 = 17
)

// Flag bits of the 16-bit flags+fragment-offset word.
const (
	IPv4FlagDF      uint16 = 0x4000
	IPv4FlagMF      uint16 = 0x2000
	ipv4OffsetMask  uint16 = 0x1fff
	ipv4ReservedBit uint16 = 0x8000
)

// IPv4 parse errors, one per check of ip_rcv_core so that the caller can
// count each the way Linux does.
var (
	ErrIPv4Truncated    = errors.New("wire: ipv4 packet shorter than its header")
	ErrIPv4Version      = errors.New("wire: ipv4 version is not 4")
	ErrIPv4HeaderLen    = errors.New("wire: ipv4 IHL below 5")
	ErrIPv4TotalLen     = errors.New("wire: ipv4 total length below header length")
	ErrIPv4TotalLenLong = errors.New("wire: ipv4 total length beyond the packet")
)

// IPv4 is a view of an IPv4 header followed by its payload.
type IPv4 []byte

// ParseIPv4Header checks what ip_rcv_core checks before the header
// checksum: at least 20 bytes, version 4, IHL ≥ 5, the whole header present.
// The view returned may still be longer or shorter than TotalLen.
func ParseIPv4Header(b []byte) (IPv4, error) {
	if len(b) < IPv4MinHeaderLen {
		return nil, ErrIPv4Truncated
	}
	h := IPv4(b)
	if h.Version() != 4 {
		return nil, ErrIPv4Version
	}
	if h.IHL() < 5 {
		return nil, ErrIPv4HeaderLen
	}
	if h.HeaderLen() > len(b) {
		return nil, ErrIPv4Truncated
	}
	return h, nil
}

// ParseIPv4 checks the header (as ParseIPv4Header) and the total length,
// and returns the view cut to TotalLen (link padding removed). It does not
// verify the checksum: see ChecksumValid. It never allocates.
func ParseIPv4(b []byte) (IPv4, error) {
	h, err := ParseIPv4Header(b)
	if err != nil {
		return nil, err
	}
	return h.TrimToTotalLen()
}

// TrimToTotalLen checks TotalLen against the header length and the bytes
// present and returns the view cut to TotalLen.
func (h IPv4) TrimToTotalLen() (IPv4, error) {
	n := int(h.TotalLen())
	if n > len(h) {
		return nil, ErrIPv4TotalLenLong
	}
	if n < h.HeaderLen() {
		return nil, ErrIPv4TotalLen
	}
	return h[:n:n], nil
}

// Version is the IP version (4).
func (h IPv4) Version() uint8 { return h[0] >> 4 }

// IHL is the header length in 32-bit words.
func (h IPv4) IHL() uint8 { return h[0] & 0x0f }

// HeaderLen is the header length in bytes.
func (h IPv4) HeaderLen() int { return int(h[0]&0x0f) * 4 }

// TOS is the type-of-service byte (DSCP and ECN).
func (h IPv4) TOS() uint8 { return h[1] }

// TotalLen is the total length field.
func (h IPv4) TotalLen() uint16 { return binary.BigEndian.Uint16(h[2:4]) }

// ID is the identification field.
func (h IPv4) ID() uint16 { return binary.BigEndian.Uint16(h[4:6]) }

// FlagsFragOff is the raw flags + fragment offset word.
func (h IPv4) FlagsFragOff() uint16 { return binary.BigEndian.Uint16(h[6:8]) }

// DF reports the don't-fragment flag.
func (h IPv4) DF() bool { return h.FlagsFragOff()&IPv4FlagDF != 0 }

// MF reports the more-fragments flag.
func (h IPv4) MF() bool { return h.FlagsFragOff()&IPv4FlagMF != 0 }

// FragOffset is the fragment offset in bytes.
func (h IPv4) FragOffset() int { return int(h.FlagsFragOff()&ipv4OffsetMask) * 8 }

// IsFragment reports whether the packet is a fragment (MF set or offset ≠ 0).
func (h IPv4) IsFragment() bool { return h.FlagsFragOff()&(IPv4FlagMF|ipv4OffsetMask) != 0 }

// TTL is the time-to-live.
func (h IPv4) TTL() uint8 { return h[8] }

// Protocol is the payload protocol number.
func (h IPv4) Protocol() uint8 { return h[9] }

// HeaderChecksum is the checksum field.
func (h IPv4) HeaderChecksum() uint16 { return binary.BigEndian.Uint16(h[10:12]) }

// Src is the source address.
func (h IPv4) Src() netip.Addr { return netip.AddrFrom4([4]byte(h[12:16])) }

// Dst is the destination address.
func (h IPv4) Dst() netip.Addr { return netip.AddrFrom4([4]byte(h[16:20])) }

// Options is the options region (empty when IHL is 5).
func (h IPv4) Options() []byte { return h[IPv4MinHeaderLen:h.HeaderLen()] }

// Header is the whole header including options.
func (h IPv4) Header() []byte { return h[:h.HeaderLen()] }

// Payload is everything after the header (cut the view with
// TrimToTotalLen first to drop link padding).
func (h IPv4) Payload() []byte { return h[h.HeaderLen():] }

// ChecksumValid reports whether the header checksum verifies (ip_fast_csum).
func (h IPv4) ChecksumValid() bool { return Checksum(h[:h.HeaderLen()], 0) == 0xffff }

// SetVersionIHL sets version 4 and the header length in bytes (multiple of 4).
func (h IPv4) SetVersionIHL(headerLen int) { h[0] = 4<<4 | uint8(headerLen/4)&0x0f }

// SetTOS sets the type-of-service byte.
func (h IPv4) SetTOS(v uint8) { h[1] = v }

// SetTotalLen sets the total length field.
func (h IPv4) SetTotalLen(v uint16) { binary.BigEndian.PutUint16(h[2:4], v) }

// SetID sets the identification field.
func (h IPv4) SetID(v uint16) { binary.BigEndian.PutUint16(h[4:6], v) }

// SetFlagsFragOff sets the raw flags + fragment offset word.
func (h IPv4) SetFlagsFragOff(v uint16) { binary.BigEndian.PutUint16(h[6:8], v) }

// SetTTL sets the time-to-live.
func (h IPv4) SetTTL(v uint8) { h[8] = v }

// SetProtocol sets the protocol number.
func (h IPv4) SetProtocol(v uint8) { h[9] = v }

// SetSrc sets the source address (an IPv4 address).
func (h IPv4) SetSrc(a netip.Addr) { b := a.As4(); copy(h[12:16], b[:]) }

// SetDst sets the destination address (an IPv4 address).
func (h IPv4) SetDst(a netip.Addr) { b := a.As4(); copy(h[16:20], b[:]) }

// SetChecksum computes and stores the header checksum.
func (h IPv4) SetChecksum() {
	h[10], h[11] = 0, 0
	binary.BigEndian.PutUint16(h[10:12], ^Checksum(h[:h.HeaderLen()], 0))
}

// IPv4Repr is the parsed form of an IPv4 header.
type IPv4Repr struct {
	TOS        uint8
	ID         uint16
	DF, MF     bool
	FragOffset int // bytes, multiple of 8
	TTL        uint8
	Protocol   uint8
	Src, Dst   netip.Addr
	Options    []byte // multiple of 4 bytes, at most 40
	PayloadLen int
}

// ParseIPv4Repr reads the header fields of h (already parsed) into r. Options
// aliases h.
func ParseIPv4Repr(h IPv4, r *IPv4Repr) {
	*r = IPv4Repr{
		TOS: h.TOS(), ID: h.ID(), DF: h.DF(), MF: h.MF(), FragOffset: h.FragOffset(),
		TTL: h.TTL(), Protocol: h.Protocol(), Src: h.Src(), Dst: h.Dst(),
		Options: h.Options(), PayloadLen: len(h) - h.HeaderLen(),
	}
}

// HeaderLen is the length of the header r emits.
func (r *IPv4Repr) HeaderLen() int { return IPv4MinHeaderLen + (len(r.Options)+3)&^3 }

// Emit writes the header described by r into h (at least HeaderLen bytes),
// with total length HeaderLen+PayloadLen, and computes the checksum.
func (r *IPv4Repr) Emit(h IPv4) {
	hl := r.HeaderLen()
	h.SetVersionIHL(hl)
	h.SetTOS(r.TOS)
	h.SetTotalLen(uint16(hl + r.PayloadLen))
	h.SetID(r.ID)
	ff := uint16(r.FragOffset/8) & ipv4OffsetMask
	if r.DF {
		ff |= IPv4FlagDF
	}
	if r.MF {
		ff |= IPv4FlagMF
	}
	h.SetFlagsFragOff(ff)
	h.SetTTL(r.TTL)
	h.SetProtocol(r.Protocol)
	h.SetSrc(r.Src)
	h.SetDst(r.Dst)
	n := copy(h[IPv4MinHeaderLen:hl], r.Options)
	clear(h[IPv4MinHeaderLen+n : hl]) // pad with End-of-Options
	h.SetChecksum()
}

// PrependIPv4 writes the header described by r into b's headroom in front of
// the window (the payload); PayloadLen is taken from b.Len(). It returns the
// view of the whole packet.
func PrependIPv4(b *pkt.Buffer, r *IPv4Repr) IPv4 {
	r.PayloadLen = b.Len()
	b.Prepend(r.HeaderLen())
	h := IPv4(b.Bytes())
	r.Emit(h)
	return h
}
