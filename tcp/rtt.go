package tcp

import "time"

const (
	initRTO = time.Second // TCP_TIMEOUT_INIT (RFC 6298 §2.1)
	// tcpRTOMin is TCP_RTO_MIN, the constant retransmits_timed_out models
	// the write timeout from, whatever the connection's own minimum RTO
	// (tapstack.tcp_rto_min_ms): a lower RTO must not give up sooner.
	tcpRTOMin = 200 * time.Millisecond
	maxRTO    = 120 * time.Second // TCP_RTO_MAX
	// minRTTWindow is net.ipv4.tcp_min_rtt_wlen: how long a minimum RTT
	// sample stays the minimum.
	minRTTWindow = 300 * time.Second
)

func (c *Conn) minRTO() time.Duration {
	return max(time.Duration(c.s.sys.MinRTOMs.Load())*time.Millisecond, time.Millisecond)
}

// rttSample feeds one measurement into the estimator and the minimum RTT
// filter (the handshake's samples: tcp_synack_rtt_meas and the SYN-ACK).
func (c *Conn) rttSample(m time.Duration) {
	c.updateMinRTT(m, 0, c.s.stampNow())
	c.rttEstimate(m)
}

// rttEstimate is tcp_rtt_estimator and tcp_set_rto. Linux's form of RFC
// 6298: srtt gains 1/8 of the error; the deviation gains 1/4 of it, but
// only 1/32 when the RTT falls (so a drop does not inflate the RTO); and
// rttvar follows the largest deviation seen in each window of data
// (mdev_max), floored at tcp_rto_min, so that the many samples of one
// window (an RTT per ACK) do not shrink it.
func (c *Conn) rttEstimate(m time.Duration) {
	m = max(m, time.Microsecond)
	if c.rtt.srtt != 0 {
		e := m - c.rtt.srtt
		c.rtt.srtt += e / 8
		if e < 0 {
			e = -e - c.rtt.mdev/4
			if e > 0 {
				e /= 8
			}
		} else {
			e -= c.rtt.mdev / 4
		}
		c.rtt.mdev += e
		if c.rtt.mdev > c.rtt.mdevMax {
			c.rtt.mdevMax = c.rtt.mdev
			if c.rtt.mdevMax > c.rtt.rttvar {
				c.rtt.rttvar = c.rtt.mdevMax
			}
		}
		if c.snd.una.gt(c.rtt.seq) {
			if c.rtt.mdevMax < c.rtt.rttvar {
				c.rtt.rttvar -= (c.rtt.rttvar - c.rtt.mdevMax) / 4
			}
			c.rtt.seq = c.snd.nxt
			c.rtt.mdevMax = c.minRTO()
		}
	} else {
		c.rtt.srtt = m
		c.rtt.mdev = 2 * m
		c.rtt.rttvar = max(c.rtt.mdev, c.minRTO())
		c.rtt.mdevMax = c.rtt.rttvar
		c.rtt.seq = c.snd.nxt
	}
	c.rtt.srtt = max(c.rtt.srtt, time.Microsecond)
	c.rec.cong.SRTT = c.rtt.srtt
	c.rtt.rto = min(c.rtt.srtt+c.rtt.rttvar, maxRTO) // __tcp_set_rto, tcp_bound_rto
}

// updateMinRTT is tcp_update_rtt_min: a windowed minimum over
// tcp_min_rtt_wlen (minmax_running_min); the ACK of a lone runt segment,
// likely delayed, may not raise it.
func (c *Conn) updateMinRTT(rtt time.Duration, flag int, now stamp) {
	if rtt < 0 {
		return
	}
	if flag&flagAckMaybeDelayed != 0 && rtt > c.minRTTOrInf() {
		return
	}
	c.rtt.min.update(now, max(rtt, time.Microsecond), minRTTWindow)
	c.rtt.minRTT = c.rtt.min.s[0].v
	c.rec.cong.MinRTT = c.rtt.minRTT
}

// minRTTOrInf is tcp_min_rtt: the windowed minimum, or "infinite" before
// the first sample.
func (c *Conn) minRTTOrInf() time.Duration {
	if c.rtt.minRTT == 0 {
		return 1<<63 - 1
	}
	return c.rtt.minRTT
}

// minmax is a windowed minimum kept with three samples (Kathleen Nichols'
// algorithm, as lib/minmax.c): the best, second best and third best in
// successive parts of the window, so an expired minimum is replaced by the
// best of what came after it.
type minmax struct{ s [3]minmaxSample }

type minmaxSample struct {
	t stamp
	v time.Duration
}

func (m *minmax) reset(t stamp, v time.Duration) {
	m.s = [3]minmaxSample{{t, v}, {t, v}, {t, v}}
}

// update is minmax_running_min.
func (m *minmax) update(t stamp, v time.Duration, win time.Duration) {
	val := minmaxSample{t, v}
	if m.s[0].v == 0 || v <= m.s[0].v || time.Duration(t-m.s[2].t) > win {
		m.reset(t, v) // a new minimum, or nothing in the window
		return
	}
	if v <= m.s[1].v {
		m.s[1], m.s[2] = val, val
	} else if v <= m.s[2].v {
		m.s[2] = val
	}
	m.subwinUpdate(win, val)
}

// subwinUpdate is minmax_subwin_update: age the samples through the
// quarters and halves of the window.
func (m *minmax) subwinUpdate(win time.Duration, val minmaxSample) {
	dt := time.Duration(val.t - m.s[0].t)
	switch {
	case dt > win:
		// The best expired: the second takes its place, and so on.
		m.s[0], m.s[1], m.s[2] = m.s[1], m.s[2], val
		if time.Duration(val.t-m.s[0].t) > win {
			m.s[0], m.s[1], m.s[2] = m.s[1], m.s[2], val
		}
	case m.s[1].t == m.s[0].t && dt > win/4:
		// A quarter of the window passed without a second choice.
		m.s[1], m.s[2] = val, val
	case m.s[2].t == m.s[1].t && dt > win/2:
		// Half the window passed without a third choice.
		m.s[2] = val
	}
}

// rtoBackoff is the current RTO with exponential backoff (inet_csk_rto_backoff).
func (c *Conn) rtoBackoff() time.Duration {
	d := c.rtt.rto
	for i := 0; i < c.rtt.backoff && d < maxRTO; i++ {
		d *= 2
	}
	return min(d, maxRTO)
}

// modelTimeout mirrors tcp_model_timeout: the time it takes to send
// boundary retransmissions with exponential backoff from base, capped at
// TCP_RTO_MAX per interval.
func modelTimeout(boundary int, base time.Duration) time.Duration {
	base = max(base, time.Millisecond)
	boundary = min(max(boundary, 0), 255)
	thresh := 0
	for (base << (thresh + 1)) <= maxRTO {
		thresh++
	}
	if boundary <= thresh {
		return time.Duration((2<<boundary)-1) * base
	}
	return time.Duration((2<<thresh)-1)*base + time.Duration(boundary-thresh)*maxRTO
}

// retransmitsTimedOut mirrors retransmits_timed_out: true once the time
// since the first retransmission of the episode exceeds the modelled
// budget (never right after progress: icsk_retransmits is 0 then).
func (c *Conn) retransmitsTimedOut(boundary int, base time.Duration) bool {
	if c.rtt.retransmits == 0 || c.rtt.retransStamp.IsZero() {
		return false
	}
	return c.s.since(c.rtt.retransStamp) >= modelTimeout(boundary, base)
}
