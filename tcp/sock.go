package tcp

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapstack/tapstack/internal/clock"
	"github.com/tapstack/tapstack/internal/sockwait"
	"github.com/tapstack/tapstack/tcp/congestion"
)

// tuple identifies a connection: our address and port, then the peer's.
type tuple struct{ local, remote netip.AddrPort }

// caState is the sender's loss-recovery state (Linux tcp_ca_state).
type caState uint8

const (
	caOpen caState = iota
	caDisorder
	caCWR
	caRecovery
	caLoss
)

// Conn is a TCP connection. It implements net.Conn. All fields below mu are
// guarded by mu; input (shard goroutines), timers and the API all take it,
// and none holds it while calling the Network.
type Conn struct {
	s  *Stack
	id tuple

	mu    sync.Mutex
	sl    sockLock // ownership by user calls and the socket backlog (sockbacklog.go)
	state State

	snd sndState // send sequence space and buffer
	rcv rcvState // receive sequence space, buffer and delayed ACK
	rtt rttState // RTT estimate, RTO and its backoff
	rec recState // congestion control, the scoreboard and loss recovery

	// Options negotiated on the handshake (RFC 7323, RFC 2018).
	tsOff              uint32
	tsRecent           uint32
	tsOn, sackOn, wsOn bool
	errSoft            uint8        // sk_err_soft: the last ICMP error (an errno) of a connection that goes on
	incomingCPU        atomic.Int32 // shard of the last segment taken (sk_incoming_cpu), -1: none
	tsRecentStamp      stamp
	lastOOWAck         stamp // last out-of-window reply (tp->last_oow_ack_time)
	synRetries         int32
	kaProbes           int32 // keepalive probes before giving up (TCP_KEEPCNT)
	probesOut          int   // unanswered zero-window or keepalive probes (icsk_probes_out)

	// One timer multiplexes every deadline of the connection.
	timer     clock.Timer
	timerAt   stamp
	rtoAt     stamp
	delackAt  stamp
	keepAt    stamp
	persistAt stamp
	tlpAt     stamp // tail loss probe (RFC 8985)
	reoAt     stamp // RACK reordering timer (ICSK_TIME_REO_TIMEOUT)
	twAt      stamp // TIME_WAIT or FIN_WAIT2 (orphan) expiry
	lastRecv  stamp
	lastSend  stamp // last new data sent (Linux lsndtime)

	// User-facing state.
	err        error // pending hard error (ECONNRESET, ETIMEDOUT, ECONNREFUSED)
	closed     bool  // Close called: orphan
	wrShutdown bool
	noDelay    bool
	keepalive  bool
	inTable    bool
	twCounted  bool
	orphan     bool // closed by the user but still running (counted in Stack.orphans)
	kaIdle     time.Duration
	kaIntvl    time.Duration
	linger     time.Duration // <0: off
	listener   *Listener     // set while in the accept queue

	tx txQueue // segments built under mu, sent in order after it

	w     sockwait.Waits            // readers and writers sleep here; the deadlines
	addrs atomic.Pointer[connAddrs] // made on first use (connAddrs)
	// estWait is closed once the handshake of an active open ends (either
	// way); passive opens never wait on it and leave it nil.
	estWait chan struct{}
}

// sndState is the send half of a connection (RFC 9293 §3.3.1 send
// sequence space; gVisor's sender). nxt is also the highest sequence sent:
// retransmissions are tracked by the scoreboard. Within each sub-struct
// fields are grouped by size: a smaller Conn is what an idle connection
// costs (size_test.go).
type sndState struct {
	wscale    uint8 // shift applied to the peer's window field
	bufLocked bool  // SO_SNDBUF set: no auto-growth (SOCK_SNDBUF_LOCK)
	finQueued bool  // CloseWrite/Close: a FIN follows the data
	finSent   bool
	iss       seqnum
	una, nxt  seqnum
	wl1, wl2  seqnum // segment seq and ack of the last window update
	bufSeq    seqnum // sequence number of buf offset 0
	finSeq    seqnum // sequence number of our FIN once sent
	wnd       int    // peer's window, scaled
	maxWnd    int
	mss       int // effective send MSS (payload bytes, options excluded)
	peerMSS   int
	pmtuMSS   int  // from ICMP fragmentation-needed, 0: none
	buf       ring // unacked+unsent data from bufSeq
	bufMax    int  // send buffer limit (tcp_wmem, auto-grown)
}

// rcvState is the receive half: the receive sequence space, the buffer
// and its auto-tuning, out-of-order data and the delayed ACK (Linux
// icsk_ack; gVisor's receiver).
type rcvState struct {
	wscale       uint8 // shift we apply to our window
	bufLocked    bool  // SO_RCVBUF set (SOCK_RCVBUF_LOCK)
	peerFin      bool  // FIN received (maybe out of order)
	finRcvd      bool  // FIN processed in order: reads end with EOF
	shutdown     bool  // CloseRead or Close: no more reads
	ackPending   bool
	pingpong     bool // interactive: ACKs wait to ride on data (ICSK_ACK pingpong)
	ackNow       bool
	irs, nxt     seqnum
	wup          seqnum // nxt when we last sent a window (Linux rcv_wup)
	edge         seqnum // right edge of the last advertised window (never shrinks)
	finSeq       seqnum // sequence number of the peer's FIN
	advMSS       int    // MSS we announced
	mss          int    // largest segment seen (Linux icsk_ack.rcv_mss)
	quickAcks    int
	unackedBytes int
	buf          ring
	bufMax       int
	ofo          ofoState // out-of-order data and the SACK blocks reporting it (ofo.go)
	space        rcvSpace
}

// rttState is the RTT estimator and the retransmission timer's state
// (RFC 6298 in Linux's form: tcp_rtt_estimator, icsk_backoff).
type rttState struct {
	timing            bool   // an RTT sample is being timed from start (no timestamps)
	seq               seqnum // snd.nxt when mdevMax last reset (rtt_seq)
	srtt, rttvar, rto time.Duration
	mdev, mdevMax     time.Duration // Linux mdev_us, mdev_max_us
	minRTT            time.Duration // min's current minimum, 0: no sample yet
	min               minmax
	start             stamp
	backoff           int
	retransmits       int   // RTOs since the last progress (icsk_retransmits)
	retransStamp      stamp // first retransmission of the episode (Linux retrans_stamp)
}

// recState is congestion control, the scoreboard and loss recovery (ack.go,
// scoreboard.go, sacktag.go, rack.go, prr.go, recovery.go, undo.go). cc
// works in place on cong, which holds cwnd and ssthresh (segments).
type recState struct {
	ca            caState
	undoMarkerOK  bool // undoMarker is set (Linux undo_marker != 0)
	frto          bool // F-RTO is judging an RTO (RFC 5682)
	isSackReneg   bool
	tlpOut        bool   // a probe is outstanding (Linux tlp_high_seq != 0)
	tlpRetrans    bool   // the probe was a retransmission
	cwndLimited   bool   // tcp_cwnd_validate's is_cwnd_limited
	priorCwnd     uint32 // cwnd when the reduction began (PRR, undo)
	priorSsthresh uint32 // ssthresh to restore on undo, 0: none
	rtxTSval      uint32 // TSval of the episode's first retransmission (Eifel)
	highSeq       seqnum // snd.nxt when recovery or the reduction began (high_seq)
	undoMarker    seqnum // snd.una when the episode began
	tlpHigh       seqnum
	cwndUsageSeq  seqnum // end of the window cwndLimited describes
	cc            congestion.Algorithm
	cong          *congestion.Sender
	sb            scoreboard
	rack          rackState
	reordering    int // tolerated reordering in segments (tp->reordering)
	reordSeen     int // reordering events seen (tp->reord_seen)
	undoRetrans   int // retransmissions of the episode not yet D-SACKed, -1: none
	prrDelivered  int
	prrOut        int
	maxPacketsOut int
	dsackDups     int // segments D-SACKed (tp->dsack_dups)
	lostTotal     int // segments ever marked lost (tp->lost)
	totalRetrans  int
}

// rcvSpace is Linux's receive-buffer auto-tuning state (tcp_rcv_space_adjust).
type rcvSpace struct {
	seq    seqnum // copied_seq at the start of the measurement
	copied seqnum // bytes the application has read, as a sequence number
	time   stamp
	space  int
}

func (c *Conn) notifyAll() {
	c.w.Wake()
}

func (c *Conn) notifyRead() { c.w.Rd.Wake() }

func (c *Conn) notifyWrite() { c.w.Wr.Wake() }
