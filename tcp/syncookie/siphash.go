package syncookie

import (
	"encoding/binary"
	"math/bits"
)

// sipKey is a 128-bit SipHash key (Linux siphash_key_t).
type sipKey struct{ k0, k1 uint64 }

func sipKeyFrom(b []byte) sipKey {
	return sipKey{binary.LittleEndian.Uint64(b[0:8]), binary.LittleEndian.Uint64(b[8:16])}
}

// sipState is SipHash-2-4 (Aumasson & Bernstein, "SipHash: a fast short-input PRF", 2012)
// fed one little-endian 64-bit word at a time so that hashing never allocates.
type sipState struct{ v0, v1, v2, v3 uint64 }

func newSip(k sipKey) sipState {
	return sipState{
		v0: k.k0 ^ 0x736f6d6570736575,
		v1: k.k1 ^ 0x646f72616e646f6d,
		v2: k.k0 ^ 0x6c7967656e657261,
		v3: k.k1 ^ 0x7465646279746573,
	}
}

func (s *sipState) round() {
	s.v0 += s.v1
	s.v1 = bits.RotateLeft64(s.v1, 13)
	s.v1 ^= s.v0
	s.v0 = bits.RotateLeft64(s.v0, 32)
	s.v2 += s.v3
	s.v3 = bits.RotateLeft64(s.v3, 16)
	s.v3 ^= s.v2
	s.v0 += s.v3
	s.v3 = bits.RotateLeft64(s.v3, 21)
	s.v3 ^= s.v0
	s.v2 += s.v1
	s.v1 = bits.RotateLeft64(s.v1, 17)
	s.v1 ^= s.v2
	s.v2 = bits.RotateLeft64(s.v2, 32)
}

// block compresses one message word with c=2 SipRounds.
func (s *sipState) block(m uint64) {
	s.v3 ^= m
	s.round()
	s.round()
	s.v0 ^= m
}

// final absorbs the last word (message length in the top byte, the trailing
// bytes below it) and runs the d=4 finalization rounds.
func (s *sipState) final(last uint64) uint64 {
	s.block(last)
	s.v2 ^= 0xff
	s.round()
	s.round()
	s.round()
	s.round()
	return s.v0 ^ s.v1 ^ s.v2 ^ s.v3
}

// sum64 is SipHash-2-4 of an arbitrary message; the cookie path uses the
// fixed-size helpers below, this one exists for the paper's test vectors.
func sum64(k sipKey, msg []byte) uint64 {
	s := newSip(k)
	n := len(msg)
	for len(msg) >= 8 {
		s.block(binary.LittleEndian.Uint64(msg))
		msg = msg[8:]
	}
	last := uint64(n) << 56
	for i, c := range msg {
		last |= uint64(c) << (8 * i)
	}
	return s.final(last)
}

// sum4u32 mirrors Linux siphash_4u32: 16 bytes, a|b<<32 then c|d<<32.
func sum4u32(k sipKey, a, b, c, d uint32) uint64 {
	s := newSip(k)
	s.block(uint64(a) | uint64(b)<<32)
	s.block(uint64(c) | uint64(d)<<32)
	return s.final(16 << 56)
}
