package stack

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/tapstack/tapstack/tcp/congestion"
)

// sysctl is one knob, named as in Linux's /proc/sys (dots for slashes). Most
// hold one integer; tcp_rmem, tcp_wmem and ip_local_port_range hold a vector
// written as space-separated integers, like their /proc files.
type sysctl struct {
	vals     []*atomic.Int64
	min, max int64
	// check validates a whole vector (order constraints) before it is stored.
	check func(v []int64) error
	// str, when set, makes this a string knob (tcp_congestion_control).
	str *stringKnob
}

type stringKnob struct {
	get func() string
	set func(string) error
}

func ints(v ...*atomic.Int64) []*atomic.Int64 { return v }

// registry lists every knob with the bounds Linux enforces (or, where Linux
// accepts nonsense, the bounds that keep the stack sane).
func (s *Stack) registry() map[string]*sysctl {
	n, ip, t, u := s.netdevSysctls, s.ipSysctls, s.tcpSysctls, s.udpSysctls
	const maxInt = 1<<31 - 1
	nondecreasing := func(v []int64) error {
		for i := 1; i < len(v); i++ {
			if v[i] < v[i-1] {
				return fmt.Errorf("values must not decrease: %v", v)
			}
		}
		return nil
	}
	return map[string]*sysctl{
		"net.core.netdev_max_backlog":  {vals: ints(&n.MaxBacklog), min: 0, max: 1 << 24},
		"net.core.dev_weight":          {vals: ints(&n.DevWeight), min: 1, max: 1 << 16},
		"net.core.netdev_budget":       {vals: ints(&n.Budget), min: 1, max: 1 << 20},
		"net.core.netdev_budget_usecs": {vals: ints(&n.BudgetUsecs), min: 0, max: 1 << 24},
		"net.core.somaxconn":           {vals: ints(&t.Somaxconn), min: 0, max: maxInt},
		"net.core.rmem_max":            {vals: ints(&t.CoreRmemMax), min: 2304, max: maxInt / 2},
		"net.core.wmem_max":            {vals: ints(&t.CoreWmemMax), min: 2304, max: maxInt / 2},
		"net.core.rmem_default":        {vals: ints(&u.RmemDefault), min: 2304, max: maxInt / 2},
		"net.core.wmem_default":        {vals: ints(&u.WmemDefault), min: 2304, max: maxInt / 2},

		"net.ipv4.ip_no_pmtu_disc":                      {vals: ints(&u.NoPMTUDisc), min: 0, max: 3},
		"net.ipv4.ip_default_ttl":                       {vals: ints(&ip.DefaultTTL), min: 1, max: 255},
		"net.ipv4.ipfrag_high_thresh":                   {vals: ints(&ip.IpfragHighThresh), min: 0, max: 1 << 30},
		"net.ipv4.ipfrag_time":                          {vals: ints(&ip.IpfragTime), min: 1, max: 3600},
		"net.ipv4.icmp_echo_ignore_all":                 {vals: ints(&ip.IcmpEchoIgnoreAll), min: 0, max: 1},
		"net.ipv4.icmp_ratelimit":                       {vals: ints(&ip.IcmpRatelimit), min: 0, max: maxInt},
		"net.ipv4.neigh.default.unres_qlen":             {vals: ints(&ip.NeighUnresQlen), min: 0, max: 1 << 16},
		"net.ipv4.neigh.default.base_reachable_time_ms": {vals: ints(&ip.NeighBaseReachableMs), min: 1, max: maxInt},
		"net.ipv4.neigh.default.retrans_time_ms":        {vals: ints(&ip.NeighRetransMs), min: 1, max: maxInt},
		"net.ipv4.neigh.default.mcast_solicit":          {vals: ints(&ip.NeighMcastSolicit), min: 1, max: 255},
		"net.ipv4.neigh.default.gc_thresh3":             {vals: ints(&ip.NeighGcThresh3), min: 1, max: 1 << 20},

		"net.ipv4.tcp_max_syn_backlog":     {vals: ints(&t.MaxSynBacklog), min: 0, max: maxInt},
		"net.ipv4.tcp_migrate_req":         {vals: ints(&t.MigrateReq), min: 0, max: 1},
		"net.ipv4.tcp_syncookies":          {vals: ints(&t.Syncookies), min: 0, max: 2},
		"net.ipv4.tcp_synack_retries":      {vals: ints(&t.SynackRetries), min: 0, max: 255},
		"net.ipv4.tcp_syn_retries":         {vals: ints(&t.SynRetries), min: 1, max: 127},
		"net.ipv4.tcp_abort_on_overflow":   {vals: ints(&t.AbortOnOverflow), min: 0, max: 1},
		"net.ipv4.tcp_retries1":            {vals: ints(&t.Retries1), min: 0, max: 255},
		"net.ipv4.tcp_retries2":            {vals: ints(&t.Retries2), min: 0, max: 255},
		"net.ipv4.tcp_fin_timeout":         {vals: ints(&t.FinTimeout), min: 1, max: 3600},
		"net.ipv4.tcp_keepalive_time":      {vals: ints(&t.KeepaliveTime), min: 1, max: 32767},
		"net.ipv4.tcp_keepalive_intvl":     {vals: ints(&t.KeepaliveIntvl), min: 1, max: 32767},
		"net.ipv4.tcp_keepalive_probes":    {vals: ints(&t.KeepaliveProbes), min: 1, max: 127},
		"net.ipv4.tcp_timestamps":          {vals: ints(&t.Timestamps), min: 0, max: 1},
		"net.ipv4.tcp_window_scaling":      {vals: ints(&t.WindowScaling), min: 0, max: 1},
		"net.ipv4.tcp_sack":                {vals: ints(&t.Sack), min: 0, max: 1},
		"net.ipv4.tcp_moderate_rcvbuf":     {vals: ints(&t.ModerateRcvbuf), min: 0, max: 1},
		"net.ipv4.tcp_max_tw_buckets":      {vals: ints(&t.MaxTwBuckets), min: 0, max: maxInt},
		"net.ipv4.tcp_dsack":               {vals: ints(&t.Dsack), min: 0, max: 1},
		"net.ipv4.tcp_max_orphans":         {vals: ints(&t.MaxOrphans), min: 0, max: maxInt},
		"net.ipv4.tcp_orphan_retries":      {vals: ints(&t.OrphanRetries), min: 0, max: 255},
		"net.ipv4.tcp_early_retrans":       {vals: ints(&t.EarlyRetrans), min: 0, max: 4},
		"net.ipv4.tcp_recovery":            {vals: ints(&t.Recovery), min: 0, max: 7},
		"net.ipv4.tcp_frto":                {vals: ints(&t.Frto), min: 0, max: 2},
		"net.ipv4.tcp_reordering":          {vals: ints(&t.Reordering), min: 1, max: 1024},
		"net.ipv4.tcp_max_reordering":      {vals: ints(&t.MaxReordering), min: 1, max: 1024},
		"net.ipv4.tcp_comp_sack_nr":        {vals: ints(&t.CompSackNr), min: 0, max: 255},
		"net.ipv4.tcp_comp_sack_delay_ns":  {vals: ints(&t.CompSackDelayNs), min: 0, max: 1 << 40},
		"net.ipv4.tcp_rcvbuf_low_rtt":      {vals: ints(&t.RcvbufLowRTTUs), min: 0, max: maxInt},
		"net.ipv4.tcp_challenge_ack_limit": {vals: ints(&t.ChallengeAckLimit), min: 0, max: maxInt},
		"net.ipv4.tcp_invalid_ratelimit":   {vals: ints(&t.InvalidRatelimit), min: 0, max: maxInt},
		"net.ipv4.tcp_rmem":                {vals: ints(&t.RmemMin, &t.RmemDefault, &t.RmemMax), min: 1, max: maxInt, check: nondecreasing},
		"net.ipv4.tcp_wmem":                {vals: ints(&t.WmemMin, &t.WmemDefault, &t.WmemMax), min: 1, max: maxInt, check: nondecreasing},
		"net.ipv4.ip_local_port_range":     {vals: ints(&t.LocalPortLow, &t.LocalPortHigh), min: 1, max: 65535, check: nondecreasing},
		"net.ipv4.tcp_congestion_control": {str: &stringKnob{
			get: func() string { return t.CongestionControl.Load().(string) },
			set: func(v string) error {
				if v == "" { // congestion.New("") means the default; Linux refuses an empty write
					return fmt.Errorf("empty name (available: %s)", strings.Join(congestion.Names(), " "))
				}
				if _, err := congestion.New(v); err != nil {
					return err
				}
				t.CongestionControl.Store(v)
				return nil
			},
		}},
		// Not Linux sysctls: Linux fixes these in the source (TCP_TIMEWAIT_LEN,
		// TCP_RTO_MIN); here they are knobs, under the tapstack prefix.
		"tapstack.tcp_timewait_len_ms": {vals: ints(&t.TimeWait), min: 0, max: 1 << 30},
		"tapstack.tcp_rto_min_ms":      {vals: ints(&t.MinRTOMs), min: 1, max: 120000},
	}
}

// SetSysctl sets the knob with Linux name (e.g. "net.core.somaxconn", or
// "net/core/somaxconn") to value, written as in its /proc/sys file. An
// unknown name or a value out of range is an error and changes nothing.
func (s *Stack) SetSysctl(name, value string) error {
	name = strings.ReplaceAll(strings.TrimSpace(name), "/", ".")
	k, ok := s.sysctls[name]
	if !ok {
		return fmt.Errorf("sysctl %s: unknown name", name)
	}
	if k.str != nil {
		if err := k.str.set(strings.TrimSpace(value)); err != nil {
			return fmt.Errorf("sysctl %s=%q: %w", name, value, err)
		}
		return nil
	}
	fields := strings.Fields(value)
	if len(fields) != len(k.vals) {
		return fmt.Errorf("sysctl %s=%q: want %d integer(s)", name, value, len(k.vals))
	}
	v := make([]int64, len(fields))
	for i, f := range fields {
		x, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return fmt.Errorf("sysctl %s=%q: %q is not an integer", name, value, f)
		}
		if x < k.min || x > k.max {
			return fmt.Errorf("sysctl %s=%q: %d out of range [%d, %d]", name, value, x, k.min, k.max)
		}
		v[i] = x
	}
	if k.check != nil {
		if err := k.check(v); err != nil {
			return fmt.Errorf("sysctl %s=%q: %w", name, value, err)
		}
	}
	for i, x := range v {
		k.vals[i].Store(x)
	}
	return nil
}

// Sysctl returns a knob's value as its /proc/sys file would print it.
func (s *Stack) Sysctl(name string) (string, error) {
	name = strings.ReplaceAll(strings.TrimSpace(name), "/", ".")
	k, ok := s.sysctls[name]
	if !ok {
		return "", fmt.Errorf("sysctl %s: unknown name", name)
	}
	if k.str != nil {
		return k.str.get(), nil
	}
	parts := make([]string, len(k.vals))
	for i, p := range k.vals {
		parts[i] = strconv.FormatInt(p.Load(), 10)
	}
	return strings.Join(parts, "\t"), nil
}

// SysctlNames lists every knob, sorted.
func (s *Stack) SysctlNames() []string {
	names := make([]string, 0, len(s.sysctls))
	for n := range s.sysctls {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
