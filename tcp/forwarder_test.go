package tcp

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/testenv/testwait"
	"github.com/tapstack/tapstack/wire"
)

var fwdDst = netip.MustParseAddr("10.99.7.9")

// forwarder installs a forwarder whose handler hands each request to the
// returned channel.
func (h *harness) forwarder(maxInFlight int) (*Forwarder, chan *ForwarderRequest) {
	h.t.Helper()
	reqs := make(chan *ForwarderRequest, 64)
	f, err := h.s.NewForwarder(maxInFlight, func(r *ForwarderRequest) { reqs <- r })
	if err != nil {
		h.t.Fatal(err)
	}
	return f, reqs
}

func fwdSYN(port uint16, dport uint16) seg {
	return seg{src: port, dst: dport, to: fwdDst, seq: 1000, flags: fS, opts: &wire.TCPOptions{MSS: 1460, HasMSS: true, WScale: -1}}
}

// TestForwarderAcceptAnyDestination: a SYN to an address and port nobody
// listens on reaches the handler with its original 4-tuple before the peer
// sees anything; Accept answers from the dialled address, the handshake
// completes on the forwarder's SYN queue, and the connection carries data
// from that address. ss shows the forwarder and its request meanwhile.
func TestForwarderAcceptAnyDestination(t *testing.T) {
	h := newHarness(t, nil)
	f, reqs := h.forwarder(16)
	h.inject(fwdSYN(5000, 443))
	r := testwait.Recv(t, reqs, "the handler's call")
	if local, remote := r.ID(); local != netip.AddrPortFrom(fwdDst, 443) || remote != netip.AddrPortFrom(hPeer, 5000) {
		t.Fatalf("ID %v %v, want the SYN's destination and source", local, remote)
	}
	h.expectNone() // no SYN-ACK before the handler decides
	if f.InFlight() != 1 {
		t.Fatalf("InFlight %d, want 1", f.InFlight())
	}
	var sawListen, sawReq bool
	for _, si := range h.s.Sockets() {
		sawListen = sawListen || si.State == "LISTEN" && si.Local == fwdKey && si.SynQueue == 1 && si.Backlog == 16
		sawReq = sawReq || si.State == "SYN-RECV" && si.Local == netip.AddrPortFrom(fwdDst, 443)
	}
	if !sawListen || !sawReq {
		t.Fatalf("ss: forwarder listed %v, its request %v; rows %+v", sawListen, sawReq, h.s.Sockets())
	}
	// A retransmitted SYN waits with the first: still nothing sent.
	h.inject(fwdSYN(5000, 443))
	h.expectNone()

	accepted := make(chan *Conn, 1)
	go func() {
		c, err := r.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	testwait.Until(t, "the SYN-ACK", func() bool { return h.pending() > 0 })
	e := h.expect().SYNACK().Ack(1001).From(fwdDst)
	if e.seg.SrcPort() != 443 {
		t.Fatalf("SYN-ACK from port %d, want 443", e.seg.SrcPort())
	}
	h.inject(seg{src: 5000, dst: 443, to: fwdDst, seq: 1001, ack: e.seg.Seq() + 1, flags: fA})
	c := testwait.Recv(t, accepted, "Accept to return")
	if c.LocalAddrPort() != netip.AddrPortFrom(fwdDst, 443) || c.RemoteAddrPort().Port() != 5000 {
		t.Fatalf("accepted %v → %v", c.RemoteAddrPort(), c.LocalAddrPort())
	}
	if f.InFlight() != 0 || h.s.Counter("TcpPassiveOpens") != 1 {
		t.Fatalf("InFlight %d, PassiveOpens %d; want 0 and 1", f.InFlight(), h.s.Counter("TcpPassiveOpens"))
	}
	if _, err := c.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	h.expect().Payload("hi").From(fwdDst)
	if _, err := r.Accept(); !errors.Is(err, errDecided) {
		t.Fatalf("a second Accept: %v, want errDecided", err)
	}
}

// TestForwarderResetAndDrop: Reset answers the SYN with RST|ACK (the
// peer's connect is refused) and counts it; Drop sends nothing, and the
// peer's retransmitted SYN is a new request. Both free the SYN queue.
func TestForwarderResetAndDrop(t *testing.T) {
	h := newHarness(t, nil)
	f, reqs := h.forwarder(4)
	h.inject(fwdSYN(5001, 80))
	r := testwait.Recv(t, reqs, "the handler's call")
	r.Reset()
	h.expect().RST().Flags(fR | fA).Ack(1001).Seq(0).From(fwdDst)
	if h.s.Counter("TcpOutRsts") != 1 || f.InFlight() != 0 {
		t.Fatalf("OutRsts %d, InFlight %d; want 1 and 0", h.s.Counter("TcpOutRsts"), f.InFlight())
	}
	if _, err := r.Accept(); err == nil {
		t.Fatal("Accept after Reset succeeded")
	}

	h.inject(fwdSYN(5002, 80))
	r = testwait.Recv(t, reqs, "the handler's call")
	r.Drop()
	h.expectNone()
	if f.InFlight() != 0 {
		t.Fatalf("InFlight %d after Drop, want 0", f.InFlight())
	}
	h.inject(fwdSYN(5002, 80)) // the peer's retransmission
	if r2 := testwait.Recv(t, reqs, "the retransmission's call"); r2 == r {
		t.Fatal("the retransmitted SYN reused the dropped request")
	}
}

// TestForwarderMaxInFlight: maxInFlight is the SYN queue's bound. Without
// syncookies the SYN past it is dropped and counted as a listener's
// (TCPReqQFullDrop, ListenDrops) and the handler never hears of it; with
// them it is answered by a cookie, whose ACK brings the handler an
// established connection that Accept returns at once.
func TestForwarderMaxInFlight(t *testing.T) {
	for _, cookies := range []int64{0, 1} {
		h := newHarness(t, func(s *Sysctls) { s.Syncookies.Store(cookies) })
		f, reqs := h.forwarder(2)
		for p := uint16(6000); p < 6002; p++ {
			h.inject(fwdSYN(p, 22))
			testwait.Recv(t, reqs, "the handler's call")
		}
		h.inject(fwdSYN(6002, 22))
		if f.InFlight() != 2 {
			t.Fatalf("cookies=%d: InFlight %d, want the bound 2", cookies, f.InFlight())
		}
		if cookies == 0 {
			h.expectNone()
			if h.s.Counter("TcpExtTCPReqQFullDrop") != 1 || h.s.Counter("TcpExtListenDrops") != 1 {
				t.Fatalf("ReqQFullDrop %d ListenDrops %d, want 1 and 1",
					h.s.Counter("TcpExtTCPReqQFullDrop"), h.s.Counter("TcpExtListenDrops"))
			}
			continue
		}
		e := h.expect().SYNACK().From(fwdDst)
		if h.s.Counter("TcpExtSyncookiesSent") != 1 {
			t.Fatalf("SyncookiesSent %d, want 1", h.s.Counter("TcpExtSyncookiesSent"))
		}
		h.inject(seg{src: 6002, dst: 22, to: fwdDst, seq: 1001, ack: e.seg.Seq() + 1, flags: fA})
		r := testwait.Recv(t, reqs, "the cookie connection's call")
		c, err := r.Accept()
		if err != nil || c.LocalAddrPort() != netip.AddrPortFrom(fwdDst, 22) || c.State() != StateEstablished {
			t.Fatalf("cookie child: %v %v", c, err)
		}
		h.expectNone() // Accept sends nothing: the handshake is over
	}
}

// TestForwarderUndecidedExpires: a request the handler never answers
// leaves the SYN queue when the SYN-ACK retransmissions would have ended
// (tcp_synack_retries), but its handler still counts against maxInFlight
// until it decides — a late Accept says ETIMEDOUT — so a slow handler
// cannot make the forwarder run more handlers than maxInFlight.
func TestForwarderUndecidedExpires(t *testing.T) {
	h := newHarness(t, func(s *Sysctls) { s.Syncookies.Store(0) })
	f, reqs := h.forwarder(1)
	h.inject(fwdSYN(7000, 25))
	r := testwait.Recv(t, reqs, "the handler's call")
	total := time.Duration(0)
	for i := range 5 { // tcp_synack_retries 5: 1+2+4+8+16 s
		total += initRTO << i
	}
	h.after(total)
	if f.InFlight() != 1 {
		t.Fatalf("InFlight %d after %v, want the request still held", f.InFlight(), total)
	}
	h.after(maxRTO)
	h.expectNone()
	if syn, _ := f.l.QueueLens(); syn != 0 || f.InFlight() != 1 {
		t.Fatalf("after the retransmission time: SYN queue %d, InFlight %d; want 0 and 1 (the handler has not answered)", syn, f.InFlight())
	}
	h.inject(fwdSYN(7001, 25)) // the slot is still the undecided handler's
	if h.s.Counter("TcpExtTCPReqQFullDrop") != 1 || len(reqs) != 0 {
		t.Fatalf("a SYN while the only handler is undecided: ReqQFullDrop %d, handler calls %d; want it dropped",
			h.s.Counter("TcpExtTCPReqQFullDrop"), len(reqs))
	}
	if _, err := r.Accept(); !errors.Is(err, syscall.ETIMEDOUT) {
		t.Fatalf("late Accept: %v, want ETIMEDOUT", err)
	}
	if f.InFlight() != 0 {
		t.Fatalf("InFlight %d after the handler answered, want 0", f.InFlight())
	}
	h.inject(fwdSYN(7002, 25))
	testwait.Recv(t, reqs, "the next request's call")
}

// TestForwarderListenerFirst: a listener bound to the port takes its
// connections; the forwarder takes the rest; a closed forwarder fails its
// pending Accept with net.ErrClosed, and what it held is reset again.
func TestForwarderListenerFirst(t *testing.T) {
	h := newHarness(t, nil)
	l := h.listen(8)
	f, reqs := h.forwarder(4)
	h.inject(seg{src: 8000, dst: l.AddrPort().Port(), seq: 1000, flags: fS, opts: &wire.TCPOptions{MSS: 1460, HasMSS: true, WScale: -1}})
	h.expect().SYNACK().From(hLocal)
	if len(reqs) != 0 {
		t.Fatal("the forwarder's handler saw a SYN a listener holds")
	}
	h.inject(fwdSYN(8001, 9999))
	r := testwait.Recv(t, reqs, "the handler's call")
	acc := make(chan error, 1)
	f.Close()
	go func() { _, err := r.Accept(); acc <- err }()
	if err := testwait.Recv(t, acc, "Accept to fail"); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept on a closed forwarder: %v, want net.ErrClosed", err)
	}
	h.inject(fwdSYN(8002, 9999))
	h.expect().RST()
	if _, err := h.s.NewForwarder(4, func(*ForwarderRequest) {}); err != nil {
		t.Fatalf("a new forwarder after Close: %v", err)
	}
	if _, err := h.s.NewForwarder(4, func(*ForwarderRequest) {}); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("a second forwarder: %v, want EADDRINUSE", err)
	}
}
