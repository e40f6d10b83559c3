package netdev

import (
	"encoding/binary"

	"github.com/tapstack/tapstack/wire"
)

func sameMAC(a []byte, b [6]byte) bool { return [6]byte(a) == b }

// flowHash hashes an IPv4 frame's flow keys as the flow dissector does:
// TCP/UDP non-fragments on the 4-tuple, other IPv4 (fragments included) on
// (src, dst, proto). The keys are put in a canonical order first
// (__flow_hash_consistentify), so both directions of a flow hash alike.
// ok is false for frames that are not IPv4: they go to shard 0.
func flowHash(frame []byte, seed uint32) (hash uint32, ok bool) {
	if wire.Ethernet(frame).EtherType() != wire.EtherTypeIPv4 {
		return 0, false
	}
	ip := wire.Ethernet(frame).Payload()
	if len(ip) < 20 || ip[0]>>4 != 4 {
		return 0, false
	}
	ihl := int(ip[0]&0x0f) * 4
	if ihl < 20 || len(ip) < ihl {
		return 0, false
	}
	proto := ip[9]
	src, dst := binary.BigEndian.Uint32(ip[12:]), binary.BigEndian.Uint32(ip[16:])
	var sport, dport uint32
	isFragment := binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 // MF or an offset
	if !isFragment && (proto == wire.IPProtocolTCP || proto == wire.IPProtocolUDP) && len(ip) >= ihl+4 {
		sport, dport = uint32(binary.BigEndian.Uint16(ip[ihl:])), uint32(binary.BigEndian.Uint16(ip[ihl+2:]))
	}
	if dst < src || (dst == src && dport < sport) {
		src, dst, sport, dport = dst, src, dport, sport
	}
	h := mix32(seed ^ src)
	h = mix32(h ^ dst)
	h = mix32(h ^ (sport<<16 | dport))
	return mix32(h ^ uint32(proto)), true
}

// mix32 is a 32-bit finaliser (avalanche) in the style of MurmurHash3.
func mix32(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// reciprocalScale maps a 32-bit hash onto [0, n) without a division, as
// RPS does with reciprocal_scale.
func reciprocalScale(hash uint32, n int) int {
	return int((uint64(hash) * uint64(n)) >> 32)
}
