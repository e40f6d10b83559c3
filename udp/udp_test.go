package udp

import (
	"net/netip"
	"testing"

	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/wire"
)

// loopNet hands every datagram straight back to the stack, as if the wire
// looped it.
type loopNet struct{ s *Stack }

func (n *loopNet) OutputPMTU(src, dst netip.Addr, _ uint8, _ PMTUDisc, b *pkt.Buffer) error {
	n.s.Deliver(src, dst, b.Bytes(), false, false)
	b.Release()
	return nil
}

func (n *loopNet) Route(netip.Addr) (netip.Addr, int, error) {
	return netip.MustParseAddr("10.0.0.2"), 1500, nil
}

func newLoop(t testing.TB) (*Stack, *Conn, []byte) {
	n := &loopNet{}
	s := New(Config{Network: n})
	n.s = s
	c, err := s.Listen(netip.MustParseAddrPort("10.0.0.2:53"))
	if err != nil {
		t.Fatal(err)
	}
	b := pkt.Get(64)
	copy(b.Append(64), make([]byte, 64))
	wire.PrependUDP(b, netip.MustParseAddrPort("10.0.0.1:4000"), netip.MustParseAddrPort("10.0.0.2:53"))
	return s, c, append([]byte(nil), b.Bytes()...)
}

// TestReceivePathDoesNotAllocate: a datagram's way from Deliver through the
// socket queue to ReadFromUDPAddrPort allocates nothing once the queue has
// its ring (the datagram rides in a pooled buffer).
func TestReceivePathDoesNotAllocate(t *testing.T) {
	s, c, dg := newLoop(t)
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	buf := make([]byte, 128)
	step := func() {
		if s.Deliver(src, dst, dg, false, false) != Delivered {
			t.Fatal("not delivered")
		}
		if n, _, err := c.ReadFromUDPAddrPort(buf); err != nil || n != 64 {
			t.Fatalf("read %d %v", n, err)
		}
	}
	step()
	if n := testing.AllocsPerRun(1000, step); n != 0 {
		t.Fatalf("%.1f allocations per datagram received", n)
	}
}

// BenchmarkReceive is one 64-byte datagram through Deliver, the queue and a
// read (checksum verified).
func BenchmarkReceive(b *testing.B) {
	s, c, dg := newLoop(b)
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	buf := make([]byte, 128)
	b.ReportAllocs()
	for b.Loop() {
		s.Deliver(src, dst, dg, false, false)
		c.ReadFromUDPAddrPort(buf)
	}
}

// BenchmarkSend is one 64-byte datagram written to the looping network.
func BenchmarkSend(b *testing.B) {
	s, c, _ := newLoop(b)
	_ = s
	msg := make([]byte, 64)
	to := netip.MustParseAddrPort("10.0.0.2:53")
	buf := make([]byte, 128)
	b.ReportAllocs()
	for b.Loop() {
		c.WriteToUDPAddrPort(msg, to)
		c.ReadFromUDPAddrPort(buf)
	}
}
