package tcp

import "github.com/tapstack/tapstack/tcp/congestion"

const (
	initCwnd         = 10 // TCP_INIT_CWND
	infiniteSsthresh = congestion.InfiniteSsthresh
)

// newCongestionControl is a fresh instance of the algorithm the sysctl
// names. The sysctl accepts only names congestion.New knows; the default
// covers a Sysctls value set without that check.
func (s *Stack) newCongestionControl() congestion.Algorithm {
	alg, err := congestion.NewWithCounters(s.sys.congestionControl(), &s.hystart)
	if err != nil {
		alg, _ = congestion.NewWithCounters(congestion.Default, &s.hystart)
	}
	return alg
}

// ccSender is the connection's congestion state as the algorithm's hooks read
// it: the window lives there (Linux's snd_cwnd and snd_ssthresh in
// tcp_sock); what Linux's ops read live from the socket, the time and
// packets_out, is brought up to date for this event.
func (c *Conn) ccSender() *congestion.Sender {
	s := c.rec.cong
	s.Now = c.s.clock.Now()
	s.PacketsOut = uint32(c.rec.sb.packetsOut)
	return s
}
