package ipv4

import (
	"sync/atomic"

	"github.com/tapstack/tapstack/internal/sysctl"
)

// Sysctls are the live-tunable knobs of the IPv4 layer, named in Knobs
// after the Linux sysctls they mirror; NewSysctls sets the Linux defaults.
type Sysctls struct {
	DefaultTTL           atomic.Int64
	IpfragHighThresh     atomic.Int64 // bytes
	IpfragTime           atomic.Int64 // seconds
	IcmpEchoIgnoreAll    atomic.Int64
	IcmpRatelimit        atomic.Int64 // ms per peer
	NeighUnresQlen       atomic.Int64 // packets
	NeighBaseReachableMs atomic.Int64
	NeighRetransMs       atomic.Int64
	NeighMcastSolicit    atomic.Int64
	NeighGcThresh3       atomic.Int64
}

// Knobs names each field with its Linux default and bounds.
func (s *Sysctls) Knobs() []sysctl.Knob {
	return []sysctl.Knob{
		sysctl.Int("net.ipv4.ip_default_ttl", &s.DefaultTTL, 64, 1, 255),
		sysctl.Int("net.ipv4.ipfrag_high_thresh", &s.IpfragHighThresh, 4<<20, 0, 1<<30),
		sysctl.Int("net.ipv4.ipfrag_time", &s.IpfragTime, 30, 1, 3600),
		sysctl.Int("net.ipv4.icmp_echo_ignore_all", &s.IcmpEchoIgnoreAll, 0, 0, 1),
		sysctl.Int("net.ipv4.icmp_ratelimit", &s.IcmpRatelimit, 1000, 0, sysctl.MaxInt),
		sysctl.Int("net.ipv4.neigh.default.unres_qlen", &s.NeighUnresQlen, 101, 0, 1<<16),
		sysctl.Int("net.ipv4.neigh.default.base_reachable_time_ms", &s.NeighBaseReachableMs, 30000, 1, sysctl.MaxInt),
		sysctl.Int("net.ipv4.neigh.default.retrans_time_ms", &s.NeighRetransMs, 1000, 1, sysctl.MaxInt),
		sysctl.Int("net.ipv4.neigh.default.mcast_solicit", &s.NeighMcastSolicit, 3, 1, 255),
		sysctl.Int("net.ipv4.neigh.default.gc_thresh3", &s.NeighGcThresh3, 1024, 1, 1<<20),
	}
}

// NewSysctls returns the Linux defaults.
func NewSysctls() *Sysctls {
	s := &Sysctls{}
	sysctl.Reset(s.Knobs())
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
