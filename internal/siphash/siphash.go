// Package siphash is SipHash-2-4 (Aumasson & Bernstein, "SipHash: a fast
// short-input PRF", 2012), the keyed hash Linux uses for its secrets
// (lib/siphash.c): TCP initial sequence numbers and timestamp offsets,
// SYN cookies and the flow hash that spreads SYNs over a reuseport group.
// It is fed one little-endian 64-bit word at a time so that hashing never
// allocates.
package siphash

import (
	"encoding/binary"
	"math/bits"
)

// Key is a 128-bit SipHash key (Linux siphash_key_t).
type Key struct{ k0, k1 uint64 }

// KeyFrom reads a key from the first 16 bytes of b, little-endian.
func KeyFrom(b []byte) Key {
	return Key{binary.LittleEndian.Uint64(b[0:8]), binary.LittleEndian.Uint64(b[8:16])}
}

// State is a hash in progress: Block each whole 64-bit word of the
// message, then Final with the last one.
type State struct{ v0, v1, v2, v3 uint64 }

// New starts a hash under k.
func New(k Key) State {
	return State{
		v0: k.k0 ^ 0x736f6d6570736575,
		v1: k.k1 ^ 0x646f72616e646f6d,
		v2: k.k0 ^ 0x6c7967656e657261,
		v3: k.k1 ^ 0x7465646279746573,
	}
}

// Block compresses one message word with c=2 SipRounds.
func (s *State) Block(m uint64) {
	s.v0, s.v1, s.v2, s.v3 = compress(s.v0, s.v1, s.v2, s.v3, m)
}

// Final absorbs the last word (message length in the top byte, the trailing
// bytes below it), runs the d=4 finalization rounds and returns the hash.
func (s *State) Final(last uint64) uint64 {
	return finalize(compress(s.v0, s.v1, s.v2, s.v3, last))
}

// The rounds work on the four words as values, not through *State: the
// compiler then keeps them in registers (4× faster than a method per round).

func compress(v0, v1, v2, v3, m uint64) (uint64, uint64, uint64, uint64) {
	v3 ^= m
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	return v0 ^ m, v1, v2, v3
}

func finalize(v0, v1, v2, v3 uint64) uint64 {
	v2 ^= 0xff
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	return v0 ^ v1 ^ v2 ^ v3
}

func sipRound(v0, v1, v2, v3 uint64) (uint64, uint64, uint64, uint64) {
	v0 += v1
	v1 = bits.RotateLeft64(v1, 13) ^ v0
	v0 = bits.RotateLeft64(v0, 32)
	v2 += v3
	v3 = bits.RotateLeft64(v3, 16) ^ v2
	v0 += v3
	v3 = bits.RotateLeft64(v3, 21) ^ v0
	v2 += v1
	v1 = bits.RotateLeft64(v1, 17) ^ v2
	v2 = bits.RotateLeft64(v2, 32)
	return v0, v1, v2, v3
}

// Sum64 is SipHash-2-4 of an arbitrary message; the stack hashes fixed-size
// tuples with Sum4u32 or Block, this one exists for the paper's test vectors.
func Sum64(k Key, msg []byte) uint64 {
	s := New(k)
	n := len(msg)
	for len(msg) >= 8 {
		s.Block(binary.LittleEndian.Uint64(msg))
		msg = msg[8:]
	}
	last := uint64(n) << 56
	for i, c := range msg {
		last |= uint64(c) << (8 * i)
	}
	return s.Final(last)
}

// Sum4u32 mirrors Linux siphash_4u32: 16 bytes, a|b<<32 then c|d<<32.
func Sum4u32(k Key, a, b, c, d uint32) uint64 {
	s := New(k)
	s.Block(uint64(a) | uint64(b)<<32)
	s.Block(uint64(c) | uint64(d)<<32)
	return s.Final(16 << 56)
}
