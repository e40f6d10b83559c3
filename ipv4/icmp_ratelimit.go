package ipv4

import (
	"net/netip"
	"sync"
	"time"

	"github.com/tapstack/tapstack/wire"
)

// icmpLimiter is Linux's two-stage ICMP rate limit: a global token bucket
// (icmp_global_allow: icmp_msgs_per_sec, burst icmp_msgs_burst) and a
// per-peer bucket (inet_peer_xrlim_allow: one message per icmp_ratelimit,
// burst of XRLIM_BURST_FACTOR = 6). Peers hash into a fixed array of
// buckets instead of an inet_peer tree, so memory stays bounded.
type icmpLimiter struct {
	mu     sync.Mutex
	credit int
	stamp  time.Time
	peers  [icmpPeerBuckets]peerBucket
}

type peerBucket struct {
	addr   netip.Addr
	tokens time.Duration
	last   time.Time
}

const xrlimBurstFactor = 6

func (r *icmpLimiter) init(now time.Time) {
	r.credit = icmpMsgsBurst
	r.stamp = now
}

// ratemasked reports whether typ/code is subject to rate limiting
// (icmpv4_mask_allow: icmp_ratemask; fragmentation-needed is exempt).
func ratemasked(typ, code uint8) bool {
	if typ > 18 || icmpRatemask&(1<<typ) == 0 {
		return false
	}
	return !(typ == wire.ICMPv4DestUnreach && code == wire.ICMPv4FragNeeded)
}

func (r *icmpLimiter) allow(l *Layer, typ, code uint8, peer netip.Addr) bool {
	if !ratemasked(typ, code) {
		return true
	}
	now := l.clk.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	// icmp_global_allow: refill at icmp_msgs_per_sec, at most one second's worth.
	if d := now.Sub(r.stamp); d > 0 {
		d = min(d, time.Second)
		add := int(d * icmpMsgsPerSec / time.Second)
		if add > 0 {
			r.credit = min(r.credit+add, icmpMsgsBurst)
			r.stamp = now
		}
	}
	if r.credit <= 0 {
		l.ctr.inc(cIcmpOutRateLimitGlobal)
		return false
	}
	r.credit--
	// inet_peer_xrlim_allow; our own addresses are not limited (loopback).
	if l.classify(peer) == kindLocal {
		return true
	}
	timeout := time.Duration(l.sys.IcmpRatelimit.Load()) * time.Millisecond
	if timeout <= 0 {
		return true
	}
	a := peer.As4()
	p := &r.peers[(uint32(a[0])<<24|uint32(a[1])<<16|uint32(a[2])<<8|uint32(a[3]))*2654435761>>22%icmpPeerBuckets]
	if p.addr != peer {
		*p = peerBucket{addr: peer, tokens: xrlimBurstFactor * timeout, last: now}
	}
	p.tokens += now.Sub(p.last)
	p.last = now
	p.tokens = min(p.tokens, xrlimBurstFactor*timeout)
	if p.tokens < timeout {
		l.ctr.inc(cIcmpOutRateLimitHost)
		return false
	}
	p.tokens -= timeout
	return true
}
