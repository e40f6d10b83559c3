package tcp

import (
	"testing"

	"github.com/tapstack/tapstack/wire"
)

// TestOutOfOrderRangesKept: 300 out-of-order segments each leaving a hole
// before it are all kept (TCPOFOQueue; no cap on ranges, only the memory
// bound, far away here), none dropped (TCPOFODrop); filling the first hole
// delivers the data up to the second.
func TestOutOfOrderRangesKept(t *testing.T) {
	h := newHarness(t, nil)
	c, iss, irs, p := h.activeEstab(&wire.TCPOptions{MSS: 1460, HasMSS: true, WScale: 7, SACKPermitted: true})
	const n = 300
	ten := []byte("0123456789")
	for k := 1; k <= n; k++ {
		h.inject(seg{src: 80, dst: p, seq: irs + uint32(20*k), ack: iss, flags: fA, data: ten})
	}
	h.drain()
	if got := h.s.Counter("TcpExtTCPOFOQueue"); got != n {
		t.Errorf("TCPOFOQueue %d, want %d", got, n)
	}
	if got := h.s.Counter("TcpExtTCPOFODrop"); got != 0 {
		t.Errorf("TCPOFODrop %d, want 0", got)
	}
	if got := c.rcv.ofo.q.tree.n; got != n {
		t.Errorf("%d ranges held, want %d", got, n)
	}
	h.inject(seg{src: 80, dst: p, seq: irs, ack: iss, flags: fA, data: []byte("abcdefghijklmnopqrst")})
	h.expect().ACK().Ack(irs + 30)
	buf := make([]byte, 100)
	if k, err := c.Read(buf); err != nil || string(buf[:k]) != "abcdefghijklmnopqrst0123456789" {
		t.Fatalf("Read: %d, %v: %q", k, err, buf[:k])
	}
}
