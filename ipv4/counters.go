package ipv4

import (
	"strconv"
	"sync/atomic"
)

// counter indexes, in the order Counters visits them (/proc/net/snmp then
// /proc/net/netstat IpExt, then /proc/net/stat/arp_cache).
const (
	cInReceives = iota
	cInHdrErrors
	cInAddrErrors
	cInUnknownProtos
	cInDiscards
	cInDelivers
	cOutRequests
	cOutDiscards
	cOutNoRoutes
	cReasmTimeout
	cReasmReqds
	cReasmOKs
	cReasmFails
	cFragOKs
	cFragFails
	cFragCreates
	cExtInTruncatedPkts
	cExtInCsumErrors
	cExtInBcastPkts
	cExtInOctets
	cExtOutOctets
	cExtReasmOverlaps
	cIcmpInMsgs
	cIcmpInErrors
	cIcmpInCsumErrors
	cIcmpOutMsgs
	cIcmpOutErrors
	cIcmpOutRateLimitGlobal
	cIcmpOutRateLimitHost
	cArpAllocs
	cArpDestroys
	cArpResFailed
	cArpUnresolvedDiscards
	cArpTableFulls
	cArpForcedGcRuns
	cArpRcvProbesMcast
	cArpRcvProbesUcast
	cArpInDiscards
	numCounters
)

var counterNames = [numCounters]string{
	"IpInReceives", "IpInHdrErrors", "IpInAddrErrors", "IpInUnknownProtos", "IpInDiscards", "IpInDelivers",
	"IpOutRequests", "IpOutDiscards", "IpOutNoRoutes", "IpReasmTimeout", "IpReasmReqds", "IpReasmOKs",
	"IpReasmFails", "IpFragOKs", "IpFragFails", "IpFragCreates",
	"IpExtInTruncatedPkts", "IpExtInCsumErrors", "IpExtInBcastPkts", "IpExtInOctets", "IpExtOutOctets", "IpExtReasmOverlaps",
	"IcmpInMsgs", "IcmpInErrors", "IcmpInCsumErrors", "IcmpOutMsgs", "IcmpOutErrors",
	"IcmpOutRateLimitGlobal", "IcmpOutRateLimitHost",
	// /proc/net/stat/arp_cache columns; ArpInDiscards counts malformed ARP packets.
	"ArpCacheAllocs", "ArpCacheDestroys", "ArpCacheResFailed", "ArpCacheUnresolvedDiscards", "ArpCacheTableFulls",
	"ArpCacheForcedGcRuns", "ArpCacheRcvProbesMcast", "ArpCacheRcvProbesUcast", "ArpInDiscards",
}

// icmpTypeNames are the per-type Icmp counters of /proc/net/snmp, derived
// from the IcmpMsg per-type counts as icmp_put does.
var icmpTypeNames = []struct {
	typ     uint8
	in, out string
}{
	{3, "DestUnreachs", "DestUnreachs"}, {11, "TimeExcds", "TimeExcds"}, {12, "ParmProbs", "ParmProbs"},
	{4, "SrcQuenchs", "SrcQuenchs"}, {5, "Redirects", "Redirects"}, {8, "Echos", "Echos"},
	{0, "EchoReps", "EchoReps"}, {13, "Timestamps", "Timestamps"}, {14, "TimestampReps", "TimestampReps"},
	{17, "AddrMasks", "AddrMasks"}, {18, "AddrMaskReps", "AddrMaskReps"},
}

var (
	icmpMsgInNames  [256]string
	icmpMsgOutNames [256]string
)

func init() {
	for i := range 256 {
		icmpMsgInNames[i] = "IcmpMsgInType" + strconv.Itoa(i)
		icmpMsgOutNames[i] = "IcmpMsgOutType" + strconv.Itoa(i)
	}
}

type counters struct {
	c       [numCounters]atomic.Uint64
	icmpIn  [256]atomic.Uint64
	icmpOut [256]atomic.Uint64
}

func (c *counters) inc(i int)           { c.c[i].Add(1) }
func (c *counters) add(i int, n uint64) { c.c[i].Add(n) }
func (c *counters) get(i int) uint64    { return c.c[i].Load() }

// Counters visits every counter with its Linux nstat name, in a fixed
// order: Ip*, IpExt*, Icmp*, IcmpMsg* (non-zero types only, as the kernel
// prints them), then the ARP cache statistics.
func (l *Layer) Counters(visit func(name string, value uint64)) {
	c := &l.ctr
	for i := range cIcmpInMsgs {
		visit(counterNames[i], c.get(i))
	}
	visit("IcmpInMsgs", c.get(cIcmpInMsgs))
	visit("IcmpInErrors", c.get(cIcmpInErrors))
	visit("IcmpInCsumErrors", c.get(cIcmpInCsumErrors))
	for _, t := range icmpTypeNames {
		visit("IcmpIn"+t.in, c.icmpIn[t.typ].Load())
	}
	visit("IcmpOutMsgs", c.get(cIcmpOutMsgs))
	visit("IcmpOutErrors", c.get(cIcmpOutErrors))
	visit("IcmpOutRateLimitGlobal", c.get(cIcmpOutRateLimitGlobal))
	visit("IcmpOutRateLimitHost", c.get(cIcmpOutRateLimitHost))
	for _, t := range icmpTypeNames {
		visit("IcmpOut"+t.out, c.icmpOut[t.typ].Load())
	}
	for i := range 256 {
		if v := c.icmpIn[i].Load(); v != 0 {
			visit(icmpMsgInNames[i], v)
		}
	}
	for i := range 256 {
		if v := c.icmpOut[i].Load(); v != 0 {
			visit(icmpMsgOutNames[i], v)
		}
	}
	for i := cArpAllocs; i < numCounters; i++ {
		visit(counterNames[i], c.get(i))
	}
}

// Counter returns one counter by its nstat name (0 if unknown); for tests
// and tools.
func (l *Layer) Counter(name string) uint64 {
	var v uint64
	l.Counters(func(n string, x uint64) {
		if n == name {
			v = x
		}
	})
	return v
}
