package congestion

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
	"unsafe"
)

const rfcC = 0.4 // RFC 9438 §5.1

// rfcK is RFC 9438 eq. 2: K = cbrt((W_max − cwnd_epoch)/C).
func rfcK(wmax, cwndEpoch float64) float64 { return math.Cbrt((wmax - cwndEpoch) / rfcC) }

func TestCubicCurve(t *testing.T) {
	for _, wmax := range []uint32{50, 100, 1000, 10000} {
		c := &cubic{lastMaxCwnd: wmax}
		cwnd := wmax * cubicBeta / cubicBetaScale
		c.startEpoch(cwnd, 1, 1000)
		k := rfcK(float64(wmax), float64(cwnd))
		if gotK := float64(c.k) / 1024; math.Abs(gotK-k) > 0.005*k+0.002 {
			t.Errorf("Wmax %d: K = %.4f s want %.4f", wmax, gotK, k)
		}
		if c.originPoint != wmax {
			t.Errorf("Wmax %d: origin %d", wmax, c.originPoint)
		}
		for _, ts := range []float64{0, k / 4, k / 2, 0.9 * k, k, 1.1 * k, 1.5 * k, 2 * k, k + 3} {
			want := rfcC*math.Pow(ts-k, 3) + float64(wmax)
			got := float64(c.target(uint64(ts * 1024)))
			if math.Abs(got-want) > 1+0.005*want {
				t.Errorf("Wmax %d: W(%.3f s) = %.1f want %.1f", wmax, ts, got, want)
			}
		}
		// The plateau: W(K) = W_max, below it before, above after.
		if got := c.target(uint64(c.k)); got != uint64(wmax) {
			t.Errorf("Wmax %d: W(K) = %d", wmax, got)
		}
	}
}

func TestCubicEpochAboveWmax(t *testing.T) {
	c := &cubic{lastMaxCwnd: 100}
	c.startEpoch(120, 1, 1000)
	if c.k != 0 || c.originPoint != 120 {
		t.Errorf("cwnd above W_max: K %d origin %d, want 0, 120", c.k, c.originPoint)
	}
}

// cubicAfterLoss runs a cubic sim in congestion avoidance at wmax for a few
// rounds (to learn the minimum RTT), then takes a loss.
func cubicAfterLoss(t *testing.T, wmax uint32, rtt time.Duration) *sim {
	m := newSim(t, "cubic", wmax, rtt)
	m.s.Ssthresh = wmax
	for range 3 {
		m.round()
	}
	m.s.Cwnd = wmax
	m.loss()
	return m
}

func TestCubicConcaveThenConvex(t *testing.T) {
	const wmax = 200
	rtt := 100 * time.Millisecond
	m := cubicAfterLoss(t, wmax, rtt)
	if m.s.Cwnd != 140 {
		t.Fatalf("cwnd after loss %d", m.s.Cwnd)
	}
	k := rfcK(wmax, 140) // ≈ 5.3 s ≈ 53 rounds
	cw := []uint32{m.s.Cwnd}
	for range 120 {
		cw = append(cw, m.round())
	}
	inc := func(from, to int) int { return int(cw[to]) - int(cw[from]) }
	kr := int(k * float64(time.Second) / float64(rtt))
	// Concave: fast at first, slowing as W_max nears.
	if a, b := inc(0, 10), inc(kr-15, kr-5); a <= 2*b {
		t.Errorf("not concave: +%d in rounds 0-10, +%d in rounds %d-%d", a, b, kr-15, kr-5)
	}
	// Plateau at W_max around K.
	if d := math.Abs(float64(cw[kr]) - wmax); d > 0.03*wmax {
		t.Errorf("cwnd at K (round %d) = %d, want ≈ %d", kr, cw[kr], wmax)
	}
	// Convex: probing faster and faster beyond W_max.
	if a, b := inc(kr+5, kr+15), inc(kr+40, kr+50); b <= 2*a {
		t.Errorf("not convex: +%d then +%d", a, b)
	}
	// cwnd follows W_cubic(t) within a couple of segments plus a round's growth.
	for r := 5; r < len(cw); r += 5 {
		ts := float64(r) * rtt.Seconds()
		want := rfcC*math.Pow(ts-k, 3) + wmax
		if got := float64(cw[r]); math.Abs(got-want) > 3+0.04*want {
			t.Errorf("round %d (t=%.1fs): cwnd %v, W_cubic %.1f", r, ts, got, want)
		}
	}
}

func TestCubicFastConvergence(t *testing.T) {
	tests := []struct {
		wmax, cwnd, wantWmax, wantSsthresh uint32
	}{
		{100, 100, 100, 70},
		{100, 80, 68, 56}, // shrinking: W_max = cwnd·(1+β)/2
		{100, 120, 120, 84},
		{0, 10, 10, 7},
		{1000, 500, 425, 350},
	}
	for _, tc := range tests {
		c := &cubic{lastMaxCwnd: tc.wmax}
		s := Sender{Cwnd: tc.cwnd, Now: t0}
		if got := c.SsThresh(&s); got != tc.wantSsthresh || c.lastMaxCwnd != tc.wantWmax {
			t.Errorf("W_max %d loss at %d: ssthresh %d W_max %d, want %d %d",
				tc.wmax, tc.cwnd, got, c.lastMaxCwnd, tc.wantSsthresh, tc.wantWmax)
		}
		if c.epochStart != 0 {
			t.Error("loss must end the epoch")
		}
	}
}

func TestCubicRenoFriendlyAtSmallRTT(t *testing.T) {
	const wmax = 200
	const seconds = 2
	tests := []struct {
		rtt              time.Duration
		minRate, maxRate float64 // segments per RTT
		reno             bool    // Reno-friendly region expected to dominate
	}{
		{time.Millisecond, 0.45, 0.60, true}, // α = 3(1−β)/(1+β) ≈ 0.53 per RTT
		{2 * time.Millisecond, 0.45, 0.60, true},
		{100 * time.Millisecond, 0, 10, false}, // the cubic curve dominates
	}
	k := rfcK(wmax, 140)
	cubicAt := rfcC*math.Pow(seconds-k, 3) + wmax
	for _, tc := range tests {
		m := cubicAfterLoss(t, wmax, tc.rtt)
		rounds := int(seconds * time.Second / tc.rtt)
		for range rounds {
			m.round()
		}
		rate := float64(m.s.Cwnd-140) / float64(rounds)
		if tc.reno {
			if rate < tc.minRate || rate > tc.maxRate {
				t.Errorf("rtt %v: grew %.3f segments/RTT, want Reno-friendly %.2f..%.2f", tc.rtt, rate, tc.minRate, tc.maxRate)
			}
			if float64(m.s.Cwnd) < 2*cubicAt {
				t.Errorf("rtt %v: cwnd %d not above W_cubic %.0f", tc.rtt, m.s.Cwnd, cubicAt)
			}
		} else if math.Abs(float64(m.s.Cwnd)-cubicAt) > 5 {
			t.Errorf("rtt %v: cwnd %d, want ≈ W_cubic %.0f", tc.rtt, m.s.Cwnd, cubicAt)
		}
	}
}

func TestCubicInitialGrowthWithoutWmax(t *testing.T) {
	// No loss yet (W_max 0) and ssthresh set by e.g. HyStart: at least 5% per RTT.
	m := newSim(t, "cubic", 100, 100*time.Millisecond)
	m.s.Ssthresh = 100
	for r := range 10 {
		prev := m.s.Cwnd
		if got := m.round(); got < prev+prev/20 {
			t.Fatalf("round %d: cwnd %d → %d, want ≥ 5%%", r, prev, got)
		}
	}
}

func TestCubicGrowthBoundedAt1_5x(t *testing.T) {
	m := cubicAfterLoss(t, 100, 100*time.Millisecond)
	for range 300 { // far into the convex region
		prev := m.s.Cwnd
		if got := m.round(); float64(got) > 1.5*float64(prev)+1 {
			t.Fatalf("cwnd %d → %d in one RTT", prev, got)
		}
	}
}

func TestCubicIdleShiftsEpoch(t *testing.T) {
	rtt := 50 * time.Millisecond
	busy := cubicAfterLoss(t, 200, rtt)
	idle := cubicAfterLoss(t, 200, rtt)
	for range 20 {
		busy.round()
		idle.round()
	}
	c := idle.alg.(*cubic)
	epoch := c.epochStart
	gap := 5 * time.Second
	idle.s.Now = idle.s.Now.Add(gap)
	idle.alg.CwndEvent(&idle.s, TxStart)
	if want := epoch + uint32(gap.Milliseconds()); c.epochStart != want {
		t.Errorf("epoch %d → %d, want shifted by the idle time to %d", epoch, c.epochStart, want)
	}
	for r := range 40 {
		b, i := busy.round(), idle.round()
		if d := int(b) - int(i); d < -2 || d > 2 {
			t.Fatalf("round %d after idle: cwnd %d, without idle %d", r, i, b)
		}
	}
	// Other events leave the epoch alone; an epoch never moves past now.
	c.CwndEvent(&idle.s, CwndRestart)
	c.lastAckTime = msOf(idle.s.Now) - 1<<20
	idle.alg.CwndEvent(&idle.s, TxStart)
	if c.epochStart != msOf(idle.s.Now) {
		t.Errorf("epoch %d beyond now %d", c.epochStart, msOf(idle.s.Now))
	}
}

func TestCubicLossStateResets(t *testing.T) {
	m := cubicAfterLoss(t, 200, 10*time.Millisecond)
	for range 20 {
		m.round()
	}
	c := m.alg.(*cubic)
	if c.lastMaxCwnd == 0 || c.delayMin == 0 || c.epochStart == 0 {
		t.Fatalf("state not built up: %+v", *c)
	}
	m.s.Ssthresh = m.alg.SsThresh(&m.s)
	m.alg.SetState(&m.s, Loss)
	if c.lastMaxCwnd != 0 || c.delayMin != 0 || c.epochStart != 0 || c.found || c.cnt != 0 {
		t.Errorf("RTO did not reset cubic: %+v", *c)
	}
	if c.priorCwnd == 0 {
		t.Error("RTO reset lost the undo state")
	}
}

func TestCubicUndo(t *testing.T) {
	m := cubicAfterLoss(t, 100, 50*time.Millisecond) // W_max 100, cwnd 70
	c := m.alg.(*cubic)
	m.s.Cwnd = 80
	m.s.Ssthresh = m.alg.SsThresh(&m.s) // fast convergence: W_max 68
	if c.lastMaxCwnd != 68 {
		t.Fatalf("W_max %d", c.lastMaxCwnd)
	}
	if got := m.alg.UndoCwnd(&m.s); got != 80 {
		t.Errorf("UndoCwnd = %d want 80", got)
	}
	if c.lastMaxCwnd != 100 || c.epochStart != 0 {
		t.Errorf("undo: W_max %d epoch %d, want 100 and a new epoch", c.lastMaxCwnd, c.epochStart)
	}
}

func TestHyStartDelayIncrease(t *testing.T) {
	base := 10 * time.Millisecond
	tests := []struct {
		name     string
		rttOf    func(int) time.Duration
		wantExit bool
	}{
		{"constant RTT", nil, false},
		{"RTT +10ms", func(r int) time.Duration { return base + time.Duration(min(r/4, 1))*10*time.Millisecond }, true},
		{"RTT +3ms (below 4ms floor)", func(r int) time.Duration { return base + time.Duration(min(r/4, 1))*3*time.Millisecond }, false},
		{"RTT creeping +1ms per round", func(r int) time.Duration { return base + time.Duration(r)*time.Millisecond }, true},
	}
	for _, tc := range tests {
		m := newSim(t, "cubic", 10, base)
		m.rttOf = tc.rttOf // acks arrive in bursts: no ack train
		exitRound := -1
		for r := range 9 {
			prev := m.s.Cwnd
			m.round()
			if exitRound < 0 && m.s.Ssthresh != InfiniteSsthresh {
				exitRound = r
				if m.s.Ssthresh < prev || m.s.Ssthresh > m.s.Cwnd {
					t.Errorf("%s: ssthresh %d outside [%d,%d]", tc.name, m.s.Ssthresh, prev, m.s.Cwnd)
				}
			}
		}
		c := m.alg.(*cubic)
		if (exitRound >= 0) != tc.wantExit || c.found != tc.wantExit {
			t.Errorf("%s: exit round %d found %v, want exit %v (cwnd %d)", tc.name, exitRound, c.found, tc.wantExit, m.s.Cwnd)
			continue
		}
		if !tc.wantExit {
			if m.s.Cwnd != 10<<9 {
				t.Errorf("%s: cwnd %d want %d (pure doubling)", tc.name, m.s.Cwnd, 10<<9)
			}
			continue
		}
		if exitRound < 4 || exitRound > 6 {
			t.Errorf("%s: exited in round %d, want soon after the RTT rose in round 4", tc.name, exitRound)
		}
		// Congestion avoidance afterwards: no more doubling.
		before := m.s.Cwnd
		m.round()
		if m.s.Cwnd >= before+before/2 {
			t.Errorf("%s: still slow-starting after HyStart: %d → %d", tc.name, before, m.s.Cwnd)
		}
	}
}

func TestHyStartAckTrain(t *testing.T) {
	tests := []struct {
		rtt       time.Duration
		startCwnd uint32
		exitBelow uint32
	}{
		// ACKs ≤ 2 ms apart for more than half the minimum RTT: the pipe is full.
		{20 * time.Millisecond, 16, 64},
		{100 * time.Millisecond, 16, 256}, // needs cwnd ≥ 50 for 2 ms spacing
	}
	for _, tc := range tests {
		m := newSim(t, "cubic", tc.startCwnd, tc.rtt)
		m.spread = 1 // ACKs paced by the bottleneck over the whole RTT
		for range 6 {
			m.round()
			if m.s.Ssthresh != InfiniteSsthresh {
				break
			}
		}
		if m.s.Ssthresh == InfiniteSsthresh || m.s.Ssthresh >= tc.exitBelow {
			t.Errorf("rtt %v: ssthresh %d after ack train, want < %d", tc.rtt, m.s.Ssthresh, tc.exitBelow)
		}
	}
}

func TestHyStartBelowLowWindow(t *testing.T) {
	m := newSim(t, "cubic", 2, 10*time.Millisecond)
	m.spread = 1
	m.rttOf = func(r int) time.Duration { return time.Duration(r+1) * 10 * time.Millisecond }
	for range 3 { // cwnd 2 → 16: below hystart_low_window throughout
		m.round()
	}
	if m.s.Ssthresh != InfiniteSsthresh || m.s.Cwnd != 16 {
		t.Errorf("HyStart acted below 16 segments: cwnd %d ssthresh %d", m.s.Cwnd, m.s.Ssthresh)
	}
}

func TestPktsAckedIgnoresMissingRTT(t *testing.T) {
	c := &cubic{}
	s := Sender{Cwnd: 20, Ssthresh: InfiniteSsthresh, Now: t0}
	c.Init(&s)
	for _, rtt := range []time.Duration{0, -1, -time.Second} {
		c.PktsAcked(&s, 1, rtt)
	}
	if c.delayMin != 0 {
		t.Errorf("delayMin %d from non-samples", c.delayMin)
	}
	c.PktsAcked(&s, 1, 500*time.Nanosecond)
	if c.delayMin != 1 {
		t.Errorf("sub-µs RTT: delayMin %d want 1", c.delayMin)
	}
}

func TestCubicRoot(t *testing.T) {
	tests := []struct {
		a    uint64
		want uint32
	}{
		{0, 0}, {1, 1}, {7, 1}, {8, 2}, {26, 2}, {27, 3}, {1000, 10}, {999, 9},
		{1 << 30, 1024}, {1<<30 - 1, 1023}, {1 << 63, 2097152}, {math.MaxUint64, 2642245},
	}
	for _, tc := range tests {
		if got := cubicRoot(tc.a); got != tc.want {
			t.Errorf("cubicRoot(%d) = %d want %d", tc.a, got, tc.want)
		}
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 100000 {
		a := r.Uint64() >> r.IntN(64)
		x := uint64(cubicRoot(a))
		if x*x*x > a || (x < 2642245 && (x+1)*(x+1)*(x+1) <= a) {
			t.Fatalf("cubicRoot(%d) = %d", a, x)
		}
	}
}

func TestStateSize(t *testing.T) {
	t.Logf("per-connection state: cubic %d bytes, reno %d bytes, Sender %d bytes",
		unsafe.Sizeof(cubic{}), unsafe.Sizeof(reno{}), unsafe.Sizeof(Sender{}))
	if n := unsafe.Sizeof(cubic{}); n > 96 {
		t.Errorf("cubic state %d bytes > 96", n)
	}
}

func TestNoAllocPerAck(t *testing.T) {
	for _, name := range Names() {
		a, _ := New(name)
		s := Sender{Cwnd: 10, Now: t0, CwndLimited: true}
		a.Init(&s)
		n := testing.AllocsPerRun(1000, func() {
			s.Now = s.Now.Add(time.Millisecond)
			s.PacketsOut = s.Cwnd - 1
			a.PktsAcked(&s, 1, 10*time.Millisecond)
			a.CongAvoid(&s, 1)
		})
		if n != 0 {
			t.Errorf("%s: %v allocs per ACK", name, n)
		}
	}
}

func BenchmarkAck(b *testing.B) {
	for _, name := range Names() {
		b.Run(name, func(b *testing.B) {
			a, _ := New(name)
			s := Sender{Cwnd: 100, Ssthresh: 100, Now: t0, CwndLimited: true}
			a.Init(&s)
			b.ReportAllocs()
			for b.Loop() {
				s.Now = s.Now.Add(100 * time.Microsecond)
				s.PacketsOut = s.Cwnd - 1
				a.PktsAcked(&s, 1, 10*time.Millisecond)
				a.CongAvoid(&s, 1)
				if s.Cwnd > 10000 {
					s.Ssthresh = a.SsThresh(&s)
					s.Cwnd = s.Ssthresh
				}
			}
		})
	}
}

func TestHyStartCounters(t *testing.T) {
	var hc HyStartCounters
	base := 10 * time.Millisecond
	// One delay exit (bursty ACKs, RTT rises) and one train exit (paced ACKs).
	a, err := NewWithCounters("cubic", &hc)
	if err != nil {
		t.Fatal(err)
	}
	m := newSim(t, "cubic", 10, base)
	m.alg = a
	a.Init(&m.s)
	m.rttOf = func(r int) time.Duration { return base + time.Duration(min(r/4, 1))*10*time.Millisecond }
	for range 6 {
		m.round()
	}
	b, _ := NewWithCounters("cubic", &hc)
	m2 := newSim(t, "cubic", 16, 20*time.Millisecond)
	m2.alg = b
	b.Init(&m2.s)
	m2.spread = 1
	m2.round()
	got := map[string]uint64{}
	var order []string
	hc.Counters(func(name string, v uint64) { got[name] = v; order = append(order, name) })
	want := map[string]uint64{
		"TcpExtTCPHystartTrainDetect": 1, "TcpExtTCPHystartTrainCwnd": uint64(m2.s.Ssthresh),
		"TcpExtTCPHystartDelayDetect": 1, "TcpExtTCPHystartDelayCwnd": uint64(m.s.Ssthresh),
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %d want %d", name, got[name], v)
		}
	}
	if len(order) != 4 || order[0] != "TcpExtTCPHystartTrainDetect" {
		t.Errorf("order %v", order)
	}
	if r, err := NewWithCounters("reno", &hc); err != nil || r.Name() != "reno" {
		t.Errorf("NewWithCounters(reno) = %v, %v", r, err)
	}
	if _, err := NewWithCounters("nope", &hc); err == nil {
		t.Error("NewWithCounters(nope) succeeded")
	}
}
