package tcp

import (
	"encoding/binary"
	"errors"
	"syscall"
	"testing"
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
