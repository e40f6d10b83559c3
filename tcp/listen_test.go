package tcp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tapstack/tapstack/wire"
)

func (h *harness) listen(backlog int) *Listener {
	h.t.Helper()
	l, err := h.s.Listen(netip.AddrPortFrom(netip.IPv4Unspecified(), 80), backlog)
	if err != nil {
		h.t.Fatal(err)
	}
	return l
}

func TestPassiveOpenOptions(t *testing.T) {
	h := newHarness(t, nil)
	l := h.listen(128)
	h.inject(seg{src: 5000, dst: 80, seq: 1000, flags: fS, opts: synOpts(777)})
	e := h.expect().SYNACK().Ack(1001).MSS(1460).WScale(7).SACKOK(true).TSEcr(777)
	if e.seg.Window() != 65535 {
		t.Fatalf("SYN-ACK window %d", e.seg.Window())
	}
	if syn, acc := l.QueueLens(); syn != 1 || acc != 0 {
		t.Fatalf("queues %d %d", syn, acc)
	}
	iss := e.seg.Seq()
	h.inject(seg{src: 5000, dst: 80, seq: 1001, ack: iss + 1, flags: fA, wnd: 502,
		opts: &wire.TCPOptions{WScale: -1, HasTS: true, TSVal: 778, TSEcr: e.opts.TSVal}, data: []byte("GET /")})
	h.expect().ACK().Ack(1006).TSEcr(778)
	c, err := l.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	n, _ := c.Read(buf)
	if string(buf[:n]) != "GET /" {
		t.Fatalf("read %q", buf[:n])
	}
	if c.snd.wnd != 502<<7 || c.snd.mss != 1460-12 || !c.sackOn || !c.tsOn {
		t.Fatalf("negotiated sndWnd %d mss %d sack %v ts %v", c.snd.wnd, c.snd.mss, c.sackOn, c.tsOn)
	}
	if h.s.Counter("TcpPassiveOpens") != 1 || h.s.Counter("TcpCurrEstab") != 1 {
		t.Fatal("counters")
	}
}

func TestSynAckRetransmitTimingAndExpiry(t *testing.T) {
	h := newHarness(t, nil)
	l := h.listen(128)
	h.inject(seg{src: 5000, dst: 80, seq: 1000, flags: fS, opts: noOpts()})
	h.expect().SYNACK()
	start := h.clk.Now()
	var at []time.Duration
	for i := 0; i < 140; i++ {
		h.after(500 * time.Millisecond)
		for h.pending() > 0 {
			h.expect().SYNACK().Ack(1001)
			at = append(at, h.clk.Now().Sub(start))
		}
	}
	want := []time.Duration{1 * time.Second, 3 * time.Second, 7 * time.Second, 15 * time.Second, 31 * time.Second}
	if len(at) != len(want) {
		t.Fatalf("SYN-ACK retransmits at %v, want %v", at, want)
	}
	for i := range want {
		if at[i] != want[i] {
			t.Fatalf("SYN-ACK retransmits at %v, want %v", at, want)
		}
	}
	if syn, _ := l.QueueLens(); syn != 0 {
		t.Fatalf("request not expired: synq %d", syn)
	}
	if h.s.Counter("TcpRetransSegs") != 5 {
		t.Fatalf("RetransSegs %d", h.s.Counter("TcpRetransSegs"))
	}
}

func TestAcceptQueueOverflow(t *testing.T) {
	h := newHarness(t, nil)
	l := h.listen(4)
	isn := map[uint16]uint32{}
	sendSyn := func(p uint16) {
		h.inject(seg{src: p, dst: 80, seq: 1000, flags: fS, opts: noOpts()})
		isn[p] = h.expect().SYNACK().seg.Seq()
	}
	ack := func(p uint16) { h.inject(seg{src: p, dst: 80, seq: 1001, ack: isn[p] + 1, flags: fA}) }
	for p := uint16(1); p <= 4; p++ {
		sendSyn(p)
		ack(p)
	}
	// The 5th and 6th SYNs arrive while 4 wait in the accept queue (not full:
	// full means more than backlog), then both handshakes complete.
	sendSyn(5)
	sendSyn(6)
	ack(5)
	ack(6)
	h.expectNone() // the 6th ACK is dropped silently
	syn, acc := l.QueueLens()
	if acc != 5 || syn != 1 {
		t.Fatalf("queues syn=%d accept=%d, want 1 and 5 (backlog+1 fit)", syn, acc)
	}
	if h.s.Counter("TcpExtListenOverflows") != 1 || h.s.Counter("TcpExtListenDrops") != 1 {
		t.Fatalf("ListenOverflows %d ListenDrops %d", h.s.Counter("TcpExtListenOverflows"), h.s.Counter("TcpExtListenDrops"))
	}
	// The request stays and its SYN-ACK is retransmitted.
	h.after(time.Second)
	h.expect().SYNACK().Seq(isn[6])
	// A new SYN while the accept queue is full is dropped too.
	h.inject(seg{src: 7, dst: 80, seq: 1000, flags: fS, opts: noOpts()})
	h.expectNone()
	if h.s.Counter("TcpExtListenOverflows") != 2 {
		t.Fatal("SYN to a full accept queue not counted")
	}
	// Accepting one lets the retransmitted ACK complete the 6th.
	if _, err := l.AcceptTCP(); err != nil {
		t.Fatal(err)
	}
	h.inject(seg{src: 6, dst: 80, seq: 1001, ack: isn[6] + 1, flags: fA})
	if syn, acc := l.QueueLens(); syn != 0 || acc != 5 {
		t.Fatalf("after accept: syn=%d accept=%d", syn, acc)
	}
	rows := h.s.Sockets()
	if rows[0].State != "LISTEN" || rows[0].RecvQ != 5 || rows[0].SendQ != 4 {
		t.Fatalf("ss row %+v", rows[0])
	}
}

func TestAbortOnOverflowSendsRST(t *testing.T) {
	h := newHarness(t, func(s *Sysctls) { s.AbortOnOverflow.Store(1); s.Syncookies.Store(0) })
	l := h.listen(2)
	isn := map[uint16]uint32{}
	sendSyn := func(p uint16) {
		h.inject(seg{src: p, dst: 80, seq: 1000, flags: fS, opts: noOpts()})
		isn[p] = h.expect().SYNACK().seg.Seq()
	}
	ack := func(p uint16) { h.inject(seg{src: p, dst: 80, seq: 1001, ack: isn[p] + 1, flags: fA}) }
	sendSyn(1)
	ack(1)
	sendSyn(2)
	ack(2)
	sendSyn(3)
	sendSyn(4)
	ack(3) // backlog+1 = 3 fit
	h.expectNone()
	ack(4)
	h.expect().RST().Seq(isn[4] + 1)
	if syn, acc := l.QueueLens(); acc != 3 || syn != 0 {
		t.Fatalf("accept queue %d synq %d", acc, syn)
	}
	if h.s.Counter("TcpExtListenOverflows") != 1 {
		t.Fatal("overflow not counted")
	}
}

func TestSomaxconnClamp(t *testing.T) {
	h := newHarness(t, func(s *Sysctls) { s.Somaxconn.Store(3) })
	l := h.listen(1000)
	if l.backlog != 3 {
		t.Fatalf("backlog %d, want somaxconn 3", l.backlog)
	}
	l.SetBacklog(-1)
	if l.backlog != 3 {
		t.Fatalf("negative backlog → %d", l.backlog)
	}
	l.SetBacklog(2)
	if l.backlog != 2 || h.s.Sockets()[0].SendQ != 2 {
		t.Fatal("SetBacklog")
	}
}

func TestSyncookiesAlways(t *testing.T) {
	h := newHarness(t, func(s *Sysctls) { s.Syncookies.Store(2) })
	l := h.listen(16)
	for p := uint16(1); p <= 4; p++ {
		h.inject(seg{src: p, dst: 80, seq: 5000, flags: fS, opts: synOpts(100)})
		e := h.expect().SYNACK().Ack(5001).WScale(7).SACKOK(true)
		if syn, _ := l.QueueLens(); syn != 0 {
			t.Fatal("cookie SYN created a request sock")
		}
		h.inject(seg{src: p, dst: 80, seq: 5001, ack: e.seg.Seq() + 1, flags: fA, wnd: 100,
			opts: &wire.TCPOptions{WScale: -1, HasTS: true, TSVal: 101, TSEcr: e.opts.TSVal}})
	}
	sent, recv := h.s.Counter("TcpExtSyncookiesSent"), h.s.Counter("TcpExtSyncookiesRecv")
	if sent != 4 || recv != 4 || h.s.Counter("TcpExtSyncookiesFailed") != 0 {
		t.Fatalf("SyncookiesSent %d Recv %d", sent, recv)
	}
	if _, acc := l.QueueLens(); acc != 4 {
		t.Fatalf("accept queue %d", acc)
	}
	c, _ := l.AcceptTCP()
	if !c.sackOn || !c.tsOn || c.snd.wscale != 7 || c.snd.wnd != 100<<7 || c.snd.mss != 1460-12 {
		t.Fatalf("options not restored from the cookie timestamp: sack %v ts %v ws %d mss %d", c.sackOn, c.tsOn, c.snd.wscale, c.snd.mss)
	}
	// A forged ACK fails the cookie check and gets a RST.
	h.inject(seg{src: 99, dst: 80, seq: 5001, ack: 12345, flags: fA})
	h.expect().RST().Seq(12345)
	if h.s.Counter("TcpExtSyncookiesFailed") != 1 {
		t.Fatal("SyncookiesFailed")
	}
}

func TestSynQueueFull(t *testing.T) {
	for _, cookies := range []int64{0, 1} {
		h := newHarness(t, func(s *Sysctls) { s.Syncookies.Store(cookies) })
		l := h.listen(4)
		for p := uint16(1); p <= 6; p++ {
			h.inject(seg{src: p, dst: 80, seq: 1000, flags: fS, opts: noOpts()})
		}
		syn, _ := l.QueueLens()
		if syn != 4 {
			t.Fatalf("cookies=%d: synq %d", cookies, syn)
		}
		if cookies == 1 {
			if h.s.Counter("TcpExtTCPReqQFullDoCookies") != 2 || h.s.Counter("TcpExtSyncookiesSent") != 2 || h.pending() != 6 {
				t.Fatalf("cookies=1: DoCookies %d sent %d", h.s.Counter("TcpExtTCPReqQFullDoCookies"), h.s.Counter("TcpExtSyncookiesSent"))
			}
		} else if h.s.Counter("TcpExtTCPReqQFullDrop") != 2 || h.s.Counter("TcpExtListenDrops") != 2 || h.pending() != 4 {
			t.Fatalf("cookies=0: ReqQFullDrop %d", h.s.Counter("TcpExtTCPReqQFullDrop"))
		}
	}
}

func TestSynBacklogReservedForProvenPeers(t *testing.T) {
	h := newHarness(t, func(s *Sysctls) { s.Syncookies.Store(0); s.MaxSynBacklog.Store(8) })
	l := h.listen(100)
	for p := uint16(1); p <= 8; p++ {
		h.inject(seg{src: p, dst: 80, seq: 1000, flags: fS, opts: noOpts()})
	}
	// max_syn_backlog - qlen < max_syn_backlog>>2 refuses the 8th.
	if syn, _ := l.QueueLens(); syn != 7 {
		t.Fatalf("synq %d, want 7", syn)
	}
	if h.s.Counter("TcpExtListenDrops") != 1 {
		t.Fatal("drops not counted")
	}
	h.s.markProven(hPeer)
	h.inject(seg{src: 9, dst: 80, seq: 1000, flags: fS, opts: noOpts()})
	if syn, _ := l.QueueLens(); syn != 8 {
		t.Fatalf("proven peer refused: synq %d", syn)
	}
}

func TestDeferAccept(t *testing.T) {
	h := newHarness(t, nil)
	l := h.listen(16)
	l.SetDeferAccept(5 * time.Second)
	h.inject(seg{src: 1, dst: 80, seq: 1000, flags: fS, opts: noOpts()})
	iss := h.expect().SYNACK().seg.Seq()
	h.inject(seg{src: 1, dst: 80, seq: 1001, ack: iss + 1, flags: fA})
	if syn, acc := l.QueueLens(); syn != 1 || acc != 0 {
		t.Fatalf("bare ACK completed a deferred handshake: %d %d", syn, acc)
	}
	if h.s.Counter("TcpExtTCPDeferAcceptDrop") != 1 {
		t.Fatal("TCPDeferAcceptDrop")
	}
	h.inject(seg{src: 1, dst: 80, seq: 1001, ack: iss + 1, flags: fA | fP, data: []byte("hi")})
	if syn, acc := l.QueueLens(); syn != 0 || acc != 1 {
		t.Fatalf("data did not complete: %d %d", syn, acc)
	}
	c, _ := l.AcceptTCP()
	buf := make([]byte, 4)
	if n, _ := c.Read(buf); string(buf[:n]) != "hi" {
		t.Fatalf("read %q", buf[:n])
	}
}

func TestRetransmittedSynGetsSynAck(t *testing.T) {
	h := newHarness(t, nil)
	h.listen(16)
	h.inject(seg{src: 1, dst: 80, seq: 1000, flags: fS, opts: noOpts()})
	iss := h.expect().SYNACK().seg.Seq()
	h.inject(seg{src: 1, dst: 80, seq: 1000, flags: fS, opts: noOpts()})
	h.expect().SYNACK().Seq(iss).Ack(1001)
	// A wrong ACK number gets a RST from the listener.
	h.inject(seg{src: 1, dst: 80, seq: 1001, ack: iss + 7, flags: fA})
	h.expect().RST().Seq(iss + 7)
}

func TestNoListenerRST(t *testing.T) {
	h := newHarness(t, nil)
	h.inject(seg{src: 1, dst: 81, seq: 1000, flags: fS, opts: noOpts()})
	h.expect().Flags(fR | fA).Seq(0).Ack(1001)
	h.inject(seg{src: 1, dst: 81, seq: 1000, ack: 555, flags: fA, data: []byte("x")})
	h.expect().Flags(fR).Seq(555)
	h.inject(seg{src: 1, dst: 81, seq: 1000, flags: fR})
	h.expectNone()
	if h.s.Counter("TcpOutRsts") != 2 {
		t.Fatal("OutRsts")
	}
}
