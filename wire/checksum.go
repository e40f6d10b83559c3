// Package wire holds the header views of every protocol the stack speaks:
// small types over the bytes with named accessors, a separate parsed form
// where one helps, and no knowledge of sockets. Parsing never allocates.
package wire

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// Checksum folds the RFC 1071 one's-complement sum of b into initial (a
// partial sum from Checksum or PseudoHeaderSum) and returns the 16-bit
// partial sum, not yet complemented. The one's-complement sum does not
// depend on byte order (RFC 1071 §2(B)), so it adds native little-endian
// 64-bit words with an add-with-carry chain and swaps the bytes of the
// folded result once at the end.
func Checksum(b []byte, initial uint16) uint16 {
	sum, carry := uint64(bits.ReverseBytes16(initial)), uint64(0)
	for len(b) >= 64 {
		sum, carry = bits.Add64(sum, binary.LittleEndian.Uint64(b[0:]), carry)
		sum, carry = bits.Add64(sum, binary.LittleEndian.Uint64(b[8:]), carry)
		sum, carry = bits.Add64(sum, binary.LittleEndian.Uint64(b[16:]), carry)
		sum, carry = bits.Add64(sum, binary.LittleEndian.Uint64(b[24:]), carry)
		sum, carry = bits.Add64(sum, binary.LittleEndian.Uint64(b[32:]), carry)
		sum, carry = bits.Add64(sum, binary.LittleEndian.Uint64(b[40:]), carry)
		sum, carry = bits.Add64(sum, binary.LittleEndian.Uint64(b[48:]), carry)
		sum, carry = bits.Add64(sum, binary.LittleEndian.Uint64(b[56:]), carry)
		b = b[64:]
	}
	for len(b) >= 8 {
		sum, carry = bits.Add64(sum, binary.LittleEndian.Uint64(b), carry)
		b = b[8:]
	}
	if len(b) >= 4 {
		sum, carry = bits.Add64(sum, uint64(binary.LittleEndian.Uint32(b)), carry)
		b = b[4:]
	}
	if len(b) >= 2 {
		sum, carry = bits.Add64(sum, uint64(binary.LittleEndian.Uint16(b)), carry)
		b = b[2:]
	}
	if len(b) == 1 {
		// A trailing odd byte is the high byte of a zero-padded big-endian
		// word: the low byte of a little-endian one.
		sum, carry = bits.Add64(sum, uint64(b[0]), carry)
	}
	sum, carry = bits.Add64(sum, 0, carry)
	sum += carry
	return bits.ReverseBytes16(fold(sum))
}

// ChecksumCombine adds two partial sums.
func ChecksumCombine(a, b uint16) uint16 {
	s := uint32(a) + uint32(b)
	return uint16(s + s>>16)
}

// PseudoHeaderSum is the partial sum of the pseudo-header used by TCP
// and UDP: addresses, protocol and transport length — IPv4's (RFC 9293
// §3.1) or, for IPv6 addresses, IPv6's (RFC 8200 §8.1).
func PseudoHeaderSum(src, dst netip.Addr, proto uint8, length int) uint16 {
	if src.Is4() && dst.Is4() {
		s := src.As4()
		d := dst.As4()
		sum := uint64(binary.BigEndian.Uint32(s[:])) + uint64(binary.BigEndian.Uint32(d[:])) +
			uint64(proto) + uint64(length)
		return fold(sum)
	}
	// IPv6 (RFC 8200 §8.1): both addresses, the upper-layer length as 32
	// bits and the next header; the same one's-complement sum of words.
	s, d := src.As16(), dst.As16()
	sum := uint64(proto) + uint64(uint32(length))
	for i := 0; i < 16; i += 4 {
		sum += uint64(binary.BigEndian.Uint32(s[i:])) + uint64(binary.BigEndian.Uint32(d[i:]))
	}
	return fold(sum)
}

func fold(s uint64) uint16 {
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return uint16(s)
}
