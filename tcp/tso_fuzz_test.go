package tcp

import (
	"bytes"
	"testing"
	"time"

	"github.com/tapstack/tapstack/wire"
)

// FuzzTSOSender drives a TSO sender holding a 150 KB stream through a run
// of peer segments the fuzzer chooses, 6 bytes each: the ACK number as an
// offset into the stream (it may lie beyond what was sent), the window
// field (scaled by 2^7), an optional SACK block and a pause of 0 to 63 ms.
// Whatever they say, every super-segment fits GSOMax and the window the
// peer last offered, every wire segment carries bytes of the stream at
// their own offsets and at most one MSS, the scoreboard's counts match
// its records after every ACK and timer, and nothing panics.
func FuzzTSOSender(f *testing.F) {
	f.Add([]byte{0, 30, 0x20, 0, 0, 1, 0, 60, 0x20, 0, 0x41, 0, 0, 60, 0x20, 0, 0x05, 2})
	f.Add([]byte{0, 0, 0, 0, 0x80, 0, 0, 10, 0, 1, 0x0b, 1, 0, 90, 0xff, 0xff, 0xff, 3})
	f.Fuzz(func(t *testing.T, d []byte) {
		g := newGSOHarness(t, 65535, nil)
		c, iss, lport := g.tsoEstab(100, 4<<20, true)
		data := g.writeRandom(c, 150_000)
		mss := 1448
		g.supers = g.supers[:0] // the initial window's, checked by the other TSO tests
		g.takeAll()
		if len(d) > 40*6 {
			d = d[:40*6]
		}
		for ; len(d) >= 6; d = d[6:] {
			ack := iss + (uint32(d[0])<<8|uint32(d[1]))*64
			wnd := int(d[2])<<8 | int(d[3])
			o := &wire.TCPOptions{WScale: -1, HasTS: true, TSVal: 2, TSEcr: 1}
			if d[4]&1 != 0 {
				left := ack + uint32(d[5])*uint32(mss)
				o.SACK[0] = wire.SACKBlock{Left: left, Right: left + uint32(1+d[4]>>6)*uint32(mss)}
				o.NumSACK = 1
			}
			g.inject(seg{src: 80, dst: lport, seq: 5001, ack: ack, flags: fA, wnd: uint16(wnd), zwnd: wnd == 0, opts: o})
			checkScoreboard(t, c)
			g.after(time.Duration(d[4]>>1&63) * time.Millisecond)
			checkScoreboard(t, c)

			c.mu.Lock()
			right := c.snd.una.add(c.snd.wnd)
			c.mu.Unlock()
			for _, s := range g.supers {
				if s.total > 65535 {
					t.Fatalf("super-segment of %d bytes", s.total)
				}
				if end := seqnum(s.seq).add(s.n); end.gt(right) && end.diff(right) > mss {
					t.Fatalf("super-segment [%d, +%d) beyond the window's right edge %d", s.seq-iss, s.n, uint32(right)-iss)
				}
			}
			g.supers = g.supers[:0]
			for _, s := range g.takeAll() {
				if len(s.data) == 0 {
					continue
				}
				off := int(s.seq - iss)
				if len(s.data) > mss || off < 0 || off+len(s.data) > len(data) || !bytes.Equal(s.data, data[off:off+len(s.data)]) {
					t.Fatalf("segment at offset %d with %d bytes is not the stream's", off, len(s.data))
				}
			}
		}
	})
}
