package stack

import (
	"bufio"
	"fmt"
	"io"
	"time"
)

// Sockets lists every TCP socket, listeners first (one row for each
// member of an SO_REUSEPORT group), like `ss -tan`: state, addresses,
// queues, timers and, for connections, cwnd, RTT and MSS.
func (s *Stack) Sockets() []SocketInfo { return s.tcp.Sockets() }

// WriteSockets prints Sockets() in the layout of `ss -tanoi`, then
// UDPSockets() as `ss -uanm` prints them: for a LISTEN socket Recv-Q is
// the accept-queue length and Send-Q the backlog; for the others they are
// the unread and the unacknowledged bytes.
func (s *Stack) WriteSockets(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%-11s %-7s %-7s %-22s %-22s %s\n", "State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port", "Process")
	for _, si := range s.Sockets() {
		peer := "*:*"
		if si.Remote.IsValid() && si.Remote.Port() != 0 {
			peer = si.Remote.String()
		}
		fmt.Fprintf(bw, "%-11s %-7d %-7d %-22s %-22s", si.State, si.RecvQ, si.SendQ, si.Local, peer)
		switch {
		case si.State == "LISTEN":
			fmt.Fprintf(bw, " synq:%d", si.SynQueue)
		default:
			if si.Timer != "" {
				fmt.Fprintf(bw, " timer:(%s,%s,%d)", si.Timer, si.TimerLeft.Round(time.Millisecond), si.Retrans)
			}
			if si.MSS > 0 {
				fmt.Fprintf(bw, " mss:%d cwnd:%d ssthresh:%d rtt:%.3f/%.3f", si.MSS, si.Cwnd, si.Ssthresh,
					float64(si.RTT)/float64(time.Millisecond), float64(si.RTTVar)/float64(time.Millisecond))
			}
			if si.Cookie {
				fmt.Fprint(bw, " syncookie")
			}
			if si.SkBacklog > 0 { // skmem's bl: segments waiting for the socket's owner
				fmt.Fprintf(bw, " skmem:(bl%d)", si.SkBacklog)
			}
		}
		fmt.Fprintln(bw)
	}
	// UDP sockets follow, as `ss -uanm` prints them: Recv-Q is the queue's
	// charge against SO_RCVBUF (sk_rmem_alloc), Send-Q what was sent and
	// the link has not written yet (sk_wmem_alloc, against SO_SNDBUF);
	// skmem shows both buffers and the datagrams dropped because the queue
	// was full.
	for _, u := range s.UDPSockets() {
		peer := "*:*"
		if u.Remote.IsValid() {
			peer = u.Remote.String()
		}
		fmt.Fprintf(bw, "%-11s %-7d %-7d %-22s %-22s udp skmem:(r%d,rb%d,t%d,tb%d,d%d)\n", u.State, u.RecvQ, u.SendQ,
			u.Local, peer, u.RecvQ, u.RcvBuf, u.SendQ, u.SndBuf, u.Drops)
	}
	return bw.Flush()
}

// UDPSockets lists every UDP socket by local port, like `ss -uanm`: its
// queues, buffer sizes and drops.
func (s *Stack) UDPSockets() []UDPSocketInfo { return s.udp.Sockets() }
