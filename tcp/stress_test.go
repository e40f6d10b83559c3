package tcp

import (
	"fmt"
	"testing"
	"time"
)

// TestStressSeeds runs bidirectional transfers over many seeded lossy,
// reordering, duplicating links, with and without SACK.
func TestStressSeeds(t *testing.T) {
	n := stressSeeds
	if testing.Short() {
		n = 3
	}
	for seed := int64(1); seed <= int64(n); seed++ {
		for _, sack := range []int64{0, 1} {
			t.Run(fmt.Sprintf("seed%d-sack%d", seed, sack), func(t *testing.T) {
				l := newTestLink(seed * 101)
				mod := func(s *Sysctls) { s.Sack.Store(sack) }
				a, b := l.newStack(addrA, mod), l.newStack(addrB, mod)
				c, s := l.pair(t, a, b)
				l.loss, l.jitter, l.dup = stressLoss, 3*time.Millisecond, 0.01
				transfer(t, l, c, s, 512<<10, 10*time.Minute)
				transfer(t, l, s, c, 512<<10, 10*time.Minute)
				c.Close()
				s.Close()
				l.run(t, 10*time.Minute, func() bool {
					return (c.State() == StateClose || c.State() == StateTimeWait) && (s.State() == StateClose || s.State() == StateTimeWait)
				})
			})
		}
	}
}

var stressLoss, stressSeeds = 0.05, 12
