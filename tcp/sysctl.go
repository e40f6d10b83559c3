package tcp

import (
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/tapstack/tapstack/internal/sysctl"
	"github.com/tapstack/tapstack/tcp/congestion"
)

// Sysctls are the live-tunable knobs of the TCP layer, named in Knobs after
// Linux's net.ipv4.tcp_* and net.core.* sysctls, with Linux's defaults.
type Sysctls struct {
	Somaxconn         atomic.Int64
	MaxSynBacklog     atomic.Int64
	MigrateReq        atomic.Int64 // a closing reuseport listener hands its queues to a sibling
	Syncookies        atomic.Int64 // 0 off, 1 when the SYN queue is full, 2 always
	SynackRetries     atomic.Int64
	SynRetries        atomic.Int64
	AbortOnOverflow   atomic.Int64
	Retries1          atomic.Int64
	Retries2          atomic.Int64
	FinTimeout        atomic.Int64 // seconds
	KeepaliveTime     atomic.Int64 // seconds
	KeepaliveIntvl    atomic.Int64 // seconds
	KeepaliveProbes   atomic.Int64
	Timestamps        atomic.Int64
	WindowScaling     atomic.Int64
	Sack              atomic.Int64
	Dsack             atomic.Int64
	RmemMin           atomic.Int64 // tcp_rmem[0]
	RmemDefault       atomic.Int64 // tcp_rmem[1]
	RmemMax           atomic.Int64 // tcp_rmem[2]
	WmemMin           atomic.Int64 // tcp_wmem[0]
	WmemDefault       atomic.Int64 // tcp_wmem[1]
	WmemMax           atomic.Int64 // tcp_wmem[2]
	CoreRmemMax       atomic.Int64 // net.core.rmem_max: the SO_RCVBUF ceiling, which UDP reads too
	CoreWmemMax       atomic.Int64 // net.core.wmem_max: the SO_SNDBUF ceiling, which UDP reads too
	ModerateRcvbuf    atomic.Int64
	TimeWait          atomic.Int64 // TIME_WAIT length in ms (Linux: TCP_TIMEWAIT_LEN, 60 s)
	MaxTwBuckets      atomic.Int64
	LocalPortLow      atomic.Int64 // ip_local_port_range[0], which UDP reads too
	LocalPortHigh     atomic.Int64 // ip_local_port_range[1]
	MaxOrphans        atomic.Int64
	OrphanRetries     atomic.Int64 // 0: 8 while the RTO is below its maximum
	MinRTOMs          atomic.Int64 // TCP_RTO_MIN in ms (net.ipv4.tcp_rto_min_us / 1000)
	EarlyRetrans      atomic.Int64 // 3 enables tail loss probes
	ChallengeAckLimit atomic.Int64 // per second
	InvalidRatelimit  atomic.Int64 // ms: per-socket limit on out-of-window replies
	MaxReordering     atomic.Int64 // the most tp->reordering may grow to
	Reordering        atomic.Int64 // the initial reordering tolerance (dupthresh)
	Recovery          atomic.Int64 // bit 0 RACK loss detection, 1 static reordering window, 2 no dupthresh
	Frto              atomic.Int64 // F-RTO (RFC 5682) on RTO, 0 off
	CompSackNr        atomic.Int64 // ACKs held back in a row while a hole is open, 0: none
	CompSackDelayNs   atomic.Int64 // the longest one is held back
	RcvbufLowRTTUs    atomic.Int64 // below this RTT (µs) rcvbuf grows with the RTT
	// CongestionControl holds a string, a name congestion.New knows.
	CongestionControl atomic.Value
}

// Knobs names each field with its Linux default and bounds (or, where Linux
// accepts nonsense, the bounds that keep the stack sane).
func (s *Sysctls) Knobs() []sysctl.Knob {
	const maxInt = sysctl.MaxInt
	ints := func(v ...*atomic.Int64) []*atomic.Int64 { return v }
	return []sysctl.Knob{
		sysctl.Int("net.core.somaxconn", &s.Somaxconn, 4096, 0, maxInt),
		sysctl.Int("net.core.rmem_max", &s.CoreRmemMax, 212992, 2304, maxInt/2),
		sysctl.Int("net.core.wmem_max", &s.CoreWmemMax, 212992, 2304, maxInt/2),

		sysctl.Int("net.ipv4.tcp_max_syn_backlog", &s.MaxSynBacklog, 4096, 0, maxInt),
		sysctl.Int("net.ipv4.tcp_migrate_req", &s.MigrateReq, 0, 0, 1),
		sysctl.Int("net.ipv4.tcp_syncookies", &s.Syncookies, 1, 0, 2),
		sysctl.Int("net.ipv4.tcp_synack_retries", &s.SynackRetries, 5, 0, 255),
		sysctl.Int("net.ipv4.tcp_syn_retries", &s.SynRetries, 6, 1, 127),
		sysctl.Int("net.ipv4.tcp_abort_on_overflow", &s.AbortOnOverflow, 0, 0, 1),
		sysctl.Int("net.ipv4.tcp_retries1", &s.Retries1, 3, 0, 255),
		sysctl.Int("net.ipv4.tcp_retries2", &s.Retries2, 15, 0, 255),
		sysctl.Int("net.ipv4.tcp_fin_timeout", &s.FinTimeout, 60, 1, 3600),
		sysctl.Int("net.ipv4.tcp_keepalive_time", &s.KeepaliveTime, 7200, 1, 32767),
		sysctl.Int("net.ipv4.tcp_keepalive_intvl", &s.KeepaliveIntvl, 75, 1, 32767),
		sysctl.Int("net.ipv4.tcp_keepalive_probes", &s.KeepaliveProbes, 9, 1, 127),
		sysctl.Int("net.ipv4.tcp_timestamps", &s.Timestamps, 1, 0, 1),
		sysctl.Int("net.ipv4.tcp_window_scaling", &s.WindowScaling, 1, 0, 1),
		sysctl.Int("net.ipv4.tcp_sack", &s.Sack, 1, 0, 1),
		sysctl.Int("net.ipv4.tcp_moderate_rcvbuf", &s.ModerateRcvbuf, 1, 0, 1),
		sysctl.Int("net.ipv4.tcp_max_tw_buckets", &s.MaxTwBuckets, 262144, 0, maxInt),
		sysctl.Int("net.ipv4.tcp_dsack", &s.Dsack, 1, 0, 1),
		sysctl.Int("net.ipv4.tcp_max_orphans", &s.MaxOrphans, 65536, 0, maxInt),
		sysctl.Int("net.ipv4.tcp_orphan_retries", &s.OrphanRetries, 0, 0, 255),
		sysctl.Int("net.ipv4.tcp_early_retrans", &s.EarlyRetrans, 3, 0, 4),
		sysctl.Int("net.ipv4.tcp_recovery", &s.Recovery, 1, 0, 7),
		sysctl.Int("net.ipv4.tcp_frto", &s.Frto, 2, 0, 2),
		sysctl.Int("net.ipv4.tcp_reordering", &s.Reordering, 3, 1, 1024),
		sysctl.Int("net.ipv4.tcp_max_reordering", &s.MaxReordering, 300, 1, 1024),
		sysctl.Int("net.ipv4.tcp_comp_sack_nr", &s.CompSackNr, 44, 0, 255),
		sysctl.Int("net.ipv4.tcp_comp_sack_delay_ns", &s.CompSackDelayNs, 1000000, 0, 1<<40),
		sysctl.Int("net.ipv4.tcp_rcvbuf_low_rtt", &s.RcvbufLowRTTUs, 1000, 0, maxInt),
		sysctl.Int("net.ipv4.tcp_challenge_ack_limit", &s.ChallengeAckLimit, 1000, 0, maxInt),
		sysctl.Int("net.ipv4.tcp_invalid_ratelimit", &s.InvalidRatelimit, 500, 0, maxInt),
		sysctl.Vector("net.ipv4.tcp_rmem", ints(&s.RmemMin, &s.RmemDefault, &s.RmemMax), []int64{4096, 131072, 6291456}, 1, maxInt),
		sysctl.Vector("net.ipv4.tcp_wmem", ints(&s.WmemMin, &s.WmemDefault, &s.WmemMax), []int64{4096, 16384, 4194304}, 1, maxInt),
		sysctl.Vector("net.ipv4.ip_local_port_range", ints(&s.LocalPortLow, &s.LocalPortHigh), []int64{32768, 60999}, 1, 65535),
		sysctl.String("net.ipv4.tcp_congestion_control", &s.CongestionControl, "cubic", checkCongestionControl),

		// Not Linux sysctls: Linux fixes these in the source (TCP_TIMEWAIT_LEN,
		// TCP_RTO_MIN); here they are knobs, under the tapstack prefix.
		sysctl.Int("tapstack.tcp_timewait_len_ms", &s.TimeWait, 60000, 0, 1<<30),
		sysctl.Int("tapstack.tcp_rto_min_ms", &s.MinRTOMs, 200, 1, 120000),
	}
}

// checkCongestionControl refuses a name no algorithm is registered under.
func checkCongestionControl(name string) error {
	if name == "" { // congestion.New("") means the default; Linux refuses an empty write
		return fmt.Errorf("empty name (available: %s)", strings.Join(congestion.Names(), " "))
	}
	_, err := congestion.New(name)
	return err
}

// NewSysctls returns the Linux defaults.
func NewSysctls() *Sysctls {
	s := &Sysctls{}
	sysctl.Reset(s.Knobs())
	return s
}

func (s *Sysctls) congestionControl() string {
	if v, ok := s.CongestionControl.Load().(string); ok && v != "" {
		return v
	}
	return "cubic"
}
