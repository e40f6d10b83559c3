package tcp

import (
	"encoding/binary"
	"errors"
	"syscall"
	"testing"
	"time"
)

func quote(sport, dport uint16, seq uint32) []byte {
	q := make([]byte, 8)
	binary.BigEndian.PutUint16(q, sport)
	binary.BigEndian.PutUint16(q[2:], dport)
	binary.BigEndian.PutUint32(q[4:], seq)
	return q
}

func TestICMPUnreachableDuringConnect(t *testing.T) {
	h := newHarness(t, nil)
	c, syn := h.dial()
	h.s.Control(3, 3, 0, hLocal, hPeer, quote(syn.seg.SrcPort(), 80, syn.seg.Seq()))
	if c.State() != StateClose || !errors.Is(c.err, syscall.ECONNREFUSED) {
		t.Fatalf("state %v err %v", c.State(), c.err)
	}
}

// TestICMPSoftErrorEstablished: an established connection keeps going
// through an ICMP host unreachable (RFC 1122 §4.2.3.9); an ACK that shows
// the path works forgets it; if the connection then times out, the last
// soft error is what the user sees instead of ETIMEDOUT (tcp_write_err). An
// ICMP quoting a sequence outside the send window is counted and ignored.
func TestICMPSoftErrorEstablished(t *testing.T) {
	h := newHarness(t, func(s *Sysctls) { s.Retries2.Store(3) })
	c, iss, irs, lport := h.activeEstab(nil)
	c.Write([]byte("a"))
	h.expect().Seq(iss).Len(1)
	h.s.Control(3, 1, 0, hLocal, hPeer, quote(lport, 80, iss)) // host unreachable
	if c.State() != StateEstablished || c.errSoft != uint8(syscall.EHOSTUNREACH) {
		t.Fatalf("after host unreachable: state %v soft error %d", c.State(), c.errSoft)
	}
	h.inject(seg{src: 80, dst: lport, seq: irs, ack: iss + 1, flags: fA})
	if c.errSoft != 0 {
		t.Fatalf("soft error %d survives an ACK", c.errSoft)
	}
	h.s.Control(11, 0, 0, hLocal, hPeer, quote(lport, 80, iss+500)) // beyond snd_nxt
	if c.errSoft != 0 || h.s.Counter("TcpExtOutOfWindowIcmps") != 1 {
		t.Fatalf("out-of-window ICMP: soft error %d, OutOfWindowIcmps %d", c.errSoft, h.s.Counter("TcpExtOutOfWindowIcmps"))
	}
	c.Write([]byte("b"))
	h.expect().Seq(iss + 1).Len(1)
	h.s.Control(11, 0, 0, hLocal, hPeer, quote(lport, 80, iss+1)) // TTL exceeded in transit
	h.s.Control(4, 0, 0, hLocal, hPeer, quote(lport, 80, iss+1))  // source quench: ignored
	for i := 0; i < 100 && c.State() == StateEstablished; i++ {
		h.after(time.Second)
	}
	h.drain()
	if c.State() != StateClose || !errors.Is(c.err, syscall.EHOSTUNREACH) {
		t.Fatalf("timed out: state %v err %v, want EHOSTUNREACH", c.State(), c.err)
	}
	if _, err := c.Write([]byte("c")); !errors.Is(err, syscall.EHOSTUNREACH) {
		t.Fatalf("write after the timeout: %v, want EHOSTUNREACH", err)
	}
}

// TestICMPErrorsDuringConnect: in SYN-SENT every ICMP error ends connect(2)
// with its icmp_err_convert errno.
func TestICMPErrorsDuringConnect(t *testing.T) {
	for _, tc := range []struct {
		typ, code uint8
		want      syscall.Errno
	}{
		{3, 0, syscall.ENETUNREACH}, {3, 1, syscall.EHOSTUNREACH}, {3, 2, syscall.ENOPROTOOPT},
		{3, 7, syscall.EHOSTDOWN}, {3, 13, syscall.EHOSTUNREACH}, {11, 0, syscall.EHOSTUNREACH}, {12, 0, syscall.EPROTO},
	} {
		h := newHarness(t, nil)
		c, syn := h.dial()
		h.s.Control(tc.typ, tc.code, 0, hLocal, hPeer, quote(syn.seg.SrcPort(), 80, syn.seg.Seq()))
		if c.State() != StateClose || !errors.Is(c.err, tc.want) {
			t.Errorf("ICMP %d/%d: state %v err %v, want %v", tc.typ, tc.code, c.State(), c.err, tc.want)
		}
	}
	h := newHarness(t, nil)
	c, syn := h.dial()
	h.s.Control(3, 16, 0, hLocal, hPeer, quote(syn.seg.SrcPort(), 80, syn.seg.Seq())) // no such code
	if c.State() != StateSynSent {
		t.Fatalf("unknown unreachable code: state %v", c.State())
	}
}

// TestICMPRevertsRTOBackoff: RFC 6069. While the RTO is backed off, a host
// unreachable quoting snd_una undoes one doubling: the timer is re-armed
// for what is left of the shorter timeout, or the head is resent at once
// when nothing is left. An unreachable quoting another sequence changes
// nothing.
func TestICMPRevertsRTOBackoff(t *testing.T) {
	h := newHarness(t, nil)
	c, iss, _, lport := h.activeEstab(nil)
	c.Write([]byte("a"))
	h.expect().Seq(iss).Len(1)
	rto := c.rtt.rto
	for i := range 3 { // three RTOs: the timeout is now 8 × rto
		h.after(time.Duration(c.rtoAt - c.s.stampNow()))
		h.expect().Seq(iss).Len(1)
		if c.rtt.backoff != i+1 {
			t.Fatalf("after RTO %d: backoff %d", i+1, c.rtt.backoff)
		}
	}
	// One rto into the 8·rto wait, an unreachable that does not quote
	// snd_una changes nothing.
	h.after(rto)
	h.s.Control(3, 1, 0, hLocal, hPeer, quote(lport, 80, iss+1))
	if c.rtt.backoff != 3 {
		t.Fatalf("an unreachable past snd_una reverted the backoff (%d)", c.rtt.backoff)
	}
	h.s.Control(3, 1, 0, hLocal, hPeer, quote(lport, 80, iss))
	if c.rtt.backoff != 2 {
		t.Fatalf("backoff %d after the revert, want 2", c.rtt.backoff)
	}
	if left := time.Duration(c.rtoAt - c.s.stampNow()); left != 3*rto {
		t.Fatalf("RTO re-armed for %v, want 4·rto less the rto waited = %v", left, 3*rto)
	}
	h.expectNone()
	// The reverted timeout fires (backoff 3 again, the head resent now).
	// Five rto into the next 8·rto wait, an unreachable leaves 4·rto − 5·rto
	// < 0 of the reverted timeout: the head goes at once, as an RTO.
	h.after(3 * rto)
	h.expect().Seq(iss).Len(1)
	h.after(5 * rto)
	h.expectNone()
	h.s.Control(3, 0, 0, hLocal, hPeer, quote(lport, 80, iss)) // net unreachable
	h.expect().Seq(iss).Len(1)
	if c.rtt.backoff != 3 || c.State() != StateEstablished {
		t.Fatalf("backoff %d state %v after the clocked-out revert, want 3 and established", c.rtt.backoff, c.State())
	}
}
