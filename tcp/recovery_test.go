package tcp

import (
	"testing"
	"time"

	"github.com/tapstack/tapstack/wire"
)

// peerRTT is the round trip of the recovery scripts: the handshake
// measures it, and every ACK a script injects arrives this long after the
// segments it acknowledges left.
const peerRTT = 10 * time.Millisecond

// rpeer is the far end of an established connection in a loss-recovery
// script. The script says which of the stack's segments arrived by naming
// them by index (segment k carries bytes [base+(k-1)·mss, base+k·mss)),
// and rpeer sends the ACK a receiver would: cumulative up to the first
// missing segment, SACK blocks for what arrived above it, and the echo of
// the newest timestamp among the segments it reports.
type rpeer struct {
	t     *testing.T
	h     *harness
	c     *Conn
	irs   uint32
	base  uint32
	mss   int
	ts    bool
	tsval uint32
	// sent holds, per segment index, the TSval of its latest transmission
	// and how often it was sent; log is every data segment in order.
	sent map[int]*sentInfo
	log  []sentRec
	// acked and tsRecent model the receiver's cumulative point and
	// TS.Recent (RFC 7323 §4.3): the TSval of the newest transmission
	// among the segments an advance of the cumulative ACK covered.
	acked    int
	tsRecent uint32
}

type sentInfo struct {
	tsval uint32
	times int
}

// sentRec is one data segment the stack sent: its index and whether it
// repeated one sent before.
type sentRec struct {
	k     int
	rexmt bool
}

// newRPeer opens a connection (SACK, and timestamps when ts) whose
// handshake takes peerRTT, then grows cwnd to at least cwnd segments with
// clean rounds of ACKs. mod adjusts the sysctls.
func newRPeer(t *testing.T, ts bool, cwnd int, mod func(*Sysctls)) *rpeer {
	t.Helper()
	h := newHarness(t, mod)
	l := h.listen(16)
	opts := &wire.TCPOptions{MSS: 1460, HasMSS: true, WScale: 7, SACKPermitted: true}
	if ts {
		opts.HasTS, opts.TSVal = true, 100
	}
	irs := uint32(1000)
	h.inject(seg{src: 5000, dst: 80, seq: irs, flags: fS, opts: opts})
	synack := h.expect().SYNACK()
	iss := synack.seg.Seq()
	h.after(peerRTT)
	var o *wire.TCPOptions
	if ts {
		o = &wire.TCPOptions{WScale: -1, HasTS: true, TSVal: 101, TSEcr: synack.opts.TSVal}
	}
	h.inject(seg{src: 5000, dst: 80, seq: irs + 1, ack: iss + 1, flags: fA, opts: o, wnd: 65535})
	c, err := l.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	p := &rpeer{t: t, h: h, c: c, irs: irs + 1, base: iss + 1, ts: ts, tsval: 200, sent: map[int]*sentInfo{}}
	c.mu.Lock()
	p.mss = c.snd.mss
	c.mu.Unlock()
	// Grow the window: rounds of clean, fully acknowledged flights.
	for k := 1; p.cwnd() < cwnd; {
		c.Write(make([]byte, p.cwnd()*p.mss))
		n := p.collect()
		h.after(peerRTT)
		k += len(n)
		p.ackTo(k)
	}
	h.drain()
	c.mu.Lock()
	p.base = uint32(c.snd.nxt) // the scripts count segments from here
	c.mu.Unlock()
	p.log, p.sent, p.acked = nil, map[int]*sentInfo{}, 1
	return p
}

func (p *rpeer) seq(k int) uint32 { return p.base + uint32((k-1)*p.mss) }

// idx is the index of the segment starting at seq.
func (p *rpeer) idx(seq uint32) int { return int(seq-p.base)/p.mss + 1 }

func (p *rpeer) cwnd() int {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	return int(p.c.rec.cong.Cwnd)
}

// collect takes every segment the stack sent since the last call and
// returns the data segments' records.
func (p *rpeer) collect() []sentRec {
	p.t.Helper()
	var out []sentRec
	for p.h.pending() > 0 {
		e := p.h.expect()
		if len(e.seg.Payload()) == 0 {
			continue
		}
		k := p.idx(e.seg.Seq())
		si := p.sent[k]
		if si == nil {
			si = &sentInfo{}
			p.sent[k] = si
		}
		si.times++
		si.tsval = e.opts.TSVal
		r := sentRec{k: k, rexmt: si.times > 1}
		out = append(out, r)
		p.log = append(p.log, r)
	}
	return out
}

// ack sends an ACK for everything below segment next, with SACK blocks
// given as inclusive segment ranges [from, to], the most recent first.
func (p *rpeer) ack(next int, blocks ...[2]int) {
	p.ackEcho(0, next, blocks...)
}

// ackTo acknowledges everything below segment next.
func (p *rpeer) ackTo(next int) { p.ack(next) }

// ackEcho is ack with an explicit TSecr (0: the TSval of the newest
// segment the ACK reports).
func (p *rpeer) ackEcho(echo uint32, next int, blocks ...[2]int) {
	p.t.Helper()
	var o *wire.TCPOptions
	if p.ts || len(blocks) > 0 {
		o = &wire.TCPOptions{WScale: -1}
	}
	if p.ts {
		p.tsval++
		o.HasTS, o.TSVal = true, p.tsval
		for k := p.acked; k < next; k++ {
			if si := p.sent[k]; si != nil && int32(si.tsval-p.tsRecent) > 0 {
				p.tsRecent = si.tsval
			}
		}
		if echo == 0 {
			echo = p.tsRecent
		}
		o.TSEcr = echo
	}
	p.acked = max(p.acked, next)
	for i, b := range blocks {
		o.SACK[i] = wire.SACKBlock{Left: p.seq(b[0]), Right: p.seq(b[1] + 1)}
		o.NumSACK++
	}
	p.h.inject(seg{src: 5000, dst: 80, seq: p.irs, ack: p.seq(next), flags: fA, opts: o, wnd: 65535})
}

// state reads fields under the connection's lock.
func (p *rpeer) state() (ca caState, cwnd, ssthresh uint32, sb scoreboard) {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	return p.c.rec.ca, p.c.rec.cong.Cwnd, p.c.rec.cong.Ssthresh, p.c.rec.sb
}

func (p *rpeer) counter(name string) uint64 { return p.h.s.Counter(name) }

// checkScoreboard verifies the counters against the records.
func (p *rpeer) checkScoreboard() {
	p.t.Helper()
	checkScoreboard(p.t, p.c)
}

// checkScoreboard verifies c's counters against its records: every count
// Linux keeps beside its queue must be what the records say, the records
// must tile [snd_una, snd_nxt) and in-flight must not be negative.
func checkScoreboard(t *testing.T, c *Conn) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	sb := &c.rec.sb
	var sacked, lost, retrans int
	for i := 0; i < sb.n; i++ {
		g := sb.at(i)
		if g.flags&sbSacked != 0 {
			sacked++
		}
		if g.flags&sbLost != 0 {
			lost++
		}
		if g.flags&sbRetrans != 0 {
			retrans++
		}
		if i > 0 && sb.at(i-1).end != g.seq {
			t.Fatalf("record %d starts at %d, previous ends at %d", i, g.seq, sb.at(i-1).end)
		}
		if !g.seq.lt(g.end) {
			t.Fatalf("record %d is empty: [%d, %d)", i, g.seq, g.end)
		}
	}
	if sb.n != sb.packetsOut || sacked != sb.sackedOut && c.sackOn || lost != sb.lostOut || retrans != sb.retransOut {
		t.Fatalf("scoreboard counts: packets %d/%d sacked %d/%d lost %d/%d retrans %d/%d (counted/records)",
			sb.packetsOut, sb.n, sb.sackedOut, sacked, sb.lostOut, lost, sb.retransOut, retrans)
	}
	if sb.n > 0 && (sb.at(0).seq != c.snd.una || sb.last().end != c.snd.nxt) {
		t.Fatalf("records span [%d, %d), snd_una %d snd_nxt %d", sb.at(0).seq, sb.last().end, c.snd.una, c.snd.nxt)
	}
	if sb.n == 0 && c.snd.una != c.snd.nxt && c.state.synchronized() && c.state != StateTimeWait {
		t.Fatalf("no records for [%d, %d)", c.snd.una, c.snd.nxt)
	}
	if sb.packetsOut-(sb.sackedOut+sb.lostOut)+sb.retransOut < 0 {
		t.Fatalf("negative in flight: %+v", *sb)
	}
}

// TestRACKReorderTimerDetectsLossWithoutDupacks: segment 9 of 10 is lost
// and the one ACK that comes back advances snd_una and SACKs segment 10:
// not a single duplicate ACK, and one SACKed segment is far below
// dupthresh. RACK (RFC 8985 §6.2) still knows segment 9 was sent before a
// delivered one; it waits one reordering window (min_rtt/4) on the
// reordering timer, then marks it lost and retransmits it. No RTO, no
// probe.
func TestRACKReorderTimerDetectsLossWithoutDupacks(t *testing.T) {
	p := newRPeer(t, true, 10, nil)
	p.c.Write(make([]byte, 10*p.mss))
	if n := len(p.collect()); n != 10 {
		t.Fatalf("sent %d segments, want 10", n)
	}
	p.h.after(peerRTT)
	p.ack(9, [2]int{10, 10})
	p.h.expectNone()
	p.c.mu.Lock()
	reoAt, tlpAt := p.c.reoAt, p.c.tlpAt
	p.c.mu.Unlock()
	if reoAt.IsZero() || !tlpAt.IsZero() {
		t.Fatalf("reordering timer %v, probe timer %v: want the reordering timer armed", reoAt, tlpAt)
	}
	// min_rtt/4 plus TCP_TIMEOUT_MIN: not yet after 4 ms...
	p.h.after(4 * time.Millisecond)
	p.h.expectNone()
	// ...but by 5 ms.
	p.h.after(time.Millisecond)
	got := p.collect()
	if len(got) != 1 || got[0].k != 9 || !got[0].rexmt {
		t.Fatalf("sent %+v, want the retransmission of segment 9", got)
	}
	for name, want := range map[string]uint64{"TcpExtTCPTimeouts": 0, "TcpExtTCPLossProbes": 0,
		"TcpExtTCPSackRecovery": 1, "TcpExtTCPFastRetrans": 1, "TcpRetransSegs": 1} {
		if got := p.counter(name); got != want {
			t.Errorf("%s %d, want %d", name, got, want)
		}
	}
	p.checkScoreboard()
	ca, _, ssthresh, _ := p.state()
	if ca != caRecovery {
		t.Fatalf("state %d, want Recovery", ca)
	}
	p.h.after(peerRTT)
	p.ack(11)
	ca, cwnd, _, sb := p.state()
	if ca != caOpen || cwnd != ssthresh || sb.packetsOut != 0 {
		t.Fatalf("after the full ACK: state %d cwnd %d (ssthresh %d) packets out %d", ca, cwnd, ssthresh, sb.packetsOut)
	}
}

// TestPRRFollowsRFC6937Example replays RFC 6937's example (§6): 20
// segments in flight, the first lost, each following segment arriving and
// SACKed, a window-halving algorithm (Reno: ssthresh = 10). Limited
// transmit sends a new segment on each of the first two duplicate ACKs;
// the third starts recovery and the retransmission goes at once; from
// then on PRR sends one segment for every two delivered (ssthresh /
// prior cwnd), never bursting, so that when the last ACK of the window
// arrives 10 segments are in flight and cwnd ends at ssthresh.
func TestPRRFollowsRFC6937Example(t *testing.T) {
	p := newRPeer(t, true, 20, func(s *Sysctls) { s.CongestionControl.Store("reno") })
	if got := p.cwnd(); got != 20 {
		t.Fatalf("cwnd %d before the loss, want 20", got)
	}
	p.c.Write(make([]byte, 60*p.mss))
	if n := len(p.collect()); n != 20 {
		t.Fatalf("sent %d segments, want 20", n)
	}
	p.h.after(peerRTT)
	// want[i] is what the ACK SACKing segments 2..i+2 sends: "N" new
	// data, "R" the retransmission, "" nothing.
	want := []string{"N", "N", "R", "", "N", "", "N", "", "N", "", "N", "", "N", "", "N", "", "N", "", ""}
	for i, w := range want {
		p.h.after(100 * time.Microsecond) // the segments' spacing at the receiver
		p.ack(1, [2]int{2, i + 2})
		var got string
		for _, r := range p.collect() {
			if r.rexmt {
				got += "R"
			} else {
				got += "N"
			}
		}
		if got != w {
			t.Fatalf("ACK %d (SACK 2..%d) sent %q, want %q; sent so far %+v", i+1, i+2, got, w, p.log)
		}
		p.checkScoreboard()
	}
	p.c.mu.Lock()
	inFlight, ssthresh, prior := p.c.inFlight(), p.c.rec.cong.Ssthresh, p.c.rec.priorCwnd
	p.c.mu.Unlock()
	if ssthresh != 10 || prior != 20 {
		t.Fatalf("ssthresh %d prior cwnd %d, want 10 and 20", ssthresh, prior)
	}
	// In flight: the retransmission, the two limited-transmit segments and
	// PRR's seven new ones: ssthresh, as RFC 6937 promises.
	if inFlight != 10 {
		t.Fatalf("in flight %d after the window's ACKs, want ssthresh (10)", inFlight)
	}
	p.h.after(peerRTT)
	p.ack(30) // the retransmission and everything sent since arrived
	// Recovery ends with cwnd = ssthresh (tcp_end_cwnd_reduction); the same
	// ACK then counts for congestion avoidance (Reno: +1 per cwnd acked).
	ca, cwnd, ss, _ := p.state()
	if ca != caOpen || ss != 10 || cwnd != 11 {
		t.Fatalf("after recovery: state %d cwnd %d ssthresh %d, want Open, 11 and 10", ca, cwnd, ss)
	}
	if got := p.counter("TcpExtTCPSackRecovery"); got != 1 {
		t.Fatalf("TCPSackRecovery %d", got)
	}
}

// TestSeveralLossesOneReduction: three segments of one window are lost.
// They are found lost at different ACKs, but all belong to the window in
// flight when recovery began (below high_seq): one recovery, one
// multiplicative decrease (CUBIC: ssthresh = 0.7·cwnd), every hole
// retransmitted once, and cwnd = ssthresh at the end.
func TestSeveralLossesOneReduction(t *testing.T) {
	p := newRPeer(t, true, 20, nil)
	cwnd0 := p.cwnd()
	p.c.Write(make([]byte, 20*p.mss))
	p.collect()
	p.h.after(peerRTT)
	lost := map[int]bool{3: true, 8: true, 14: true}
	// The receiver's ACKs as segments 1..20 arrive, holes and all.
	next, var1 := 1, [][2]int(nil)
	for k := 1; k <= 20; k++ {
		if lost[k] {
			continue
		}
		p.h.after(50 * time.Microsecond)
		if k == next {
			next++
		}
		var1 = sackBlocksAbove(next, k, lost)
		p.ack(next, var1...)
		p.checkScoreboard()
	}
	p.collect()
	_, _, ssthresh, _ := p.state()
	p.c.mu.Lock()
	prior := p.c.rec.priorCwnd
	p.c.mu.Unlock()
	if want := prior * 717 / 1024; ssthresh != want || prior < uint32(cwnd0) {
		t.Fatalf("ssthresh %d, want %d (0.7 of the cwnd %d at the first loss, once)", ssthresh, want, prior)
	}
	rexmt := map[int]int{}
	for _, r := range p.log {
		if r.rexmt {
			rexmt[r.k]++
		}
	}
	if len(rexmt) != 3 || rexmt[3] != 1 || rexmt[8] != 1 || rexmt[14] != 1 {
		t.Fatalf("retransmissions %v, want 3, 8 and 14 once each", rexmt)
	}
	// The retransmissions arrive: everything is acknowledged.
	p.h.after(peerRTT)
	p.ack(21)
	ca, cwnd, ss2, _ := p.state()
	if ca != caOpen || cwnd != ssthresh || ss2 != ssthresh {
		t.Fatalf("after recovery: state %d cwnd %d ssthresh %d, want Open and %d", ca, cwnd, ss2, ssthresh)
	}
	if got := p.counter("TcpExtTCPSackRecovery"); got != 1 {
		t.Fatalf("TCPSackRecovery %d, want one episode", got)
	}
}

// resent reports whether segment k was retransmitted among rs.
func resent(rs []sentRec, k int) bool {
	for _, r := range rs {
		if r.k == k && r.rexmt {
			return true
		}
	}
	return false
}

// sackBlocksAbove is what a receiver reports once segment k arrived:
// blocks of received segments above the cumulative point next, the one
// holding k first (RFC 2018 §4).
func sackBlocksAbove(next, k int, lost map[int]bool) [][2]int {
	var blocks [][2]int
	for s := next; s <= k; {
		if lost[s] || s < next {
			s++
			continue
		}
		e := s
		for e+1 <= k && !lost[e+1] {
			e++
		}
		blocks = append(blocks, [2]int{s, e})
		s = e + 1
	}
	// Most recent (the one with k) first, then the rest highest first.
	for i, j := 0, len(blocks)-1; i < j; i, j = i+1, j-1 {
		blocks[i], blocks[j] = blocks[j], blocks[i]
	}
	if len(blocks) > 3 {
		blocks = blocks[:3]
	}
	return blocks
}

// TestLostRetransmissionResent: segment 1's retransmission is lost too.
// Segments sent after the retransmission are SACKed more than a round
// trip later, so RACK knows the retransmission, sent before them, is lost
// (tcp_rack_detect_loss on a retransmitted segment; TCPLostRetransmit),
// and sends it again without waiting for the RTO.
func TestLostRetransmissionResent(t *testing.T) {
	p := newRPeer(t, true, 10, nil)
	p.c.Write(make([]byte, 30*p.mss))
	p.collect() // 1..10
	p.h.after(peerRTT)
	for k := 2; k <= 10; k++ {
		p.ack(1, [2]int{2, k})
	}
	first := p.collect()
	if !resent(first, 1) {
		t.Fatalf("first recovery transmissions %+v, want segment 1 resent", first)
	}
	// The retransmission is lost; the new segments sent with it arrive.
	p.h.after(peerRTT)
	high := 10
	for _, r := range first {
		if !r.rexmt {
			high = max(high, r.k)
		}
	}
	for k := 11; k <= high; k++ {
		p.ack(1, [2]int{2, k})
	}
	again := 0
	for _, r := range p.collect() {
		if r.k == 1 {
			again++
		}
	}
	if again != 1 || p.counter("TcpExtTCPLostRetransmit") != 1 {
		t.Fatalf("segment 1 resent %d times, TCPLostRetransmit %d; want 1 and 1", again, p.counter("TcpExtTCPLostRetransmit"))
	}
	if p.counter("TcpExtTCPTimeouts") != 0 {
		t.Fatal("an RTO fired")
	}
	p.checkScoreboard()
}

// TestSpuriousRTOUndoneByFRTO: the path stalls longer than the RTO, so the
// timer fires and segment 1 is retransmitted, but nothing was lost. Without
// timestamps Eifel cannot tell; F-RTO (RFC 5682 §3.1, tcp_frto=2) does: the
// first ACK after the timeout advances snd_una, so new data is sent instead
// of retransmitting more; the next ACK covers a segment that was never
// retransmitted, which only the original transmission can have delivered:
// the timeout was spurious and cwnd and ssthresh are restored.
func TestSpuriousRTOUndoneByFRTO(t *testing.T) {
	// No tail loss probe either: the RTO is what is being judged.
	p := newRPeer(t, false, 10, func(s *Sysctls) { s.EarlyRetrans.Store(0) })
	cwnd0 := p.cwnd()
	_, _, ss0, _ := p.state()
	p.c.Write(make([]byte, 30*p.mss))
	p.collect() // 1..10
	p.c.mu.Lock()
	rto := p.c.rtoBackoff()
	p.c.mu.Unlock()
	p.h.after(rto)
	if got := p.collect(); len(got) != 1 || got[0].k != 1 || !got[0].rexmt {
		t.Fatalf("RTO sent %+v, want segment 1 again", got)
	}
	ca, _, _, _ := p.state()
	if ca != caLoss {
		t.Fatalf("state %d after the RTO, want Loss", ca)
	}
	// The delayed ACKs of the original flight arrive.
	p.ack(2)
	fresh := p.collect()
	if len(fresh) == 0 {
		t.Fatal("F-RTO sent no new data after the first ACK")
	}
	for _, r := range fresh {
		if r.rexmt || r.k <= 10 {
			t.Fatalf("F-RTO step 2b sent %+v, want only new segments", fresh)
		}
	}
	p.ack(3)
	ca, cwnd, ss, _ := p.state()
	if p.counter("TcpExtTCPSpuriousRTOs") != 1 || p.counter("TcpExtTCPLossUndo") != 1 {
		t.Fatalf("TCPSpuriousRTOs %d TCPLossUndo %d, want 1 and 1", p.counter("TcpExtTCPSpuriousRTOs"), p.counter("TcpExtTCPLossUndo"))
	}
	if ca != caOpen || int(cwnd) < cwnd0 || ss != ss0 {
		t.Fatalf("after undo: state %d cwnd %d ssthresh %d, want Open, cwnd ≥ %d, ssthresh %d", ca, cwnd, ss, cwnd0, ss0)
	}
	if p.counter("TcpRetransSegs") != 1 {
		t.Fatalf("TcpRetransSegs %d, want only the RTO's retransmission", p.counter("TcpRetransSegs"))
	}
	p.checkScoreboard()
}

// TestRACKToleratesReordering: once the path has been seen to reorder,
// RACK allows a reordering window (min_rtt/4) before calling a segment
// lost, however many segments above it are SACKed (tcp_rack_reo_wnd with
// reord_seen). A segment that arrives within the window is not
// retransmitted and no recovery starts.
func TestRACKToleratesReordering(t *testing.T) {
	p := newRPeer(t, true, 20, nil)
	p.c.Write(make([]byte, 40*p.mss))
	p.collect() // 1..20
	p.h.after(peerRTT)
	// Segment 2 arrives after 3 (one SACKed segment: below dupthresh,
	// so RACK waits), then fills the hole: reordering, seen by the
	// cumulative ACK covering never-retransmitted data below a SACK.
	p.ack(2, [2]int{3, 3})
	p.ack(4)
	if p.counter("TcpExtTCPSACKReorder") == 0 {
		t.Fatal("the late segment 2 was not seen as reordering")
	}
	for k := 5; k <= 20; k++ {
		p.ack(k)
	}
	p.collect()
	retrans := p.counter("TcpRetransSegs")
	p.h.after(peerRTT)
	// Now segment 21 comes after 22..26: five SACKed, above dupthresh.
	for k := 22; k <= 26; k++ {
		p.ack(21, [2]int{22, k})
	}
	p.c.mu.Lock()
	reoAt := p.c.reoAt
	p.c.mu.Unlock()
	if reoAt.IsZero() {
		t.Fatal("no reordering timer for segment 21")
	}
	p.h.after(time.Millisecond) // within min_rtt/4
	p.ack(27)
	for _, r := range p.collect() {
		if r.rexmt {
			t.Fatalf("segment %d retransmitted although it was only reordered", r.k)
		}
	}
	ca, _, _, _ := p.state()
	if p.counter("TcpRetransSegs") != retrans || p.counter("TcpExtTCPSackRecovery") != 0 || ca != caOpen {
		t.Fatalf("RetransSegs %d→%d SackRecovery %d state %d: reordering taken for loss", retrans,
			p.counter("TcpRetransSegs"), p.counter("TcpExtTCPSackRecovery"), ca)
	}
	p.checkScoreboard()
}

// TestRACKReorderingWindowGrowsOnDSACK: a D-SACK shows a retransmission
// was needless (the original was only reordered); RACK widens its
// reordering window by a step of min_rtt/4 (tcp_rack_update_reo_wnd) and
// keeps it for 16 recoveries.
func TestRACKReorderingWindowGrowsOnDSACK(t *testing.T) {
	p := newRPeer(t, true, 10, nil)
	p.c.Write(make([]byte, 20*p.mss))
	p.collect()
	p.h.after(peerRTT)
	// Three SACKed above segment 1 and no reordering seen yet: lost at once.
	for k := 2; k <= 4; k++ {
		p.ack(1, [2]int{2, k})
	}
	if got := p.collect(); !resent(got, 1) {
		t.Fatalf("sent %+v, want segment 1 retransmitted", got)
	}
	// The original arrives, then the retransmission: the receiver reports
	// the duplicate with a D-SACK a round trip later.
	p.ack(5)
	p.h.after(peerRTT)
	p.ack(11, [2]int{1, 1})
	p.c.mu.Lock()
	steps, persist := p.c.rec.rack.reoWndSteps, p.c.rec.rack.reoWndPersist
	wnd := p.c.rackReoWnd()
	minRTT := p.c.rtt.minRTT
	p.c.mu.Unlock()
	if steps != 2 || persist == 0 {
		t.Fatalf("reo_wnd_steps %d persist %d after a D-SACK, want 2 and > 0", steps, persist)
	}
	if p.counter("TcpExtTCPDSACKRecv") != 1 {
		t.Fatalf("TCPDSACKRecv %d", p.counter("TcpExtTCPDSACKRecv"))
	}
	if want := min(minRTT/2, minRTT); wnd != want {
		t.Fatalf("reordering window %v, want %v (two steps of min_rtt/4)", wnd, want)
	}
}

// TestTailLossProbeRepairsTail: the last two segments of a flight are
// lost and nothing comes back to tell. Two RTTs after the last
// transmission (long before the RTO) the last segment is sent again as a
// probe (RFC 8985 §7.3); its ACK SACKs it, RACK sees segment 2 lost and
// recovery repairs it. The probe's ACK beyond the probe means the probe
// repaired a loss: one reduction (TCPLossProbeRecovery) without an RTO.
func TestTailLossProbeRepairsTail(t *testing.T) {
	p := newRPeer(t, true, 10, nil)
	p.c.Write(make([]byte, 3*p.mss))
	p.collect()
	p.h.after(peerRTT)
	p.ack(2) // segments 2 and 3 lost
	p.h.expectNone()
	p.h.after(2*peerRTT + 3*time.Millisecond)
	probe := p.collect()
	if len(probe) != 1 || probe[0].k != 3 || !probe[0].rexmt || p.counter("TcpExtTCPLossProbes") != 1 {
		t.Fatalf("probe %+v LossProbes %d, want segment 3 resent once", probe, p.counter("TcpExtTCPLossProbes"))
	}
	p.h.after(peerRTT)
	p.ack(2, [2]int{3, 3})
	p.h.after(peerRTT / 4 * 2) // the reordering window
	got := p.collect()
	if len(got) != 1 || got[0].k != 2 {
		t.Fatalf("after the probe's ACK sent %+v, want segment 2", got)
	}
	p.h.after(peerRTT)
	p.ack(4)
	if p.counter("TcpExtTCPTimeouts") != 0 {
		t.Fatal("an RTO fired")
	}
	ca, _, _, sb := p.state()
	if ca != caOpen || sb.packetsOut != 0 {
		t.Fatalf("state %d packets out %d after the repair", ca, sb.packetsOut)
	}
}

// TestTailLossProbeNeedless: the probe repeats a segment that had
// arrived; the peer reports the duplicate with a D-SACK of exactly the
// probe, so there was no loss and no reduction (tcp_process_tlp_ack).
func TestTailLossProbeNeedless(t *testing.T) {
	p := newRPeer(t, true, 10, nil)
	p.c.Write(make([]byte, 3*p.mss))
	p.collect()
	_, cwnd0, _, _ := p.state()
	p.h.after(3*peerRTT + 3*time.Millisecond) // the ACKs were lost, not the data
	if probe := p.collect(); len(probe) != 1 || probe[0].k != 3 {
		t.Fatalf("probe %+v", probe)
	}
	p.h.after(peerRTT)
	p.ack(4, [2]int{3, 3})
	p.c.mu.Lock()
	tlpOut := p.c.rec.tlpOut
	p.c.mu.Unlock()
	_, cwnd, _, _ := p.state()
	if tlpOut || cwnd < cwnd0 || p.counter("TcpExtTCPLossProbeRecovery") != 0 {
		t.Fatalf("probe still out %v, cwnd %d (was %d), LossProbeRecovery %d", tlpOut, cwnd, cwnd0, p.counter("TcpExtTCPLossProbeRecovery"))
	}
}

// TestDSACKUndoBeforeFullAck: recovery retransmits segment 1; before the
// window is acknowledged the peer reports, with a D-SACK, that it got
// segment 1 twice: every retransmission of the episode was needless, so
// the reduction is undone at once (tcp_try_undo_dsack).
func TestDSACKUndoBeforeFullAck(t *testing.T) {
	p := newRPeer(t, false, 10, nil) // without timestamps only the D-SACK can tell
	cwnd0 := p.cwnd()
	_, _, ss0, _ := p.state()
	p.c.Write(make([]byte, 10*p.mss))
	p.collect()
	p.h.after(peerRTT)
	for k := 2; k <= 4; k++ {
		p.ack(1, [2]int{2, k})
	}
	if got := p.collect(); !resent(got, 1) {
		t.Fatalf("no fast retransmit: %+v", got)
	}
	p.ack(6)               // the original of 1 was late: 1..5 arrived
	p.ack(6, [2]int{1, 1}) // then the duplicate
	if got := p.counter("TcpExtTCPDSACKUndo"); got != 1 {
		t.Fatalf("TCPDSACKUndo %d, want 1", got)
	}
	_, cwnd, ss, _ := p.state()
	if int(cwnd) < cwnd0 || ss != ss0 {
		t.Fatalf("after undo cwnd %d ssthresh %d, want ≥ %d and %d", cwnd, ss, cwnd0, ss0)
	}
}

// TestEifelUndoOnFullAck: the ACK that ends recovery echoes the TSval of
// the original transmission, older than the retransmission's, so the
// original was merely delayed (RFC 3522; tcp_try_undo_recovery).
func TestEifelUndoOnFullAck(t *testing.T) {
	p := newRPeer(t, true, 10, nil)
	cwnd0 := p.cwnd()
	p.c.Write(make([]byte, 10*p.mss))
	p.collect()
	orig := p.sent[1].tsval
	p.h.after(peerRTT)
	for k := 2; k <= 5; k++ {
		p.ack(1, [2]int{2, k})
	}
	p.collect()
	p.h.after(5 * time.Millisecond)
	p.ackEcho(orig, 11)
	if got := p.counter("TcpExtTCPFullUndo"); got != 1 {
		t.Fatalf("TCPFullUndo %d, want 1", got)
	}
	if got := p.cwnd(); got < cwnd0 {
		t.Fatalf("cwnd %d after undo, want ≥ %d", got, cwnd0)
	}
}

// TestDupackRuleWithoutRACK: with net.ipv4.tcp_recovery=0 RACK is off and
// loss is decided by counting, as before RACK (tcp_time_to_recover's
// dupthresh rule, tcp_update_scoreboard): one or two SACKed segments above
// a hole never start recovery, however long they wait (no reordering
// timer), and the third does.
func TestDupackRuleWithoutRACK(t *testing.T) {
	p := newRPeer(t, true, 10, func(s *Sysctls) { s.Recovery.Store(0) })
	p.c.Write(make([]byte, 10*p.mss))
	p.collect()
	p.h.after(peerRTT)
	p.ack(1, [2]int{2, 2})
	p.ack(1, [2]int{2, 3})
	for _, r := range p.collect() {
		if r.rexmt {
			t.Fatalf("segment %d retransmitted after two SACKed segments", r.k)
		}
	}
	p.c.mu.Lock()
	reoAt := p.c.reoAt
	p.c.mu.Unlock()
	if !reoAt.IsZero() {
		t.Fatal("a reordering timer without RACK")
	}
	p.ack(1, [2]int{2, 4})
	if got := p.collect(); !resent(got, 1) {
		t.Fatalf("third SACKed segment sent %+v, want segment 1 retransmitted", got)
	}
	if ca, _, _, _ := p.state(); ca != caRecovery || p.counter("TcpExtTCPSackRecovery") != 1 {
		t.Fatalf("state %d SackRecovery %d", ca, p.counter("TcpExtTCPSackRecovery"))
	}
	p.checkScoreboard()
}
