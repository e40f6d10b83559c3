package tcp

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/testenv/testwait"
	"github.com/tapstack/tapstack/wire"
)

// dial starts an active open to the peer and returns the SYN.
func (h *harness) dial() (*Conn, *expectation) {
	h.t.Helper()
	c, err := h.s.connect(netip.AddrPort{}, netip.AddrPortFrom(hPeer, 80))
	if err != nil {
		h.t.Fatal(err)
	}
	return c, h.expect().SYN()
}

// activeEstab completes an active open with plain options (MSS 1460 only
// unless opts is given) and returns the connection, our ISS and the peer's.
func (h *harness) activeEstab(opts *wire.TCPOptions) (c *Conn, iss, irs uint32, lport uint16) {
	h.t.Helper()
	c, syn := h.dial()
	iss, irs = syn.seg.Seq(), 5000
	lport = syn.seg.SrcPort()
	if opts == nil {
		opts = &wire.TCPOptions{MSS: 1460, HasMSS: true, WScale: -1}
	}
	h.inject(seg{src: 80, dst: lport, seq: irs, ack: iss + 1, flags: fS | fA, opts: opts})
	h.expect().ACK().Seq(iss + 1).Ack(irs + 1)
	if c.State() != StateEstablished {
		h.t.Fatalf("state %v", c.State())
	}
	return c, iss + 1, irs + 1, lport
}

func TestActiveOpenSynOptions(t *testing.T) {
	h := newHarness(t, nil)
	_, syn := h.dial()
	syn.MSS(1460).WScale(7).SACKOK(true).TSEcr(0).Window(65535)
	if h.s.Counter("TcpActiveOpens") != 1 {
		t.Fatal("ActiveOpens")
	}
}

func TestSynRetriesTimeout(t *testing.T) {
	h := newHarness(t, nil)
	c, _ := h.dial()
	start := h.clk.Now()
	var at []time.Duration
	for i := 0; i < 300 && c.State() == StateSynSent; i++ {
		h.after(500 * time.Millisecond)
		for h.pending() > 0 {
			h.expect().SYN()
			at = append(at, h.clk.Now().Sub(start))
		}
	}
	want := []time.Duration{1, 3, 7, 15, 31, 63}
	if len(at) != len(want) {
		t.Fatalf("SYN retransmits at %v", at)
	}
	for i := range want {
		if at[i] != want[i]*time.Second {
			t.Fatalf("SYN retransmits at %v", at)
		}
	}
	if c.State() != StateClose || h.clk.Now().Sub(start) != 127*time.Second {
		t.Fatalf("state %v at %v, want CLOSE at 127s", c.State(), h.clk.Now().Sub(start))
	}
	if !errors.Is(c.err, syscall.ETIMEDOUT) || h.s.Counter("TcpAttemptFails") != 1 {
		t.Fatalf("err %v", c.err)
	}
}

func TestDialRefused(t *testing.T) {
	h := newHarness(t, nil)
	go func() {
		for h.pending() == 0 { // wait for the SYN (polling: testwait needs the test's goroutine)
			time.Sleep(time.Millisecond)
		}
		syn := h.expect()
		h.inject(seg{src: 80, dst: syn.seg.SrcPort(), seq: 0, ack: syn.seg.Seq() + 1, flags: fR | fA})
	}()
	_, err := h.s.Dial(context.Background(), netip.AddrPort{}, netip.AddrPortFrom(hPeer, 80))
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "dial" || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("err = %v", err)
	}
}

func TestSynSentRejectsBadAck(t *testing.T) {
	h := newHarness(t, nil)
	c, syn := h.dial()
	lport := syn.seg.SrcPort()
	h.inject(seg{src: 80, dst: lport, seq: 9, ack: syn.seg.Seq() + 100, flags: fS | fA, opts: noOpts()})
	h.expect().Flags(fR).Seq(syn.seg.Seq() + 100)
	// A RST without an acceptable ACK is ignored.
	h.inject(seg{src: 80, dst: lport, seq: 9, flags: fR})
	if c.State() != StateSynSent {
		t.Fatalf("state %v", c.State())
	}
}

func TestSimultaneousOpen(t *testing.T) {
	h := newHarness(t, nil)
	c, syn := h.dial()
	iss := syn.seg.Seq()
	lport := syn.seg.SrcPort()
	h.inject(seg{src: 80, dst: lport, seq: 7000, flags: fS, opts: noOpts()})
	h.expect().SYNACK().Seq(iss).Ack(7001)
	if c.State() != StateSynRecv {
		t.Fatalf("state %v", c.State())
	}
	h.inject(seg{src: 80, dst: lport, seq: 7001, ack: iss + 1, flags: fA})
	if c.State() != StateEstablished {
		t.Fatalf("state %v", c.State())
	}
}

func TestDataAndDelayedAck(t *testing.T) {
	h := newHarness(t, nil)
	c, iss, irs, lport := h.activeEstab(nil)
	c.rcv.quickAcks = 0
	h.inject(seg{src: 80, dst: lport, seq: irs, ack: iss, flags: fA | fP, data: []byte("abc")})
	h.expectNone()
	h.after(39 * time.Millisecond)
	h.expectNone()
	h.after(time.Millisecond)
	h.expect().ACK().Ack(irs + 3)
	if h.s.Counter("TcpExtDelayedACKs") != 1 {
		t.Fatal("DelayedACKs")
	}
	// Two full segments are ACKed at once.
	full := make([]byte, 1460)
	h.inject(seg{src: 80, dst: lport, seq: irs + 3, ack: iss, flags: fA, data: full})
	h.inject(seg{src: 80, dst: lport, seq: irs + 3 + 1460, ack: iss, flags: fA, data: full})
	h.expect().ACK().Ack(irs + 3 + 2920)
}

func TestRetries2Timeout(t *testing.T) {
	h := newHarness(t, func(s *Sysctls) { s.Retries2.Store(3) })
	c, _, _, _ := h.activeEstab(nil)
	c.Write([]byte("x"))
	for i := 0; i < 100 && c.State() == StateEstablished; i++ {
		h.after(time.Second)
	}
	h.drain()
	if c.State() != StateClose || !errors.Is(c.err, syscall.ETIMEDOUT) {
		t.Fatalf("state %v err %v", c.State(), c.err)
	}
	_, err := c.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ETIMEDOUT) {
		t.Fatalf("read err %v", err)
	}
	if h.s.Counter("TcpExtTCPAbortOnTimeout") != 1 || h.s.Counter("TcpEstabResets") != 1 {
		t.Fatal("counters")
	}
}

func TestZeroWindowProbe(t *testing.T) {
	h := newHarness(t, nil)
	c, iss, irs, lport := h.activeEstab(nil)
	c.Write([]byte("12345"))
	h.expect().Payload("12345")
	h.inject(seg{src: 80, dst: lport, seq: irs, ack: iss + 5, flags: fA, zwnd: true})
	c.Write([]byte("more"))
	h.expectNone()
	if c.persistAt.IsZero() {
		t.Fatal("persist timer not armed")
	}
	for i := 0; i < 3; i++ {
		h.after(time.Duration(c.persistAt - c.s.stampNow()))
		h.expect().ACK().Seq(iss + 4).Len(0) // snd_una - 1
		h.inject(seg{src: 80, dst: lport, seq: irs, ack: iss + 5, flags: fA, zwnd: true})
	}
	if h.s.Counter("TcpExtTCPWinProbe") != 3 || c.State() != StateEstablished {
		t.Fatal("probes")
	}
	h.inject(seg{src: 80, dst: lport, seq: irs, ack: iss + 5, flags: fA, wnd: 1000})
	h.expect().Seq(iss + 5).Payload("more")
}

func TestReceiverZeroWindow(t *testing.T) {
	h := newHarness(t, func(s *Sysctls) { s.RmemDefault.Store(4096) })
	c, iss, irs, lport := h.activeEstab(nil)
	c.rcv.quickAcks = 100
	data := make([]byte, 1000)
	for i := 0; i < 5; i++ {
		h.inject(seg{src: 80, dst: lport, seq: irs + uint32(i*1000), ack: iss, flags: fA, data: data})
	}
	h.drain()
	// 4096 bytes fit (the 5th segment is trimmed); the window is closed.
	h.inject(seg{src: 80, dst: lport, seq: irs + 4096, ack: iss, flags: fA, data: data})
	h.expect().ACK().Ack(irs + 4096).Window(0)
	if c.rcv.buf.n != 4096 || h.s.Counter("TcpExtTCPZeroWindowDrop") != 1 {
		t.Fatalf("buffered %d", c.rcv.buf.n)
	}
	buf := make([]byte, 4096)
	c.Read(buf)
	h.expect().ACK().Ack(irs + 4096).Window(4096)
}

func TestChallengeAcks(t *testing.T) {
	// Only the global limit here; TestOutOfWindowRateLimit covers the per-socket one.
	h := newHarness(t, func(s *Sysctls) { s.InvalidRatelimit.Store(0) })
	c, iss, irs, lport := h.activeEstab(nil)
	// RST in window but not exact: challenge ACK (RFC 5961 §3.2).
	h.inject(seg{src: 80, dst: lport, seq: irs + 100, flags: fR})
	h.expect().ACK().Seq(iss).Ack(irs)
	// SYN on an established connection: challenge ACK (§4.2).
	h.inject(seg{src: 80, dst: lport, seq: irs + 5, flags: fS, opts: noOpts()})
	h.expect().ACK().Ack(irs)
	// Data whose ACK is far below snd_una - max window: challenge ACK, data dropped (§5.2).
	c.snd.maxWnd = 100
	h.inject(seg{src: 80, dst: lport, seq: irs, ack: iss - 1000, flags: fA, data: []byte("x")})
	h.expect().ACK().Ack(irs)
	if c.rcv.buf.n != 0 {
		t.Fatal("data accepted")
	}
	if h.s.Counter("TcpExtTCPChallengeACK") != 3 || h.s.Counter("TcpExtTCPSYNChallenge") != 1 {
		t.Fatalf("ChallengeACK %d SYNChallenge %d", h.s.Counter("TcpExtTCPChallengeACK"), h.s.Counter("TcpExtTCPSYNChallenge"))
	}
	// Rate limit.
	h.s.sys.ChallengeAckLimit.Store(1)
	h.after(2 * time.Second)
	h.drain()
	for i := 0; i < 5; i++ {
		h.inject(seg{src: 80, dst: lport, seq: irs + 100, flags: fR})
	}
	h.expect().ACK()
	h.expectNone()
	// Exact RST resets.
	h.inject(seg{src: 80, dst: lport, seq: irs, flags: fR})
	if c.State() != StateClose {
		t.Fatal("exact RST ignored")
	}
	_, err := c.Write([]byte("x"))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("write err %v", err)
	}
}

func TestPAWS(t *testing.T) {
	h := newHarness(t, nil)
	c, iss, irs, lport := h.activeEstab(synOpts(1000))
	_ = c
	ts := func(v uint32) *wire.TCPOptions { return &wire.TCPOptions{WScale: -1, HasTS: true, TSVal: v} }
	h.inject(seg{src: 80, dst: lport, seq: irs, ack: iss, flags: fA, data: []byte("a"), opts: ts(2000)})
	h.drain()
	h.inject(seg{src: 80, dst: lport, seq: irs + 1, ack: iss, flags: fA, data: []byte("b"), opts: ts(1500)})
	h.expect().ACK().Ack(irs + 1)
	if h.s.Counter("TcpExtPAWSEstab") != 1 || c.rcv.buf.n != 1 {
		t.Fatal("PAWS did not drop the old segment")
	}
}

func TestOutOfOrderSack(t *testing.T) {
	h := newHarness(t, nil)
	opts := &wire.TCPOptions{MSS: 1460, HasMSS: true, WScale: -1, SACKPermitted: true}
	c, iss, irs, lport := h.activeEstab(opts)
	h.inject(seg{src: 80, dst: lport, seq: irs + 10, ack: iss, flags: fA, data: []byte("0123456789")})
	h.expect().ACK().Ack(irs).SACK(wire.SACKBlock{Left: irs + 10, Right: irs + 20})
	h.inject(seg{src: 80, dst: lport, seq: irs + 30, ack: iss, flags: fA, data: []byte("xx")})
	h.expect().ACK().Ack(irs).SACK(wire.SACKBlock{Left: irs + 30, Right: irs + 32}, wire.SACKBlock{Left: irs + 10, Right: irs + 20})
	h.inject(seg{src: 80, dst: lport, seq: irs, ack: iss, flags: fA, data: []byte("abcdefghij")})
	h.expect().ACK().Ack(irs + 20).SACK(wire.SACKBlock{Left: irs + 30, Right: irs + 32})
	buf := make([]byte, 100)
	n, _ := c.Read(buf)
	if string(buf[:n]) != "abcdefghij0123456789" || h.s.Counter("TcpExtTCPOFOQueue") != 2 {
		t.Fatalf("read %q", buf[:n])
	}
}

func TestDeadlines(t *testing.T) {
	h := newHarness(t, nil)
	c, _, _, _ := h.activeEstab(nil)
	c.SetReadDeadline(h.clk.Now().Add(time.Second))
	done := make(chan error)
	go func() { _, err := c.Read(make([]byte, 1)); done <- err }()
	testwait.Parked(t, "tcp.(*Conn).Read") // the deadline must wake a Read that sleeps
	h.after(time.Second)
	err := testwait.Recv(t, done, "the deadline to end the Read")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	// A deadline moved later while a Read sleeps does not end it at the
	// old time; one moved into the past ends it at once.
	c.SetReadDeadline(h.clk.Now().Add(time.Second))
	go func() { _, err := c.Read(make([]byte, 1)); done <- err }()
	testwait.Parked(t, "tcp.(*Conn).Read")
	c.SetReadDeadline(h.clk.Now().Add(3 * time.Second))
	h.after(2 * time.Second)
	select {
	case err := <-done:
		t.Fatalf("the Read ended at the deadline's old time: %v", err)
	default:
	}
	c.SetReadDeadline(h.clk.Now().Add(-time.Second))
	if err := testwait.Recv(t, done, "a past deadline to end the Read"); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	c.SetReadDeadline(time.Time{})
	c.Close()
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

// TestDeadlineMovesDoNotAllocate: net/http moves a connection's read
// deadline three times per request (header timeout, a time in the past to
// abort its background Read, none) and reads the timeout error once. The
// deadline's timer is re-armed in place and the addresses in the error are
// built once, so a request costs the error itself and nothing else.
func TestDeadlineMovesDoNotAllocate(t *testing.T) {
	h := newHarness(t, nil)
	c, _, _, _ := h.activeEstab(nil)
	buf := make([]byte, 1)
	cycle := func() {
		c.SetReadDeadline(h.clk.Now().Add(10 * time.Second))
		c.SetReadDeadline(time.Unix(1, 0))
		if _, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read: %v", err)
		}
		c.SetReadDeadline(time.Time{})
	}
	cycle() // the first move makes the deadline and its timer
	if n := testing.AllocsPerRun(100, cycle); n > 1 {
		t.Fatalf("%.1f allocations per deadline cycle, want 1 (the *net.OpError)", n)
	}
	if c.RemoteAddr() != c.RemoteAddr() || c.LocalAddr() != c.LocalAddr() {
		t.Fatal("the connection's addresses are built anew on each call")
	}
}

func TestDSACKForDuplicate(t *testing.T) {
	h := newHarness(t, nil)
	opts := &wire.TCPOptions{MSS: 1460, HasMSS: true, WScale: -1, SACKPermitted: true}
	_, iss, irs, lport := h.activeEstab(opts)
	h.inject(seg{src: 80, dst: lport, seq: irs, ack: iss, flags: fA, data: []byte("0123456789")})
	h.drain()
	h.inject(seg{src: 80, dst: lport, seq: irs, ack: iss, flags: fA, data: []byte("0123456789")})
	h.expect().ACK().Ack(irs + 10).SACK(wire.SACKBlock{Left: irs, Right: irs + 10})
	// The report is sent once.
	h.inject(seg{src: 80, dst: lport, seq: irs + 10, ack: iss, flags: fA, data: []byte("x")})
	h.after(time.Second)
	h.expect().ACK().Ack(irs + 11).SACK()
}
