package tcp

import (
	"testing"
	"time"
)

// TestOutOfWindowRateLimit: replies to out-of-window segments are limited per
// socket to one per tcp_invalid_ratelimit (tcp_oow_rate_limited), so two
// desynchronized ends cannot ping-pong ACKs.
func TestOutOfWindowRateLimit(t *testing.T) {
	h := newHarness(t, nil)
	_, iss, irs, lport := h.activeEstab(nil)
	old := seg{src: 80, dst: lport, seq: irs - 1000, ack: iss, flags: fA}
	h.inject(old)
	h.expect().ACK().Seq(iss).Ack(irs)
	for i := 0; i < 5; i++ {
		h.inject(old)
	}
	h.expectNone()
	if n := h.s.Counter("TcpExtTCPACKSkippedSeq"); n != 5 {
		t.Fatalf("TCPACKSkippedSeq %d, want 5", n)
	}
	// A challenge ACK shares the same per-socket stamp.
	h.inject(seg{src: 80, dst: lport, seq: irs + 100, flags: fR})
	h.expectNone()
	if n := h.s.Counter("TcpExtTCPACKSkippedChallenge"); n != 1 {
		t.Fatalf("TCPACKSkippedChallenge %d, want 1", n)
	}
	// Out-of-window data is never limited.
	h.inject(seg{src: 80, dst: lport, seq: irs - 1000, ack: iss, flags: fA, data: []byte("x")})
	h.expect().ACK().Ack(irs)
	h.after(500 * time.Millisecond)
	h.inject(old)
	h.expect().ACK().Ack(irs)
}
