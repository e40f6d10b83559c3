package congestion_test

import (
	"fmt"
	"time"

	"github.com/tapstack/tapstack/tcp/congestion"
)

// A connection drives its algorithm from the ACK path and the loss path.
func Example() {
	cc, err := congestion.New("cubic")
	if err != nil {
		panic(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := congestion.Sender{Cwnd: 10, MSS: 1460, Now: now}
	cc.Init(&s)

	// One RTT of ACKs in slow start doubles the window.
	for range 10 {
		s.Now = s.Now.Add(time.Millisecond)
		s.PacketsOut = s.Cwnd - 1
		s.CwndLimited = true
		cc.PktsAcked(&s, 1, 20*time.Millisecond)
		cc.CongAvoid(&s, 1)
	}
	fmt.Println("after one RTT:", s.Cwnd)

	// Fast retransmit: CUBIC keeps 70% of the window.
	s.Ssthresh = cc.SsThresh(&s)
	cc.SetState(&s, congestion.Recovery)
	s.Cwnd = s.Ssthresh
	fmt.Println("after loss:", s.Cwnd, s.Ssthresh)

	// The loss proved spurious (e.g. DSACK): undo.
	s.Cwnd = cc.UndoCwnd(&s)
	fmt.Println("after undo:", s.Cwnd)
	// Output:
	// after one RTT: 20
	// after loss: 14 14
	// after undo: 20
}

func ExampleNames() {
	fmt.Println(congestion.Names())
	// Output: [cubic reno]
}
