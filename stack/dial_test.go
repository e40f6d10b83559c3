package stack_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/testenv/nettest"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
	"github.com/tapstack/tapstack/stack"
)

func checkCtxDialErr(t *testing.T, err error, addr string, want error) {
	t.Helper()
	if err := nettest.CheckCtxDialErr(err, addr, want); err != nil {
		t.Fatal(err)
	}
}

// socketsTo lists the client's sockets to remote, in any state.
func socketsTo(st *stack.Stack, remote string) []string {
	var out []string
	for _, si := range st.Sockets() {
		if si.Remote.String() == remote {
			out = append(out, si.State+" "+si.Local.String())
		}
	}
	return out
}

// DialContext with a context that is already done returns at once, as
// net.Dialer does: no frame leaves the stack (not even an ARP request), no
// socket is made, no counter moves.
func TestDialContextAlreadyDone(t *testing.T) {
	p := newBoundPair(t, nil, nil)
	ln, err := p.a.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	echoServer(t, ln)
	for _, tc := range nettest.DoneContexts() {
		t.Run(tc.Name, func(t *testing.T) {
			framesBefore, before := p.lb.Stats().Sent, snapshot(p.b)
			c, err := p.b.DialContext(tc.Ctx, "tcp", "10.1.0.1:80")
			if c != nil {
				c.Close()
				t.Fatal("DialContext with a done context returned a connection")
			}
			checkCtxDialErr(t, err, "10.1.0.1:80", tc.Err)
			d := snapshot(p.b).delta(before)
			if sent := p.lb.Stats().Sent - framesBefore; sent != 0 || d["TcpActiveOpens"] != 0 || d["TcpOutSegs"] != 0 {
				t.Errorf("the dial sent %d frames, TcpActiveOpens +%d, TcpOutSegs +%d; want nothing", sent, d["TcpActiveOpens"], d["TcpOutSegs"])
			}
			if left := socketsTo(p.b, "10.1.0.1:80"); len(left) != 0 {
				t.Errorf("sockets left behind: %v", left)
			}
		})
	}
}

// A context that ends during the handshake ends DialContext with its error
// and leaves no socket behind. The handshake is held up for as long as the
// test likes by a server whose accept queue is full: it drops each SYN
// (ListenOverflows), so the client stays in SYN-SENT.
func TestDialContextEndsDuringHandshake(t *testing.T) {
	p := newBoundPair(t, nil, nil)
	ln, err := p.a.ListenTCP(netip.MustParseAddrPort("10.1.0.1:80"), 0) // room for backlog+1 = 1
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	first, err := p.b.Dial("tcp", "10.1.0.1:80")
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	testwait.Until(t, "the first connection in the accept queue", func() bool { _, q := ln.QueueLens(); return q == 1 })

	t.Run("canceled", func(t *testing.T) {
		overflows := counter(t, p.a, "TcpExtListenOverflows")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		errc := make(chan error, 1)
		go func() {
			c, err := p.b.DialContext(ctx, "tcp", "10.1.0.1:80")
			if c != nil {
				c.Close()
			}
			errc <- err
		}()
		testwait.Until(t, "the server to drop the SYN", func() bool { return counter(t, p.a, "TcpExtListenOverflows") > overflows })
		testwait.Parked(t, "tcp.(*Stack).Dial")
		cancel()
		checkCtxDialErr(t, testwait.Recv(t, errc, "DialContext to return"), "10.1.0.1:80", context.Canceled)
		if left := socketsTo(p.b, "10.1.0.1:80"); len(left) != 1 || left[0] != "ESTAB "+first.LocalAddr().String() {
			t.Errorf("client sockets to the server: %v, want only the first connection", left)
		}
	})
	t.Run("deadline exceeded", func(t *testing.T) {
		// The deadline only has to pass: every SYN, the retransmissions
		// too, meets the full queue, so the dial cannot succeed however
		// slowly the machine runs.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		c, err := p.b.DialContext(ctx, "tcp", "10.1.0.1:80")
		if c != nil {
			c.Close()
			t.Fatal("dial into a full accept queue succeeded")
		}
		checkCtxDialErr(t, err, "10.1.0.1:80", context.DeadlineExceeded)
		if left := socketsTo(p.b, "10.1.0.1:80"); len(left) != 1 {
			t.Errorf("client sockets to the server: %v, want only the first connection", left)
		}
	})
}
