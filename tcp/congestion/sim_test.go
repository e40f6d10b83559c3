package congestion

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// sim drives an Algorithm the way tcp does: per ACK, PktsAcked then CongAvoid.
type sim struct {
	t   *testing.T
	alg Algorithm
	s   Sender
	rtt time.Duration
	// spread is the fraction of the RTT over which one round's ACKs arrive:
	// 0 is a burst (no bottleneck), 1 is a saturated link.
	spread   float64
	perAck   uint32 // segments per ACK (2 with delayed ACKs)
	limited  bool
	rttOf    func(round int) time.Duration // RTT sample of a round; nil → rtt
	roundNum int
}

func newSim(t *testing.T, name string, cwnd uint32, rtt time.Duration) *sim {
	t.Helper()
	alg, err := New(name)
	if err != nil {
		t.Fatal(err)
	}
	m := &sim{t: t, alg: alg, rtt: rtt, perAck: 1, limited: true}
	m.s = Sender{Cwnd: cwnd, MSS: 1460, Now: t0}
	alg.Init(&m.s)
	return m
}

// round sends one window and takes its ACKs; it returns cwnd afterwards.
func (m *sim) round() uint32 {
	rtt := m.rtt
	if m.rttOf != nil {
		rtt = m.rttOf(m.roundNum)
	}
	m.roundNum++
	n := m.s.Cwnd
	acks := (n + m.perAck - 1) / m.perAck
	start := m.s.Now
	base := time.Duration(float64(m.rtt) * (1 - m.spread))
	for i := uint32(0); i < acks; i++ {
		a := min(m.perAck, n-i*m.perAck)
		at := base + time.Duration(float64(m.rtt)*m.spread*float64(i+1)/float64(acks))
		m.s.Now = start.Add(at)
		m.s.CwndLimited = m.limited
		m.s.PacketsOut = m.s.Cwnd - min(a, m.s.Cwnd) // the window refills as it opens
		m.alg.PktsAcked(&m.s, a, rtt)
		m.alg.CongAvoid(&m.s, a)
	}
	m.s.Now = start.Add(m.rtt)
	return m.s.Cwnd
}

// loss applies a fast-retransmit reduction: ssthresh from the algorithm, cwnd = ssthresh.
func (m *sim) loss() {
	m.alg.SetState(&m.s, Recovery)
	m.s.Ssthresh = m.alg.SsThresh(&m.s)
	m.s.Cwnd = m.s.Ssthresh
	m.s.CwndCnt = 0
	m.alg.SetState(&m.s, Open)
}

func TestNewNames(t *testing.T) {
	tests := []struct {
		name, want string
		err        bool
	}{
		{"", "cubic", false}, {"cubic", "cubic", false}, {"reno", "reno", false},
		{"bbr", "", true}, {"Cubic", "", true},
	}
	for _, tc := range tests {
		a, err := New(tc.name)
		if (err != nil) != tc.err || (err == nil && a.Name() != tc.want) {
			t.Errorf("New(%q) = %v, %v", tc.name, a, err)
		}
	}
	names := Names()
	if len(names) != 2 || names[0] != "cubic" || names[1] != "reno" {
		t.Errorf("Names() = %v", names)
	}
	names[0] = "x"
	if Names()[0] != "cubic" {
		t.Error("Names returns shared storage")
	}
	a, _ := New("cubic")
	b, _ := New("cubic")
	if a == b {
		t.Error("New must return per-connection instances")
	}
}

func TestInitSetsInfiniteSsthresh(t *testing.T) {
	for _, name := range Names() {
		a, _ := New(name)
		s := Sender{Cwnd: 10}
		a.Init(&s)
		if s.Ssthresh != InfiniteSsthresh {
			t.Errorf("%s: ssthresh %d after Init", name, s.Ssthresh)
		}
		s = Sender{Cwnd: 10, Ssthresh: 50}
		a.Init(&s)
		if s.Ssthresh != 50 {
			t.Errorf("%s: Init overwrote ssthresh %d", name, s.Ssthresh)
		}
	}
}

func TestSlowStartDoublesPerRTT(t *testing.T) {
	for _, name := range Names() {
		for _, delack := range []bool{false, true} {
			m := newSim(t, name, 10, 50*time.Millisecond)
			if delack {
				m.perAck = 2
			}
			want := uint32(10)
			for r := range 6 {
				want *= 2
				if got := m.round(); got != want {
					t.Fatalf("%s delack=%v round %d: cwnd %d want %d", name, delack, r, got, want)
				}
			}
		}
	}
}

func TestSlowStartStopsAtSsthresh(t *testing.T) {
	tests := []struct {
		cwnd, ssthresh, acked, wantCwnd, wantLeft uint32
	}{
		{10, 100, 5, 15, 0},
		{10, 12, 5, 12, 3},
		{12, 12, 5, 12, 5},
		{10, InfiniteSsthresh, 1000, 1010, 0},
	}
	for _, tc := range tests {
		s := Sender{Cwnd: tc.cwnd, Ssthresh: tc.ssthresh}
		left := SlowStart(&s, tc.acked)
		if s.Cwnd != tc.wantCwnd || left != tc.wantLeft {
			t.Errorf("SlowStart(%+v, %d) = cwnd %d left %d", tc, tc.acked, s.Cwnd, left)
		}
	}
}

func TestCongAvoidAI(t *testing.T) {
	tests := []struct {
		cwnd, cnt, w, acked, wantCwnd, wantCnt uint32
	}{
		{10, 0, 10, 1, 10, 1},
		{10, 9, 10, 1, 11, 0},
		{10, 9, 10, 12, 12, 1}, // 21 credits: +2, 1 left
		{10, 15, 10, 1, 11, 1}, // credits from a larger w applied first
		{10, 0, 0, 3, 13, 0},   // w 0 treated as 1
		{100, 50, 100, 49, 100, 99},
	}
	for _, tc := range tests {
		s := Sender{Cwnd: tc.cwnd, CwndCnt: tc.cnt}
		CongAvoidAI(&s, tc.w, tc.acked)
		if s.Cwnd != tc.wantCwnd || s.CwndCnt != tc.wantCnt {
			t.Errorf("CongAvoidAI(%+v) = cwnd %d cnt %d", tc, s.Cwnd, s.CwndCnt)
		}
	}
}

func TestRenoAIMD(t *testing.T) {
	for _, perAck := range []uint32{1, 2} {
		m := newSim(t, "reno", 20, 50*time.Millisecond)
		m.perAck = perAck
		m.s.Ssthresh = 20
		for r := range 30 {
			want := uint32(21 + r)
			if got := m.round(); got != want {
				t.Fatalf("perAck %d round %d: cwnd %d want %d", perAck, r, got, want)
			}
		}
		m.loss()
		if m.s.Cwnd != 25 || m.s.Ssthresh != 25 {
			t.Fatalf("after loss at 50: cwnd %d ssthresh %d", m.s.Cwnd, m.s.Ssthresh)
		}
		if got := m.alg.UndoCwnd(&m.s); got != 50 {
			t.Errorf("UndoCwnd = %d want 50", got)
		}
	}
}

func TestNoGrowthWhenNotCwndLimited(t *testing.T) {
	for _, name := range Names() {
		for _, ssthresh := range []uint32{InfiniteSsthresh, 20} {
			m := newSim(t, name, 20, 10*time.Millisecond)
			m.s.Ssthresh = ssthresh
			m.limited = false
			for range 10 {
				if got := m.round(); got != 20 {
					t.Fatalf("%s ssthresh %d: cwnd grew to %d while application-limited", name, ssthresh, got)
				}
			}
		}
	}
}

func TestSsThreshOnLoss(t *testing.T) {
	tests := []struct {
		name       string
		cwnd, want uint32
	}{
		{"reno", 100, 50}, {"reno", 21, 10}, {"reno", 3, 2}, {"reno", 1, 2}, {"reno", 0, 2},
		{"cubic", 100, 70}, {"cubic", 1000, 700}, {"cubic", 10, 7}, {"cubic", 3, 2}, {"cubic", 1, 2},
		{"cubic", 1 << 30, 751828992}, // 717/1024 without overflow
	}
	for _, tc := range tests {
		a, _ := New(tc.name)
		s := Sender{Cwnd: tc.cwnd, Now: t0}
		a.Init(&s)
		if got := a.SsThresh(&s); got != tc.want {
			t.Errorf("%s SsThresh(cwnd %d) = %d want %d", tc.name, tc.cwnd, got, tc.want)
		}
	}
}

func TestStateAndEventStrings(t *testing.T) {
	if Loss.String() != "Loss" || EventLoss.String() != "Loss" || TxStart.String() != "TxStart" ||
		Recovery.String() != "Recovery" || State(9).String() != "State(9)" || Event(9).String() != "Event(9)" {
		t.Error("String methods")
	}
}
