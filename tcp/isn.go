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

// isn returns the RFC 6528 initial sequence number for the connection
// local→remote: ISN = M + F(4-tuple, secret), M a 4 µs-ish clock (Linux
// secure_tcp_seq: siphash + ktime_get_real_ns() >> 6).
func (s *Stack) isn(local, remote netip.AddrPort, now time.Time) seqnum {
	h := siphash.Sum4u32(s.isnKey, addrWord(local.Addr()), addrWord(remote.Addr()),
		uint32(local.Port())<<16|uint32(remote.Port()), 0)
	return seqnum(uint32(h) + uint32(uint64(now.UnixNano())>>6))
}

// tsOffset is the per-connection timestamp offset (Linux secure_tcp_ts_off)
// so TSval does not leak uptime and differs between connections.
func (s *Stack) tsOffset(local, remote netip.AddrPort) uint32 {
	return uint32(siphash.Sum4u32(s.tsKey, addrWord(local.Addr()), addrWord(remote.Addr()), 0, 0))
}

// tsNow is the timestamp clock in ms (Linux TCP_TS_HZ = 1000).
func (s *Stack) tsNow() uint32 {
	return uint32(s.clock.Now().Sub(s.epoch) / time.Millisecond)
}
