// Package congestion holds TCP congestion control algorithms with the
// semantics of Linux's tcp_congestion_ops: the connection owns a Sender
// (cwnd and ssthresh in segments) and calls the algorithm's hooks from its
// ACK, loss and idle paths; recovery itself (NewReno, SACK, RTO) lives in
// package tcp.
//
// New returns a fresh Algorithm per connection: it carries the algorithm's
// per-connection state (Linux's inet_csk_ca) and is not safe for concurrent
// use, like the socket it belongs to. Time comes only from Sender.Now.
//
// The calls tcp makes, in Linux's order:
//
//	connection start:     Init (sets Ssthresh to InfiniteSsthresh if it is 0)
//	ACK of new data:      update PacketsOut, then PktsAcked(acked, rtt sample or 0);
//	                      then, if the ACK may raise cwnd (state Open), set
//	                      CwndLimited and call CongAvoid(acked)
//	fast retransmit/ECN:  Ssthresh = SsThresh(); SetState(Recovery or CWR); cwnd
//	                      reduction (PRR) and recovery are tcp's; CwndEvent(CompleteCWR) at the end
//	RTO:                  Ssthresh = SsThresh(); SetState(Loss); Cwnd = 1
//	spurious reduction:   Cwnd = UndoCwnd() (Eifel, F-RTO, DSACK)
//	send with nothing in flight after idle: CwndEvent(TxStart)
package congestion

import (
	"fmt"
	"time"
)

// InfiniteSsthresh is TCP_INFINITE_SSTHRESH, ssthresh before the first loss.
const InfiniteSsthresh = 0x7fffffff

// Sender is the part of a connection's send state the algorithms read and
// write (Linux's tcp_sock fields of the same meaning).
type Sender struct {
	Cwnd, Ssthresh, CwndCnt uint32 // snd_cwnd, snd_ssthresh, snd_cwnd_cnt (segments)
	MSS                     int
	// PacketsOut is packets_out after this ACK's segments were removed: HyStart
	// uses it to find the end of a round (Linux: end_seq = snd_nxt).
	PacketsOut uint32
	// CwndLimited is tcp_is_cwnd_limited: the window, not the application,
	// limited sending; the window grows only then.
	CwndLimited  bool
	SRTT, MinRTT time.Duration
	Now          time.Time // the injected clock's time of this event
	DelayedAck   bool      // the peer delays ACKs (informational; reno and cubic count segments, not ACKs)
}

// Event is tcp_ca_event.
type Event int

const (
	TxStart     Event = iota // CA_EVENT_TX_START: first transmit when no packets in flight (after idle)
	CwndRestart              // CA_EVENT_CWND_RESTART: congestion window restart after idle
	CompleteCWR              // CA_EVENT_COMPLETE_CWR: end of congestion window reduction
	EventLoss                // CA_EVENT_LOSS: loss timeout (RTO)
)

func (e Event) String() string {
	switch e {
	case TxStart:
		return "TxStart"
	case CwndRestart:
		return "CwndRestart"
	case CompleteCWR:
		return "CompleteCWR"
	case EventLoss:
		return "Loss"
	}
	return fmt.Sprintf("Event(%d)", int(e))
}

// State is tcp_ca_state.
type State int

const (
	Open     State = iota // TCP_CA_Open
	Disorder              // TCP_CA_Disorder: dupACKs or SACK holes seen
	CWR                   // TCP_CA_CWR: window reduced on ECN or local congestion
	Recovery              // TCP_CA_Recovery: fast retransmit
	Loss                  // TCP_CA_Loss: RTO fired
)

func (s State) String() string {
	switch s {
	case Open:
		return "Open"
	case Disorder:
		return "Disorder"
	case CWR:
		return "CWR"
	case Recovery:
		return "Recovery"
	case Loss:
		return "Loss"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Algorithm is tcp_congestion_ops.
type Algorithm interface {
	Name() string
	Init(s *Sender)
	SsThresh(s *Sender) uint32                            // new ssthresh on entering loss recovery / RTO (ops->ssthresh)
	CongAvoid(s *Sender, acked uint32)                    // cwnd growth on ACK of new data (ops->cong_avoid)
	PktsAcked(s *Sender, acked uint32, rtt time.Duration) // ops->pkts_acked; rtt <= 0: no RTT sample
	SetState(s *Sender, st State)                         // ops->set_state
	CwndEvent(s *Sender, ev Event)                        // ops->cwnd_event
	UndoCwnd(s *Sender) uint32                            // ops->undo_cwnd: cwnd to restore after a spurious reduction
}

// Default is the algorithm New("") returns, like net.ipv4.tcp_congestion_control.
const Default = "cubic"

// New returns a fresh per-connection instance of the named algorithm.
func New(name string) (Algorithm, error) {
	switch name {
	case "", "cubic":
		return new(cubic), nil
	case "reno":
		return new(reno), nil
	}
	return nil, fmt.Errorf("congestion: unknown algorithm %q (available: %v)", name, Names())
}

// NewWithCounters is New whose HyStart exits (cubic) are counted in hc,
// which may be nil and is usually shared by all connections of a stack.
func NewWithCounters(name string, hc *HyStartCounters) (Algorithm, error) {
	a, err := New(name)
	if c, ok := a.(*cubic); ok {
		c.counters = hc
	}
	return a, err
}

// Names lists the available algorithms (tcp_available_congestion_control).
func Names() []string { return []string{"cubic", "reno"} }

// InSlowStart is tcp_in_slow_start.
func InSlowStart(s *Sender) bool { return s.Cwnd < s.Ssthresh }

// SlowStart grows cwnd by one segment per segment acked, not beyond
// ssthresh, and returns the acked count left over for congestion avoidance.
// Mirrors tcp_slow_start (RFC 5681 §3.1 with RFC 3465 byte counting).
func SlowStart(s *Sender, acked uint32) uint32 {
	cwnd := min(s.Cwnd+acked, s.Ssthresh)
	acked -= cwnd - s.Cwnd
	s.Cwnd = cwnd
	return acked
}

// CongAvoidAI grows cwnd by one segment per w segments acked, keeping the
// remainder in CwndCnt. Mirrors tcp_cong_avoid_ai.
func CongAvoidAI(s *Sender, w, acked uint32) {
	w = max(w, 1)
	// Credits accumulated at a larger w are applied gently now.
	if s.CwndCnt >= w {
		s.CwndCnt = 0
		s.Cwnd++
	}
	s.CwndCnt += acked
	if s.CwndCnt >= w {
		delta := s.CwndCnt / w
		s.CwndCnt -= delta * w
		s.Cwnd += delta
	}
}
