package netdev

import (
	"encoding/binary"

	"github.com/tapstack/tapstack/wire"
)

// flowHashL3 is flowHash for the bare IP packet of an L3 device: the same
// keys in the same canonical order with the same mixing, so a flow lands
// on a shard by the same rule on either kind of device. IPv6 and anything
// else go to shard 0 (ok false), as on an Ethernet device.
//
// It mirrors flowHash (flow.go) on the IPv4 header rather than sharing it
// because flowHash starts from an Ethernet frame; the two should become
// one hash of the IP header that flowHash calls after the ethertype check.
func flowHashL3(ip []byte, seed uint32) (hash uint32, ok bool) {
	if len(ip) < 20 || ip[0]>>4 != 4 {
		return 0, false
	}
	ihl := int(ip[0]&0x0f) * 4
	if ihl < 20 || len(ip) < ihl {
		return 0, false
	}
	proto := ip[9]
	src, dst := binary.BigEndian.Uint32(ip[12:]), binary.BigEndian.Uint32(ip[16:])
	var ports uint32
	isFragment := binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 // MF or an offset
	if !isFragment && (proto == wire.IPProtocolTCP || proto == wire.IPProtocolUDP) && len(ip) >= ihl+4 {
		ports = binary.BigEndian.Uint32(ip[ihl:])
	}
	sport, dport := ports>>16, ports&0xffff
	if dst < src || (dst == src && dport < sport) { // __flow_hash_consistentify
		src, dst, sport, dport = dst, src, dport, sport
	}
	h := mix32(seed ^ src)
	h = mix32(h ^ dst)
	h = mix32(h ^ (sport<<16 | dport))
	return mix32(h ^ uint32(proto)), true
}
