package tcp

import (
	"fmt"
	"testing"
	"time"
)

// TestBidirectionalEcho streams 2 MB through an echo while both directions
// carry data, over seeded lossy, reordering, duplicating links: SACK
// blocks then shrink data segments (tcp_current_mss) and recovery runs on
// both sides at once. Every byte the server sends is checked.
func TestBidirectionalEcho(t *testing.T) {
	seeds := 4
	if testing.Short() {
		seeds = 2
	}
	for seed := int64(1); seed <= int64(seeds); seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			l := newTestLink(seed)
			a, b := l.newStack(addrA, nil), l.newStack(addrB, nil)
			c, s := l.pair(t, a, b)
			l.loss, l.jitter, l.dup = 0.01, 2*time.Millisecond, 0.01
			data := make([]byte, 2<<20)
			for i := range data {
				data[i] = byte(i * 7 >> 3)
			}
			sent, srvGot, got := 0, 0, 0
			var echo []byte
			buf := make([]byte, 64<<10)
			l.run(t, 10*time.Minute, func() bool {
				if sent < len(data) {
					sent += c.tryWrite(data[sent:])
				}
				n := s.tryRead(buf)
				for i := 0; i < n; i++ {
					if buf[i] != data[srvGot+i] {
						t.Fatalf("server stream corrupt at %d", srvGot+i)
					}
				}
				srvGot += n
				echo = append(echo, buf[:n]...)
				if len(echo) > 0 {
					k := s.tryWrite(echo)
					echo = append(echo[:0], echo[k:]...)
				}
				n = c.tryRead(buf)
				for i := 0; i < n; i++ {
					if buf[i] != data[got+i] {
						t.Fatalf("echo corrupt at %d", got+i)
					}
				}
				got += n
				return got == len(data)
			})
		})
	}
}
