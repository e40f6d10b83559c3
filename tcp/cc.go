package tcp

import "time"

// congestionControl is the hook set a connection calls, in Linux's
// tcp_congestion_ops shape. cwnd and ssthresh live in the Conn, in
// segments.
type congestionControl interface {
	name() string
	init(c *Conn)
	ssthresh(c *Conn) uint32
	congAvoid(c *Conn, acked uint32)
	pktsAcked(c *Conn, acked uint32, rtt time.Duration)
	setState(c *Conn, st caState)
	cwndEvent(c *Conn, ev ccEvent)
	undoCwnd(c *Conn) uint32
}

type ccEvent int

const (
	ccTxStart ccEvent = iota
	ccCwndRestart
	ccCompleteCWR
	ccLoss
)

const (
	initCwnd         = 10 // TCP_INIT_CWND
	infiniteSsthresh = 0x7fffffff
)

// reno is Linux tcp_reno_cong_avoid / tcp_reno_ssthresh, used when the
// configured algorithm is unavailable.
type reno struct{}

func (reno) name() string { return "reno" }
func (reno) init(c *Conn) {}
func (reno) ssthresh(c *Conn) uint32 {
	return max(c.cwnd>>1, 2)
}

func (reno) congAvoid(c *Conn, acked uint32) {
	if !c.isCwndLimited() {
		return
	}
	if c.cwnd < c.ssthresh { // tcp_slow_start
		n := min(c.cwnd+acked, c.ssthresh)
		acked -= n - c.cwnd
		c.cwnd = n
		if acked == 0 {
			return
		}
	}
	// tcp_cong_avoid_ai
	c.cwndCnt += acked
	if c.cwndCnt >= c.cwnd {
		d := c.cwndCnt / c.cwnd
		c.cwndCnt -= d * c.cwnd
		c.cwnd += d
	}
}

func (reno) pktsAcked(c *Conn, acked uint32, rtt time.Duration) {}
func (reno) setState(c *Conn, st caState)                       {}
func (reno) cwndEvent(c *Conn, ev ccEvent)                      {}
func (reno) undoCwnd(c *Conn) uint32                            { return max(c.cwnd, c.priorCwnd) }

// newCongestionControl picks the algorithm named by the sysctl.
func (s *Stack) newCongestionControl() congestionControl {
	if cc := newExternalCC(s.sys.congestionControl(), &s.hystart); cc != nil {
		return cc
	}
	return reno{}
}
