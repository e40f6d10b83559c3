package udp

import (
	"cmp"
	"slices"
)

type counter int

// The Udp group of /proc/net/snmp, in its order.
const (
	cInDatagrams counter = iota
	cNoPorts
	cInErrors
	cOutDatagrams
	cRcvbufErrors
	cSndbufErrors
	cInCsumErrors
	cIgnoredMulti
	cMemErrors
	numCounters
)

var counterNames = [numCounters]string{
	"UdpInDatagrams", "UdpNoPorts", "UdpInErrors", "UdpOutDatagrams", "UdpRcvbufErrors",
	"UdpSndbufErrors", "UdpInCsumErrors", "UdpIgnoredMulti", "UdpMemErrors",
}

// Counters visits the Udp counters in /proc/net/snmp's order, named as
// nstat names them.
func (s *Stack) Counters(visit func(name string, value uint64)) {
	for i := range numCounters {
		visit(counterNames[i], s.mib[i].Load())
	}
}

// Counter returns one counter by its nstat name (0 when unknown).
func (s *Stack) Counter(name string) uint64 {
	for i, n := range counterNames {
		if n == name {
			return s.mib[i].Load()
		}
	}
	return 0
}

func sortSockets(ss []SocketInfo) {
	slices.SortFunc(ss, func(a, b SocketInfo) int {
		if c := cmp.Compare(a.Local.Port(), b.Local.Port()); c != 0 {
			return c
		}
		if c := a.Local.Addr().Compare(b.Local.Addr()); c != 0 {
			return c
		}
		return a.Remote.Compare(b.Remote)
	})
}
