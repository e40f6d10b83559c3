package ipv4

import (
	"testing"

	"github.com/tapstack/tapstack/internal/pkt"
)

// FuzzInput feeds arbitrary bytes to the IPv4 and ARP handlers: every bad
// packet must be a counted drop, never a panic, and no buffer may leak into
// the reassembly accounting beyond its bound.
func FuzzInput(f *testing.F) {
	f.Add(echoRequest(f, peerIP, ourIP, 1, 1, []byte("seed")))
	f.Add(frag(f, 7, 0, true, make([]byte, 16)))
	f.Add(frag(f, 7, 16, false, make([]byte, 5)))
	f.Add(arpPacket(f, 1, peerMAC, peerIP, make([]byte, 6), ourIP))
	h := newHarness(f)
	h.dev.discard = true
	h.learnPeer(peerIP, peerMAC)
	f.Fuzz(func(t *testing.T, data []byte) {
		b := pkt.GetRx(len(data))
		b.SetLen(copy(b.Store(), data))
		h.l.ipInput(b)
		b.SetLen(copy(b.Store(), data))
		h.l.arpInput(b)
		b.Release()
		h.drain()
		if int64(h.l.reasm.memUsed()) > h.l.sys.IpfragHighThresh.Load()+70000 {
			t.Fatalf("reassembly memory %d", h.l.reasm.memUsed())
		}
	})
}
