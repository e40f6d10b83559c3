package tcp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tapstack/tapstack/wire"
)

// TestSynFloodWithCookies floods a backlog-128 listener with spoofed SYNs:
// the SYN queue stays bounded, cookies answer the excess and a legitimate
// client still connects.
func TestSynFloodWithCookies(t *testing.T) {
	h := newHarness(t, nil)
	l := h.listen(128)
	for i := 0; i < 20000; i++ {
		src := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		h.injectFrom(src, seg{src: uint16(1024 + i%50000), dst: 80, seq: uint32(i), flags: fS, opts: synOpts(uint32(i))})
	}
	h.drain()
	syn, _ := l.QueueLens()
	if syn != 128 {
		t.Fatalf("synq %d, want 128", syn)
	}
	if got := h.s.Counter("TcpExtSyncookiesSent"); got != 20000-128 {
		t.Fatalf("SyncookiesSent %d", got)
	}
	c, _, _ := h.estab(l, 4242, synOpts(5))
	if c == nil || h.s.Counter("TcpExtSyncookiesRecv") != 1 {
		t.Fatal("legitimate client did not connect through a cookie")
	}
	// The flood's requests expire after the SYN-ACK retries (fewer under pressure).
	h.after(2 * time.Minute)
	h.drain()
	if syn, _ := l.QueueLens(); syn != 0 {
		t.Fatalf("synq %d after expiry", syn)
	}
}

// FuzzDeliver feeds arbitrary bytes to a stack with a listener, a pending
// request and an established connection (port 5000 ↔ 80): every bad
// packet must be a counted drop, never a panic or a hang.
func FuzzDeliver(f *testing.F) {
	f.Add([]byte{0x13, 0x88, 0, 80, 0, 0, 3, 0xe8, 0, 0, 0, 0, 0x50, 2, 0xff, 0xff, 0, 0, 0, 0})
	f.Add([]byte{0x13, 0x88, 0, 80, 0, 0, 3, 0xe9, 0, 0, 0, 0, 0x80, 0x18, 0xff, 0xff, 0, 0, 0, 0, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		h := newHarness(t, nil)
		l := h.listen(4)
		c, _, _ := h.estab(l, 5000, synOpts(9))
		c.Write([]byte("some data"))
		h.inject(seg{src: 5001, dst: 80, seq: 1, flags: fS, opts: synOpts(1)})
		if len(b) >= 20 {
			seg := append([]byte(nil), b...)
			wire.TCP(seg).SetChecksum(0)
			wire.TCP(seg).SetChecksum(wire.TCPChecksum(hPeer, hLocal, seg))
			h.s.Deliver(hPeer, hLocal, seg, 0, false)
		}
		h.s.Deliver(hPeer, hLocal, b, 0, false)
		h.after(10 * time.Minute)
		c.Close()
		h.after(10 * time.Minute)
	})
}
