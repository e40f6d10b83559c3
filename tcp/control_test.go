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

func TestPathMTUReduced(t *testing.T) {
	h := newHarness(t, nil)
	c, iss, _, lport := h.activeEstab(nil)
	c.SetNoDelay(true)
	c.Write(make([]byte, 2920))
	h.expect().Seq(iss).Len(1460)
	h.expect().Seq(iss + 1460).Len(1460)
	h.s.Control(3, 4, 1000, hLocal, hPeer, quote(lport, 80, iss))
	h.expect().Seq(iss).Len(960)
	h.expect().Seq(iss + 960).Len(960)
	if c.mss != 960 {
		t.Fatalf("mss %d", c.mss)
	}
	// A quote outside the send window is ignored.
	h.s.Control(3, 4, 600, hLocal, hPeer, quote(lport, 80, iss+100000))
	if c.mss != 960 {
		t.Fatal("out-of-window ICMP accepted")
	}
}

func TestICMPUnreachableDuringConnect(t *testing.T) {
	h := newHarness(t, nil)
	c, syn := h.dial()
	h.s.Control(3, 3, 0, hLocal, hPeer, quote(syn.seg.SrcPort(), 80, syn.seg.Seq()))
	if c.State() != StateClose || !errors.Is(c.err, syscall.ECONNREFUSED) {
		t.Fatalf("state %v err %v", c.State(), c.err)
	}
}
