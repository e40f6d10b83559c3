package tcp

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/tapstack/tapstack/internal/siphash"
)

func addrWord(a netip.Addr) uint32 {
	b := a.Unmap().As4()
	return binary.BigEndian.Uint32(b[:])
}

// addrHash is the keyed hash of two addresses and two words, as Linux's
// secure_tcp_seq, secure_tcp_ts_off and inet_ehashfn hash a connection:
// IPv4 addresses as one word each (SipHash of four words), IPv6 ones whole
// (secure_tcpv6_seq hashes all 16 bytes of each).
func addrHash(k siphash.Key, a, b netip.Addr, w3, w4 uint32) uint64 {
	a, b = a.Unmap(), b.Unmap()
	if a.Is4() && b.Is4() {
		return siphash.Sum4u32(k, addrWord(a), addrWord(b), w3, w4)
	}
	a16, b16 := a.As16(), b.As16()
	s := siphash.New(k)
	s.Block(binary.LittleEndian.Uint64(a16[0:8]))
	s.Block(binary.LittleEndian.Uint64(a16[8:16]))
	s.Block(binary.LittleEndian.Uint64(b16[0:8]))
	s.Block(binary.LittleEndian.Uint64(b16[8:16]))
	s.Block(uint64(w3) | uint64(w4)<<32)
	return s.Final(40 << 56)
}

// isn returns the RFC 6528 initial sequence number for the connection
// local→remote: ISN = M + F(4-tuple, secret), M a 4 µs-ish clock (Linux
// secure_tcp_seq: siphash + ktime_get_real_ns() >> 6).
func (s *Stack) isn(local, remote netip.AddrPort, now time.Time) seqnum {
	h := addrHash(s.isnKey, local.Addr(), remote.Addr(), uint32(local.Port())<<16|uint32(remote.Port()), 0)
	return seqnum(uint32(h) + uint32(uint64(now.UnixNano())>>6))
}

// tsOffset is the per-connection timestamp offset (Linux secure_tcp_ts_off)
// so TSval does not leak uptime and differs between connections.
func (s *Stack) tsOffset(local, remote netip.AddrPort) uint32 {
	return uint32(addrHash(s.tsKey, local.Addr(), remote.Addr(), 0, 0))
}

// tsNow is the timestamp clock in ms (Linux TCP_TS_HZ = 1000).
func (s *Stack) tsNow() uint32 {
	return uint32(s.clock.Now().Sub(s.epoch) / time.Millisecond)
}
