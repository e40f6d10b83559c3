package tcp

import "sync/atomic"

// Sysctls are the live-tunable knobs of the TCP layer, named after Linux's
// net.ipv4.tcp_* and net.core.* sysctls, with Linux's defaults.
type Sysctls struct {
	Somaxconn         atomic.Int64 // net.core.somaxconn
	MaxSynBacklog     atomic.Int64 // net.ipv4.tcp_max_syn_backlog
	MigrateReq        atomic.Int64 // net.ipv4.tcp_migrate_req: a closing reuseport listener hands its queues to a sibling
	Syncookies        atomic.Int64 // net.ipv4.tcp_syncookies: 0 off, 1 when the SYN queue is full, 2 always
	SynackRetries     atomic.Int64 // net.ipv4.tcp_synack_retries
	SynRetries        atomic.Int64 // net.ipv4.tcp_syn_retries
	AbortOnOverflow   atomic.Int64 // net.ipv4.tcp_abort_on_overflow
	Retries1          atomic.Int64 // net.ipv4.tcp_retries1
	Retries2          atomic.Int64 // net.ipv4.tcp_retries2
	FinTimeout        atomic.Int64 // net.ipv4.tcp_fin_timeout, seconds
	KeepaliveTime     atomic.Int64 // net.ipv4.tcp_keepalive_time, seconds
	KeepaliveIntvl    atomic.Int64 // net.ipv4.tcp_keepalive_intvl, seconds
	KeepaliveProbes   atomic.Int64 // net.ipv4.tcp_keepalive_probes
	Timestamps        atomic.Int64 // net.ipv4.tcp_timestamps
	WindowScaling     atomic.Int64 // net.ipv4.tcp_window_scaling
	Sack              atomic.Int64 // net.ipv4.tcp_sack
	Dsack             atomic.Int64 // net.ipv4.tcp_dsack
	RmemMin           atomic.Int64 // net.ipv4.tcp_rmem[0]
	RmemDefault       atomic.Int64 // net.ipv4.tcp_rmem[1]
	RmemMax           atomic.Int64 // net.ipv4.tcp_rmem[2]
	WmemMin           atomic.Int64 // net.ipv4.tcp_wmem[0]
	WmemDefault       atomic.Int64 // net.ipv4.tcp_wmem[1]
	WmemMax           atomic.Int64 // net.ipv4.tcp_wmem[2]
	CoreRmemMax       atomic.Int64 // net.core.rmem_max: the SO_RCVBUF ceiling
	CoreWmemMax       atomic.Int64 // net.core.wmem_max: the SO_SNDBUF ceiling
	ModerateRcvbuf    atomic.Int64 // net.ipv4.tcp_moderate_rcvbuf
	TimeWait          atomic.Int64 // TIME_WAIT length in ms (Linux: TCP_TIMEWAIT_LEN, 60 s)
	MaxTwBuckets      atomic.Int64 // net.ipv4.tcp_max_tw_buckets
	LocalPortLow      atomic.Int64 // net.ipv4.ip_local_port_range[0]
	LocalPortHigh     atomic.Int64 // net.ipv4.ip_local_port_range[1]
	MaxOrphans        atomic.Int64 // net.ipv4.tcp_max_orphans
	OrphanRetries     atomic.Int64 // net.ipv4.tcp_orphan_retries (0: 8 while the RTO is below its maximum)
	MinRTOMs          atomic.Int64 // TCP_RTO_MIN in ms (net.ipv4.tcp_rto_min_us / 1000)
	Ecn               atomic.Int64 // net.ipv4.tcp_ecn (not implemented: always off)
	EarlyRetrans      atomic.Int64 // net.ipv4.tcp_early_retrans: 3 enables tail loss probes
	ChallengeAckLimit atomic.Int64 // net.ipv4.tcp_challenge_ack_limit (per second)
	InvalidRatelimit  atomic.Int64 // net.ipv4.tcp_invalid_ratelimit in ms: per-socket limit on out-of-window replies
	MaxReordering     atomic.Int64 // net.ipv4.tcp_max_reordering: the most tp->reordering may grow to
	Reordering        atomic.Int64 // net.ipv4.tcp_reordering: the initial reordering tolerance (dupthresh)
	Recovery          atomic.Int64 // net.ipv4.tcp_recovery: bit 0 RACK loss detection, 1 static reordering window, 2 no dupthresh
	Frto              atomic.Int64 // net.ipv4.tcp_frto: F-RTO (RFC 5682) on RTO, 0 off
	CompSackNr        atomic.Int64 // net.ipv4.tcp_comp_sack_nr: ACKs held back in a row while a hole is open, 0: none
	CompSackDelayNs   atomic.Int64 // net.ipv4.tcp_comp_sack_delay_ns: the longest one is held back
	RcvbufLowRTTUs    atomic.Int64 // net.ipv4.tcp_rcvbuf_low_rtt: below this RTT (µs) rcvbuf grows with the RTT
	// CongestionControl holds a string: net.ipv4.tcp_congestion_control.
	CongestionControl atomic.Value
}

// NewSysctls returns the Linux defaults.
func NewSysctls() *Sysctls {
	s := &Sysctls{}
	for _, d := range []struct {
		v *atomic.Int64
		n int64
	}{
		{&s.Somaxconn, 4096}, {&s.MaxSynBacklog, 4096}, {&s.MigrateReq, 0}, {&s.Syncookies, 1}, {&s.SynackRetries, 5},
		{&s.SynRetries, 6}, {&s.AbortOnOverflow, 0}, {&s.Retries1, 3}, {&s.Retries2, 15},
		{&s.FinTimeout, 60}, {&s.KeepaliveTime, 7200}, {&s.KeepaliveIntvl, 75}, {&s.KeepaliveProbes, 9},
		{&s.Timestamps, 1}, {&s.WindowScaling, 1}, {&s.Sack, 1}, {&s.Dsack, 1},
		{&s.RmemMin, 4096}, {&s.RmemDefault, 131072}, {&s.RmemMax, 6291456},
		{&s.WmemMin, 4096}, {&s.WmemDefault, 16384}, {&s.WmemMax, 4194304},
		{&s.CoreRmemMax, 212992}, {&s.CoreWmemMax, 212992},
		{&s.ModerateRcvbuf, 1}, {&s.TimeWait, 60000}, {&s.MaxTwBuckets, 262144},
		{&s.LocalPortLow, 32768}, {&s.LocalPortHigh, 60999}, {&s.MaxOrphans, 65536},
		{&s.MinRTOMs, 200}, {&s.Ecn, 0}, {&s.EarlyRetrans, 3}, {&s.ChallengeAckLimit, 1000},
		{&s.MaxReordering, 300}, {&s.Reordering, 3}, {&s.Recovery, 1}, {&s.Frto, 2},
		{&s.CompSackNr, 44}, {&s.CompSackDelayNs, 1000000}, {&s.RcvbufLowRTTUs, 1000},
		{&s.InvalidRatelimit, 500},
	} {
		d.v.Store(d.n)
	}
	s.CongestionControl.Store("cubic")
	return s
}

func (s *Sysctls) congestionControl() string {
	if v, ok := s.CongestionControl.Load().(string); ok && v != "" {
		return v
	}
	return "cubic"
}
