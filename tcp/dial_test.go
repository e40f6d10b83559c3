package tcp

import (
	"context"
	"net/netip"
	"sync"
	"testing"

	"github.com/tapstack/tapstack/internal/testenv/nettest"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
)

var dialPeer = netip.AddrPortFrom(hPeer, 80)

func checkDialCtxErr(t *testing.T, err, want error) {
	t.Helper()
	if err := nettest.CheckCtxDialErr(err, dialPeer.String(), want); err != nil {
		t.Fatal(err)
	}
}

// noSockets checks the stack holds no socket at all.
func (h *harness) noSockets() {
	h.t.Helper()
	if si := h.s.Sockets(); len(si) != 0 {
		h.t.Fatalf("sockets left behind: %+v", si)
	}
}

// A context that is already done fails Dial at once: no SYN, no socket,
// no counter moved, whichever way it ended.
func TestDialDoneContext(t *testing.T) {
	for _, tc := range nettest.DoneContexts() {
		t.Run(tc.Name, func(t *testing.T) {
			h := newHarness(t, nil)
			c, err := h.s.Dial(tc.Ctx, netip.AddrPort{}, dialPeer)
			if c != nil {
				t.Fatal("Dial returned a connection")
			}
			checkDialCtxErr(t, err, tc.Err)
			h.expectNone()
			h.noSockets()
			if n := h.s.Counter("TcpActiveOpens"); n != 0 {
				t.Errorf("TcpActiveOpens %d for a dial that never started", n)
			}
		})
	}
}

// A context that ends during the handshake ends Dial with its error and
// takes the SYN-SENT socket away; the SYN-ACK that comes later finds no
// socket and is answered with a RST.
func TestDialContextEndsInSynSent(t *testing.T) {
	h := newHarness(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := h.s.Dial(ctx, netip.AddrPort{}, dialPeer)
		errc <- err
	}()
	testwait.Until(t, "the SYN", func() bool { return h.pending() > 0 })
	syn := h.expect().SYN()
	testwait.Parked(t, "tcp.(*Stack).Dial")
	cancel()
	checkDialCtxErr(t, testwait.Recv(t, errc, "Dial to return"), context.Canceled)
	h.expectNone() // nothing to tell a peer that has seen only a SYN (tcp_close in SYN_SENT)
	h.noSockets()
	if n := h.s.Counter("TcpAttemptFails"); n != 1 {
		t.Errorf("TcpAttemptFails %d, want 1", n)
	}
	h.inject(seg{src: 80, dst: syn.seg.SrcPort(), seq: 5000, ack: syn.seg.Seq() + 1, flags: fS | fA, opts: noOpts()})
	h.expect().Flags(fR).Seq(syn.seg.Seq() + 1)
	h.noSockets()
}

// hookCtx runs hook the first time Dial asks for Done, i.e. when Dial is
// about to wait: the test gets to act between the SYN and the wait.
type hookCtx struct {
	context.Context
	once sync.Once
	hook func()
}

func (c *hookCtx) Done() <-chan struct{} {
	c.once.Do(c.hook)
	return c.Context.Done()
}

// When the handshake completes and the context ends at the same moment,
// the context wins (as in net.Dialer): Dial fails, and the connection the
// peer now holds is reset rather than left open with no user.
func TestDialContextEndsAsHandshakeCompletes(t *testing.T) {
	h := newHarness(t, nil)
	base, cancel := context.WithCancel(context.Background())
	defer cancel()
	var syn *expectation
	ctx := &hookCtx{Context: base, hook: func() {
		syn = h.expect().SYN()
		h.inject(seg{src: 80, dst: syn.seg.SrcPort(), seq: 5000, ack: syn.seg.Seq() + 1, flags: fS | fA, opts: noOpts()})
		cancel()
	}}
	c, err := h.s.Dial(ctx, netip.AddrPort{}, dialPeer)
	if c != nil {
		t.Fatal("Dial returned a connection after its context ended")
	}
	checkDialCtxErr(t, err, context.Canceled)
	h.expect().ACK().Seq(syn.seg.Seq() + 1).Ack(5001)
	h.expect().Flags(fR | fA).Seq(syn.seg.Seq() + 1)
	h.noSockets()
	if n := h.s.Counter("TcpOutRsts"); n != 1 {
		t.Errorf("TcpOutRsts %d, want 1", n)
	}
}
