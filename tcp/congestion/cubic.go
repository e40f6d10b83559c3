package congestion

import (
	"math"
	"time"
)

// CUBIC (RFC 9438) with Linux tcp_cubic.c's fixed point: time in 1/1024 s
// (BICTCP_HZ 10), beta 717/1024, C = bic_scale*10/1024 = 410/1024 ≈ 0.4.
const (
	cubicBetaScale   = 1024
	cubicBeta        = 717 // β_cubic ≈ 0.7 (RFC 9438 §4.6)
	cubicHZ          = 10  // t in units of 2^-10 s
	cubeRTTScale     = 41 * 10
	cubeFactor       = (1 << (10 + 3*cubicHZ)) / cubeRTTScale // 2^40/410: K = cbrt(cubeFactor·(Wmax−cwnd))
	renoBetaScale    = 8 * (cubicBetaScale + cubicBeta) / 3 / (cubicBetaScale - cubicBeta)
	cubicMinInterval = 1000 / 32 // ms; HZ/32: cnt is recomputed at most this often for an unchanged cwnd
	maxCubicOffs     = 1 << 18   // (t−K) beyond 256 s would overflow the u64 cube
)

// cubic is the per-connection state (Linux struct bictcp). Times are the
// low 32 bits of Sender.Now in ms (Linux's jiffies at HZ=1000) or µs.
type cubic struct {
	cnt         uint32 // grow cwnd by one every cnt acked segments
	lastMaxCwnd uint32 // W_max
	lastCwnd    uint32
	lastTime    uint32 // ms
	originPoint uint32 // W_max of the current curve
	k           uint32 // K in 2^-10 s
	delayMin    uint32 // µs; minimum RTT seen
	epochStart  uint32 // ms; 0: no congestion avoidance epoch yet
	ackCnt      uint32 // segments acked since the Reno-friendly estimate last grew
	tcpCwnd     uint32 // W_est, the Reno-friendly window (RFC 9438 §4.3)
	lastAckTime uint32 // ms; stands in for lsndtime when the sender goes idle
	priorCwnd   uint32 // cwnd and W_max before the last reduction, for undo (RFC 9438 §4.9)
	priorMax    uint32
	hystart
	counters *HyStartCounters // nil: not counted
}

func (c *cubic) Name() string { return "cubic" }

func msOf(t time.Time) uint32 { return uint32(t.UnixMilli()) }
func usOf(t time.Time) uint32 { return uint32(t.UnixMicro()) }

// reset mirrors bictcp_reset: forget the curve, W_max and the RTT floor.
func (c *cubic) reset() {
	c.cnt, c.lastMaxCwnd, c.lastCwnd, c.lastTime = 0, 0, 0, 0
	c.originPoint, c.k, c.delayMin, c.epochStart = 0, 0, 0, 0
	c.ackCnt, c.tcpCwnd = 0, 0
	c.found = false
}

// Init mirrors cubictcp_init.
func (c *cubic) Init(s *Sender) {
	if s.Ssthresh == 0 {
		s.Ssthresh = InfiniteSsthresh
	}
	c.reset()
	c.hystartReset(s)
}

// SsThresh sets W_max (lowered further by fast convergence when the window
// is shrinking, RFC 9438 §4.7) and returns β·cwnd. Mirrors cubictcp_recalc_ssthresh.
func (c *cubic) SsThresh(s *Sender) uint32 {
	c.priorCwnd, c.priorMax = s.Cwnd, c.lastMaxCwnd
	c.epochStart = 0
	if s.Cwnd < c.lastMaxCwnd {
		c.lastMaxCwnd = uint32(uint64(s.Cwnd) * (cubicBetaScale + cubicBeta) / (2 * cubicBetaScale))
	} else {
		c.lastMaxCwnd = s.Cwnd
	}
	return max(uint32(uint64(s.Cwnd)*cubicBeta/cubicBetaScale), 2)
}

// CongAvoid mirrors cubictcp_cong_avoid.
func (c *cubic) CongAvoid(s *Sender, acked uint32) {
	c.lastAckTime = msOf(s.Now)
	if !s.CwndLimited {
		return
	}
	if InSlowStart(s) {
		if acked = SlowStart(s, acked); acked == 0 {
			return
		}
	}
	c.update(s.Cwnd, acked, msOf(s.Now))
	CongAvoidAI(s, c.cnt, acked)
}

// SetState mirrors cubictcp_state: an RTO forgets everything.
func (c *cubic) SetState(s *Sender, st State) {
	if st == Loss {
		c.reset()
		c.hystartReset(s)
	}
}

// CwndEvent shifts the epoch by the idle time so that an application-limited
// pause does not count as time on the curve. Mirrors cubictcp_cwnd_event;
// the last ACK time stands in for lsndtime, which Sender does not carry.
func (c *cubic) CwndEvent(s *Sender, ev Event) {
	if ev != TxStart {
		return
	}
	now := msOf(s.Now)
	delta := int32(now - c.lastAckTime)
	if c.epochStart != 0 && delta > 0 {
		c.epochStart += uint32(delta)
		if int32(c.epochStart-now) > 0 {
			c.epochStart = now
		}
	}
}

// UndoCwnd restores the window (tcp_reno_undo_cwnd) and W_max (RFC 9438 §4.9).
func (c *cubic) UndoCwnd(s *Sender) uint32 {
	if c.priorMax > c.lastMaxCwnd {
		c.lastMaxCwnd = c.priorMax
		c.epochStart = 0
	}
	return max(s.Cwnd, c.priorCwnd)
}

// update computes cnt, the ACKs per one-segment increase, from the cubic
// curve one RTT ahead and the Reno-friendly estimate. Mirrors bictcp_update.
func (c *cubic) update(cwnd, acked, now uint32) {
	c.ackCnt += acked
	if c.lastCwnd == cwnd && int32(now-c.lastTime) <= cubicMinInterval {
		return
	}
	// cnt changes at most once per jiffy; a reduction zeroes epochStart and forces it.
	if c.epochStart == 0 || now != c.lastTime {
		c.lastCwnd, c.lastTime = cwnd, now
		if c.epochStart == 0 {
			c.startEpoch(cwnd, acked, now)
		}
		target := c.target(c.elapsed(now))
		if target > uint64(cwnd) {
			c.cnt = uint32(uint64(cwnd) / (target - uint64(cwnd)))
		} else {
			c.cnt = 100 * cwnd // at or above the curve: grow very slowly
		}
		// Without a W_max yet the curve is too timid: at least 5% per RTT.
		if c.lastMaxCwnd == 0 && c.cnt > 20 {
			c.cnt = 20
		}
	}
	c.renoFriendly(cwnd)
	// At most one segment per two acked: 1.5x per RTT (RFC 9438 §4.2's bound on target).
	c.cnt = max(c.cnt, 2)
}

// startEpoch begins a congestion avoidance epoch (RFC 9438 §4.2, eq. 2).
func (c *cubic) startEpoch(cwnd, acked, now uint32) {
	c.epochStart = max(now, 1) // 0 means "no epoch"
	c.ackCnt = acked
	c.tcpCwnd = cwnd
	if c.lastMaxCwnd <= cwnd {
		c.k = 0
		c.originPoint = cwnd
	} else {
		c.k = cubicRoot(cubeFactor * uint64(c.lastMaxCwnd-cwnd))
		c.originPoint = c.lastMaxCwnd
	}
}

// elapsed is t + RTT in 2^-10 s: the curve is evaluated one minimum RTT ahead.
func (c *cubic) elapsed(now uint32) uint64 {
	ms := int32(now - c.epochStart)
	if ms < 0 {
		ms = 0
	}
	return ((uint64(ms)*1000 + uint64(c.delayMin)) << cubicHZ) / 1000000
}

// target is W_cubic(t) = C·(t−K)^3 + W_max (RFC 9438 eq. 1), t in 2^-10 s.
func (c *cubic) target(t uint64) uint64 {
	k := uint64(c.k)
	offs := k - t
	if t >= k {
		offs = t - k
	}
	var delta uint64
	if offs > maxCubicOffs {
		delta = math.MaxUint32
	} else {
		delta = (cubeRTTScale * offs * offs * offs) >> (10 + 3*cubicHZ)
	}
	origin := uint64(c.originPoint)
	if t < k {
		if delta > origin {
			return 0
		}
		return origin - delta
	}
	return origin + delta
}

// renoFriendly grows W_est by 3(1−β)/(1+β) per RTT and lets it set the pace
// when standard TCP would be faster (RFC 9438 §4.3; Linux's tcp_friendliness).
func (c *cubic) renoFriendly(cwnd uint32) {
	delta := (cwnd * renoBetaScale) >> 3
	if delta == 0 {
		return
	}
	if c.ackCnt > delta {
		n := (c.ackCnt - 1) / delta // Linux's subtract loop, in one step
		c.ackCnt -= n * delta
		c.tcpCwnd += n
	}
	if c.tcpCwnd > cwnd {
		maxCnt := cwnd / (c.tcpCwnd - cwnd)
		c.cnt = min(c.cnt, maxCnt)
	}
}

// cubicRoot is floor(cbrt(a)) (Linux's cubic_root approximates the same).
func cubicRoot(a uint64) uint32 {
	const maxRoot = 2642245 // floor(cbrt(2^64-1))
	r := uint64(math.Cbrt(float64(a)))
	r = min(r, maxRoot)
	for r > 0 && r*r*r > a {
		r--
	}
	for r < maxRoot && (r+1)*(r+1)*(r+1) <= a {
		r++
	}
	return uint32(r)
}
