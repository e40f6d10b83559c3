package tcp

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/testenv/testwait"
	"github.com/tapstack/tapstack/wire"
)

// TestSocketBacklogWhileReaderOwns: segments that arrive while a reader is
// inside Read (owning the socket) are not processed by the receive path,
// which never waits: they go onto the socket backlog, contiguous ones
// coalesced into its tail (TCPBacklogCoalesce), and the reader processes
// them before Read returns (release_sock), in order.
func TestSocketBacklogWhileReaderOwns(t *testing.T) {
	h := newHarness(t, nil)
	c, iss, irs, lport := h.activeEstab(nil)
	h.inject(seg{src: 80, dst: lport, seq: irs, ack: iss, flags: fA, data: []byte("first")})
	h.drain()
	held, let := make(chan struct{}), make(chan struct{})
	readHook = func(*Conn) { close(held); <-let }
	type result struct {
		s   string
		err error
	}
	done := make(chan result, 1)
	go func() {
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		done <- result{string(buf[:n]), err}
	}()
	testwait.Recv(t, held, "the reader to be inside Read")
	for i, d := range []string{"abc", "def", "ghi"} {
		h.inject(seg{src: 80, dst: lport, seq: irs + 5 + uint32(3*i), ack: iss, flags: fA, data: []byte(d)})
	}
	// The receive path returned at once for each: nothing was processed,
	// so nothing was acknowledged, and the three wait as one.
	h.expectNone()
	if got := h.s.Counter("TcpExtTCPBacklogCoalesce"); got != 2 {
		t.Errorf("TCPBacklogCoalesce %d, want 2 (three contiguous segments, one backlog entry)", got)
	}
	if n := c.backlogLen(); n != backlogTruesize(3)+2*64 {
		t.Errorf("backlog holds %d bytes, want %d", n, backlogTruesize(3)+2*64)
	}
	close(let)
	r := testwait.Recv(t, done, "Read to return")
	readHook = nil
	if r.err != nil || r.s != "first" {
		t.Fatalf("Read: %q %v", r.s, r.err)
	}
	if n := c.backlogLen(); n != 0 {
		t.Fatalf("backlog still holds %d bytes after Read returned", n)
	}
	// Read processed the backlog: the data is there and was acknowledged
	// (after the window update the copy of "first" sent).
	acked := false
	for h.pending() > 0 {
		acked = acked || h.expect().seg.Ack() == irs+14
	}
	if !acked {
		t.Fatal("the backlogged data was not acknowledged when Read returned")
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "abcdefghi" {
		t.Fatalf("second Read: %q %v", buf[:n], err)
	}
	if h.s.Counter("TcpExtTCPBacklogDrop") != 0 {
		t.Fatal("TCPBacklogDrop moved below the bound")
	}
}

// TestSocketBacklogBound: while a user call owns the socket the backlog
// takes segments until it and the receive queue hold more than rcvbuf +
// sndbuf/2 + 64 KB (the segment that crosses it still fits); the rest are
// dropped and counted in TCPBacklogDrop. What was queued is processed in
// order when the owner lets go, and nothing below the bound is lost.
func TestSocketBacklogBound(t *testing.T) {
	h := newHarness(t, nil)
	c, iss, irs, lport := h.activeEstab(synOpts(1000))
	ts := func(v uint32) *wire.TCPOptions { return &wire.TCPOptions{WScale: -1, HasTS: true, TSVal: v} }
	c.lockSock() // the test is the user call that owns the socket
	limit := c.rcv.bufMax + c.snd.bufMax/2 + 64<<10
	if got := c.backlogLimit(); got != limit {
		t.Fatalf("backlog bound %d, want rcvbuf %d + sndbuf/2 %d + 64 KB = %d", got, c.rcv.bufMax, c.snd.bufMax/2, limit)
	}
	const n, size = 400, 100
	// Distinct timestamps: the options differ, so none coalesce.
	for i := range n {
		h.inject(seg{src: 80, dst: lport, seq: irs + uint32(i*size), ack: iss, flags: fA,
			data: bytes.Repeat([]byte{byte(i)}, size), opts: ts(2000 + uint32(i))})
	}
	per := backlogTruesize(size)
	queued := limit/per + 1
	if drops := int(h.s.Counter("TcpExtTCPBacklogDrop")); drops != n-queued {
		t.Fatalf("TCPBacklogDrop %d, want %d: %d segments of truesize %d fit a bound of %d", drops, n-queued, queued, per, limit)
	}
	if got := c.backlogLen(); got != queued*per {
		t.Fatalf("backlog %d bytes, want %d", got, queued*per)
	}
	h.expectNone()
	c.release()
	h.drain()
	got := make([]byte, 0, queued*size)
	buf := make([]byte, 4096)
	for len(got) < queued*size {
		k, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:k]...)
	}
	for i := range queued {
		if !bytes.Equal(got[i*size:(i+1)*size], bytes.Repeat([]byte{byte(i)}, size)) {
			t.Fatalf("segment %d out of order or damaged", i)
		}
	}
	if h.s.Counter("TcpExtTCPOFOQueue") != 0 {
		t.Fatal("backlogged segments were processed out of order")
	}
	// The last of them is acknowledged when the delayed ACK is due.
	h.after(time.Second)
	var last *expectation
	for h.pending() > 0 {
		last = h.expect()
	}
	if last == nil || last.seg.Ack() != irs+uint32(queued*size) {
		t.Fatalf("the final ACK: %v, want ack %d (%s)", last, queued*size, nonzero(h.s))
	}
}

// TestSocketBacklogDefersTimersAndICMP: a timer that fires while a user
// call owns the socket waits for it (tcp_release_cb): no retransmission
// leaves until the owner lets go, then it does; a delayed ACK that waited
// is counted in DelayedACKLocked. A fragmentation-needed waits too
// (TCP_MTU_REDUCED_DEFERRED); another ICMP error is counted in
// LockDroppedIcmps and kept as the soft error.
func TestSocketBacklogDefersTimersAndICMP(t *testing.T) {
	h := newHarness(t, nil)
	c, iss, irs, lport := h.activeEstab(nil)
	c.SetNoDelay(true)
	c.Write(make([]byte, 1460))
	h.expect().Seq(iss).Len(1460)
	// ICMP while owned: the MTU waits for the owner, the host unreachable
	// is counted and kept.
	c.lockSock()
	h.s.Control(3, 4, 1000, hLocal, hPeer, quote(lport, 80, iss))
	h.s.Control(3, 1, 0, hLocal, hPeer, quote(lport, 80, iss))
	if h.s.Counter("TcpExtLockDroppedIcmps") != 1 {
		t.Fatalf("LockDroppedIcmps %d, want 1 (the host unreachable; the MTU waits)", h.s.Counter("TcpExtLockDroppedIcmps"))
	}
	if c.snd.mss != 1460 {
		t.Fatalf("the MSS changed to %d while the socket was owned", c.snd.mss)
	}
	c.release()
	h.expect().Seq(iss).Len(960)
	h.expect().Seq(iss + 960).Len(500)
	if c.snd.mss != 960 || c.errSoft != uint8(113) {
		t.Fatalf("after release: mss %d, soft error %d; want 960 and EHOSTUNREACH", c.snd.mss, c.errSoft)
	}
	// The RTO while owned: nothing leaves until the owner lets go.
	c.lockSock()
	h.after(c.rtoBackoff() + time.Millisecond)
	h.expectNone()
	c.release()
	h.expect().Seq(iss).Len(960)
	if h.s.Counter("TcpExtTCPTimeouts") != 1 {
		t.Fatalf("TCPTimeouts %d, want 1", h.s.Counter("TcpExtTCPTimeouts"))
	}
	h.drain()
	h.inject(seg{src: 80, dst: lport, seq: irs, ack: iss + 1460, flags: fA})
	h.drain()

	// A delayed ACK due while owned: one-byte segments until the quick
	// ACKs at the start of the connection are used up and one waits.
	next, pending := irs, false
	for i := 0; i < 64 && !pending; i++ {
		h.inject(seg{src: 80, dst: lport, seq: next, ack: iss + 1460, flags: fA, data: []byte("x")})
		next++
		h.drain()
		c.lockSock()
		pending = c.rcv.ackPending && !c.delackAt.IsZero()
		c.release()
	}
	if !pending {
		t.Fatal("no delayed ACK after 64 one-byte segments")
	}
	c.lockSock()
	h.after(time.Second)
	h.expectNone()
	c.release()
	h.expect().ACK().Ack(next)
	if h.s.Counter("TcpExtDelayedACKLocked") != 1 {
		t.Fatalf("DelayedACKLocked %d, want 1", h.s.Counter("TcpExtDelayedACKLocked"))
	}
}

func nonzero(s *Stack) string {
	var b bytes.Buffer
	s.Counters(func(name string, v uint64) {
		if v != 0 {
			fmt.Fprintf(&b, "%s=%d ", name, v)
		}
	})
	return b.String()
}
