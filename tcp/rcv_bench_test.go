package tcp

import (
	"fmt"
	"math/rand"
	"net/netip"
	"testing"

	"github.com/tapstack/tapstack/internal/clock"
	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/wire"
)

// rcvSinkNet counts and drops what the stack sends, remembering the last
// sequence number (the SYN-ACK's ISN).
type rcvSinkNet struct {
	sent    int
	lastSeq uint32
}

func (d *rcvSinkNet) Route(netip.Addr) (netip.Addr, int, error) { return hLocal, 1500, nil }
func (d *rcvSinkNet) Output(_, _ netip.Addr, _ uint8, b *pkt.Buffer) error {
	d.sent++
	d.lastSeq = wire.TCP(b.Bytes()).Seq()
	b.Release()
	return nil
}

// benchSeg builds segments into one reused buffer.
type benchSeg struct {
	s    *Stack
	buf  [20 + 1448]byte
	seq0 uint32
	ack  uint32
}

func (g *benchSeg) deliver(off uint32, n int, flags uint8) {
	b := g.buf[:20+n]
	f := wire.TCPFields{SrcPort: 5000, DstPort: 80, Seq: g.seq0 + off, Ack: g.ack, Flags: flags, Window: 65535}
	f.Encode(b[:20])
	wire.TCP(b).SetChecksum(wire.TCPChecksum(hPeer, hLocal, b))
	g.s.Deliver(hPeer, hLocal, b, 0, false)
}

// BenchmarkRcvOutOfOrder is the receive path with n out-of-order ranges
// held (1-byte ranges, 1-byte holes): per operation the lowest hole fills
// (rcv_nxt advances over the first range, which is read), a new range
// opens at the top, and a duplicate lands inside a random range (a lookup
// in the middle of the tree and a D-SACK), each answered by an ACK with
// SACK blocks. The cost grows with log n; nothing is allocated.
func BenchmarkRcvOutOfOrder(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			net := &rcvSinkNet{}
			sys := NewSysctls()
			sys.CoreRmemMax.Store(1 << 24)
			s := New(Config{Network: net, Clock: clock.NewVirtual(t0), Sysctls: sys, Rand: rand.New(rand.NewSource(1))})
			l, err := s.Listen(netip.AddrPortFrom(netip.IPv4Unspecified(), 80), 4)
			if err != nil {
				b.Fatal(err)
			}
			g := &benchSeg{s: s, seq0: 1000}
			syn := wire.TCPFields{SrcPort: 5000, DstPort: 80, Seq: 999, Flags: fS, Window: 65535}
			so := &wire.TCPOptions{WScale: 7, MSS: 1460, HasMSS: true, SACKPermitted: true}
			hb := make([]byte, 20+wire.TCPOptionsLen(so))
			syn.Encode(hb)
			wire.EncodeTCPOptions(hb[20:], so)
			wire.TCP(hb).SetChecksum(wire.TCPChecksum(hPeer, hLocal, hb))
			s.Deliver(hPeer, hLocal, hb, 0, false)
			g.ack = net.lastSeq + 1
			g.deliver(0, 0, fA)
			c, err := l.AcceptTCP()
			if err != nil {
				b.Fatal(err)
			}
			c.SetReadBuffer(1 << 22)
			c.rcv.quickAcks = 0
			c.rtt.srtt = 0      // every ACK at once: the most work per segment
			g.deliver(0, 1, fA) // opens the scaled window
			for i := 1; i <= n; i++ {
				g.deliver(uint32(2*i), 1, fA)
			}
			rd := make([]byte, 64)
			rng := rand.New(rand.NewSource(1))
			dups := make([]uint32, 1<<12)
			for i := range dups {
				dups[i] = uint32(2 * (1 + rng.Intn(n-1)))
			}
			low, top := uint32(1), uint32(2*n)
			if c.rcv.ofo.q == nil || c.rcv.ofo.q.tree.n != n {
				b.Fatalf("set-up holds %v ranges, want %d", c.rcv.ofo.q, n)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				g.deliver(low, 1, fA) // fills the lowest hole
				c.Read(rd)
				top += 2
				g.deliver(top, 1, fA) // a new range at the top
				g.deliver(low+1+dups[i&(len(dups)-1)], 1, fA)
				low += 2
			}
			b.StopTimer()
			if got := c.rcv.ofo.q.tree.n; got < n-1 || got > n+1 {
				b.Fatalf("%d ranges at the end, want %d", got, n)
			}
		})
	}
}
