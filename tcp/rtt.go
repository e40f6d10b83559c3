package tcp

import "time"

const (
	initRTO = time.Second       // TCP_TIMEOUT_INIT (RFC 6298 §2.1)
	maxRTO  = 120 * time.Second // TCP_RTO_MAX
)

func (c *Conn) minRTO() time.Duration {
	return max(time.Duration(c.s.sys.MinRTOMs.Load())*time.Millisecond, time.Millisecond)
}

// rttSample feeds one measurement into the estimator (RFC 6298 §2; Linux
// tcp_rtt_estimator) and recomputes the RTO like __tcp_set_rto, whose
// variance term is floored at tcp_rto_min.
func (c *Conn) rttSample(m time.Duration) {
	if m <= 0 {
		m = time.Microsecond
	}
	if c.minRTT == 0 || m < c.minRTT {
		c.minRTT = m
	}
	if c.srtt == 0 {
		c.srtt = m
		c.rttvar = m / 2
	} else {
		d := m - c.srtt
		if d < 0 {
			d = -d
		}
		c.rttvar = (3*c.rttvar + d) / 4
		c.srtt = (7*c.srtt + m) / 8
	}
	c.rto = min(c.srtt+max(4*c.rttvar, c.minRTO()), maxRTO)
}

// rtoBackoff is the current RTO with exponential backoff (inet_csk_rto_backoff).
func (c *Conn) rtoBackoff() time.Duration {
	d := c.rto
	for i := 0; i < c.backoff && d < maxRTO; i++ {
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
// since the first retransmission exceeds the modelled budget.
func (c *Conn) retransmitsTimedOut(boundary int, base time.Duration) bool {
	if c.retransStamp.IsZero() {
		return false
	}
	return c.s.clock.Now().Sub(c.retransStamp) >= modelTimeout(boundary, base)
}
