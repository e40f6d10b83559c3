package tcp

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"time"
)

// sipKey is a SipHash-2-4 key (Aumasson & Bernstein, "SipHash: a fast
// short-input PRF"), used like Linux's net_secret and ts_secret.
type sipKey struct{ k0, k1 uint64 }

func sipKeyFrom(b []byte) sipKey {
	return sipKey{binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])}
}

// siphash4u32 hashes four 32-bit words (16 bytes) like Linux's siphash_4u32.
func siphash4u32(k sipKey, a, b, c, d uint32) uint64 {
	v0 := k.k0 ^ 0x736f6d6570736575
	v1 := k.k1 ^ 0x646f72616e646f6d
	v2 := k.k0 ^ 0x6c7967656e657261
	v3 := k.k1 ^ 0x7465646279746573
	round := func() {
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
	}
	for _, m := range [3]uint64{uint64(a) | uint64(b)<<32, uint64(c) | uint64(d)<<32, 16 << 56} {
		v3 ^= m
		round()
		round()
		v0 ^= m
	}
	v2 ^= 0xff
	round()
	round()
	round()
	round()
	return v0 ^ v1 ^ v2 ^ v3
}

func addrWord(a netip.Addr) uint32 {
	b := a.Unmap().As4()
	return binary.BigEndian.Uint32(b[:])
}

// isn returns the RFC 6528 initial sequence number for the connection
// local→remote: ISN = M + F(4-tuple, secret), M a 4 µs-ish clock (Linux
// secure_tcp_seq: siphash + ktime_get_real_ns() >> 6).
func (s *Stack) isn(local, remote netip.AddrPort, now time.Time) seqnum {
	h := siphash4u32(s.isnKey, addrWord(local.Addr()), addrWord(remote.Addr()),
		uint32(local.Port())<<16|uint32(remote.Port()), 0)
	return seqnum(uint32(h) + uint32(uint64(now.UnixNano())>>6))
}

// tsOffset is the per-connection timestamp offset (Linux secure_tcp_ts_off)
// so TSval does not leak uptime and differs between connections.
func (s *Stack) tsOffset(local, remote netip.AddrPort) uint32 {
	return uint32(siphash4u32(s.tsKey, addrWord(local.Addr()), addrWord(remote.Addr()), 0, 0))
}

// tsNow is the timestamp clock in ms (Linux TCP_TS_HZ = 1000).
func (s *Stack) tsNow() uint32 {
	return uint32(s.clock.Now().Sub(s.epoch) / time.Millisecond)
}
