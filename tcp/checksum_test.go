package tcp

import (
	"testing"

	"github.com/tapstack/tapstack/wire"
)

// TestDeliverCsumValidSkipsVerification: a SYN whose checksum field holds
// only a partial sum (as the kernel leaves CHECKSUM_PARTIAL frames) is a
// checksum error through Deliver, and answered when Deliver is told the
// device vouched for it (csumValid).
func TestDeliverCsumValidSkipsVerification(t *testing.T) {
	h := newHarness(t, nil)
	h.listen(16)
	syn := func(port uint16) []byte {
		b := make([]byte, 20)
		f := wire.TCPFields{SrcPort: port, DstPort: 80, Seq: 1000, Flags: fS, Window: 65535}
		f.Encode(b)
		wire.TCP(b).SetChecksum(wire.PseudoHeaderSum(h.peer, hLocal, wire.IPProtocolTCP, len(b)))
		return b
	}
	h.s.Deliver(h.peer, hLocal, syn(5000), 0, false)
	h.expectNone()
	if got := h.s.Counter("TcpInCsumErrors"); got != 1 {
		t.Fatalf("TcpInCsumErrors %d after a partial checksum through Deliver, want 1", got)
	}
	h.s.Deliver(h.peer, hLocal, syn(5001), 0, true)
	h.expect().Flags(fS | fA).Ack(1001)
	if got := h.s.Counter("TcpInCsumErrors"); got != 1 {
		t.Fatalf("TcpInCsumErrors %d, want still 1", got)
	}
}
