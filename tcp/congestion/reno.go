package congestion

import "time"

// reno is Linux's tcp_reno ops: slow start, then one segment per RTT.
type reno struct {
	priorCwnd uint32 // cwnd when the last reduction began (tp->prior_cwnd)
}

func (r *reno) Name() string { return "reno" }

func (r *reno) Init(s *Sender) {
	if s.Ssthresh == 0 {
		s.Ssthresh = InfiniteSsthresh
	}
}

// SsThresh halves the window. Mirrors tcp_reno_ssthresh.
func (r *reno) SsThresh(s *Sender) uint32 {
	r.priorCwnd = s.Cwnd
	return max(s.Cwnd>>1, 2)
}

// CongAvoid mirrors tcp_reno_cong_avoid.
func (r *reno) CongAvoid(s *Sender, acked uint32) {
	if !s.CwndLimited {
		return
	}
	if InSlowStart(s) {
		if acked = SlowStart(s, acked); acked == 0 {
			return
		}
	}
	CongAvoidAI(s, s.Cwnd, acked)
}

func (r *reno) PktsAcked(*Sender, uint32, time.Duration) {}
func (r *reno) SetState(*Sender, State)                  {}
func (r *reno) CwndEvent(*Sender, Event)                 {}

// UndoCwnd mirrors tcp_reno_undo_cwnd.
func (r *reno) UndoCwnd(s *Sender) uint32 { return max(s.Cwnd, r.priorCwnd) }
