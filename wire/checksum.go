// Package wire holds the header views of every protocol the stack speaks:
// small types over the bytes with named accessors, a separate parsed form
// where one helps, and no knowledge of sockets. Parsing never allocates.
package wire

import (
	"encoding/binary"
	"net/netip"
)

// Checksum folds the RFC 1071 one's-complement sum of b into initial (a
// partial sum from Checksum or PseudoHeaderSum) and returns the 16-bit
// partial sum, not yet complemented. It sums 8 bytes at a time into a 64-bit
// accumulator, which is several times faster than 16-bit steps.
func Checksum(b []byte, initial uint16) uint16 {
	sum := uint64(initial)
	for len(b) >= 32 {
		sum = add64(sum, binary.BigEndian.Uint64(b[0:]))
		sum = add64(sum, binary.BigEndian.Uint64(b[8:]))
		sum = add64(sum, binary.BigEndian.Uint64(b[16:]))
		sum = add64(sum, binary.BigEndian.Uint64(b[24:]))
		b = b[32:]
	}
	for len(b) >= 8 {
		sum = add64(sum, binary.BigEndian.Uint64(b))
		b = b[8:]
	}
	if len(b) >= 4 {
		sum = add64(sum, uint64(binary.BigEndian.Uint32(b)))
		b = b[4:]
	}
	if len(b) >= 2 {
		sum = add64(sum, uint64(binary.BigEndian.Uint16(b)))
		b = b[2:]
	}
	if len(b) == 1 {
		sum = add64(sum, uint64(b[0])<<8)
	}
	return fold(sum)
}

func add64(a, b uint64) uint64 {
	s := a + b
	if s < a {
		s++
	}
	return s
}

func fold(s uint64) uint16 {
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return uint16(s)
}

// ChecksumCombine adds two partial sums.
func ChecksumCombine(a, b uint16) uint16 {
	s := uint32(a) + uint32(b)
	return uint16(s + s>>16)
}

// PseudoHeaderSum is the partial sum of the IPv4 pseudo-header used by TCP
// and UDP (RFC 9293 §3.1): addresses, protocol and transport length.
func PseudoHeaderSum(src, dst netip.Addr, proto uint8, length int) uint16 {
	s := src.As4()
	d := dst.As4()
	sum := uint64(binary.BigEndian.Uint32(s[:])) + uint64(binary.BigEndian.Uint32(d[:])) +
		uint64(proto) + uint64(length)
	return fold(sum)
}
