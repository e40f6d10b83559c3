package ipv4

import "sync/atomic"

// Sysctls are the live-tunable knobs of the IPv4 layer, named after the
// Linux sysctls they mirror; NewSysctls sets the Linux defaults.
type Sysctls struct {
	DefaultTTL           atomic.Int64 // net.ipv4.ip_default_ttl
	IpfragHighThresh     atomic.Int64 // net.ipv4.ipfrag_high_thresh, bytes
	IpfragTime           atomic.Int64 // net.ipv4.ipfrag_time, seconds
	IcmpEchoIgnoreAll    atomic.Int64 // net.ipv4.icmp_echo_ignore_all
	IcmpRatelimit        atomic.Int64 // net.ipv4.icmp_ratelimit, ms per peer
	NeighUnresQlen       atomic.Int64 // net.ipv4.neigh.default.unres_qlen, packets
	NeighBaseReachableMs atomic.Int64 // net.ipv4.neigh.default.base_reachable_time_ms
	NeighRetransMs       atomic.Int64 // net.ipv4.neigh.default.retrans_time_ms
	NeighMcastSolicit    atomic.Int64 // net.ipv4.neigh.default.mcast_solicit
	NeighGcThresh3       atomic.Int64 // net.ipv4.neigh.default.gc_thresh3
}

// NewSysctls returns the Linux defaults.
func NewSysctls() *Sysctls {
	s := &Sysctls{}
	s.DefaultTTL.Store(64)
	s.IpfragHighThresh.Store(4 << 20)
	s.IpfragTime.Store(30)
	s.IcmpEchoIgnoreAll.Store(0)
	s.IcmpRatelimit.Store(1000)
	s.NeighUnresQlen.Store(101)
	s.NeighBaseReachableMs.Store(30000)
	s.NeighRetransMs.Store(1000)
	s.NeighMcastSolicit.Store(3)
	s.NeighGcThresh3.Store(1024)
	return s
}

// Linux defaults that the contract does not expose as knobs.
const (
	icmpEchoIgnoreBroadcasts = true // net.ipv4.icmp_echo_ignore_broadcasts = 1
	icmpMsgsPerSec           = 1000 // net.ipv4.icmp_msgs_per_sec
	icmpMsgsBurst            = 50   // net.ipv4.icmp_msgs_burst
	icmpRatemask             = 6168 // net.ipv4.icmp_ratemask: dest unreach, source quench, time exceeded, param problem
	neighDelayFirstProbeMs   = 5000 // neigh.default.delay_first_probe_time
	neighUcastSolicit        = 3    // neigh.default.ucast_solicit
	neighGcStaleMs           = 5000 // neigh_forced_gc: entries untouched for 5 s may go
	minPMTU                  = 552  // net.ipv4.route.min_pmtu
	pmtuExpiresSec           = 600  // net.ipv4.route.mtu_expires
	pmtuCacheMax             = 4096 // bound on learned path MTUs (Linux bounds fnhe per bucket)
	icmpPeerBuckets          = 1024 // per-peer ICMP rate-limit buckets (inet_peer simplified)
	icmpMaxQuote             = 576 - 20 - 8
)
