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

	// Send sequence space (RFC 9293 §3.3.1). sndNxt is also the highest
	// sequence sent: retransmissions are tracked by the scoreboard.
	// (Fields are grouped by size within each part: a smaller Conn is
	// what an idle connection costs.)
	sndWscale           uint8 // shift applied to the peer's window field
	rcvWscale           uint8 // shift we apply to ours
	cwndLimited         bool  // tcp_cwnd_validate's is_cwnd_limited
	sndBufLocked        bool
	finQueued           bool // CloseWrite/Close: a FIN follows the data
	finSent             bool
	iss, sndUna, sndNxt seqnum
	sndWl1, sndWl2      seqnum
	sndBufSeq           seqnum // sequence number of snd offset 0
	finSeq              seqnum // sequence number of our FIN once sent
	sndWnd              int    // peer's window, scaled
	maxSndWnd           int
	mss                 int // effective send MSS (payload bytes, options excluded)
	advMSS              int // MSS we announced
	peerMSS             int
	pmtuMSS             int  // from ICMP fragmentation-needed, 0: none
	snd                 ring // unacked+unsent data from sndBufSeq
	sndBufMax           int  // send buffer limit (tcp_wmem, auto-grown)

	// Receive sequence space.
	irs, rcvNxt  seqnum
	rcvWup       seqnum // rcvNxt when we last sent a window (Linux rcv_wup)
	rcvEdge      seqnum // right edge of the last advertised window (never shrinks)
	peerFinSeq   seqnum
	rcvBufLocked bool
	peerFin      bool // FIN received (maybe out of order)
	finRcvd      bool // FIN processed in order: reads end with EOF
	rcvShutdown  bool // CloseRead or Close: no more reads
	rcv          ring
	rcvBufMax    int
	ofo          ofoState // out-of-order data and the SACK blocks reporting it (ofo.go)
	rcvMss       int      // largest segment seen (Linux icsk_ack.rcv_mss)
	rcvSpace     rcvSpace

	// Options negotiated on the handshake (RFC 7323, RFC 2018).
	tsOff              uint32
	tsRecent           uint32
	tsOn, sackOn, wsOn bool
	rttTiming          bool // (RTT) an RTT sample is being timed from rttSeq
	tsRecentStamp      stamp
	lastOOWAck         stamp // last out-of-window reply (tp->last_oow_ack_time)

	// RTT and RTO (RFC 6298 in Linux's form: tcp_rtt_estimator).
	srtt, rttvar, rto time.Duration
	mdev, mdevMax     time.Duration // Linux mdev_us, mdev_max_us
	minRTT            time.Duration // rttMin's current minimum, 0: no sample yet
	rttMin            minmax
	rttSeq            seqnum // snd_nxt when mdevMax last reset (rtt_seq)
	rttStart          stamp
	backoff           int
	retransStamp      stamp // first retransmission of the episode (Linux retrans_stamp)
	totalRetrans      int
	retransmits       int // RTOs since the last progress (icsk_retransmits)
	synRetries        int32
	kaProbes          int32 // keepalive probes before giving up (TCP_KEEPCNT)
	probesOut         int

	// Congestion control, the scoreboard and loss recovery (ack.go,
	// scoreboard.go, sacktag.go, rack.go, prr.go, recovery.go, undo.go).
	// cc works in place on cong, which holds cwnd and ssthresh (segments).
	cc            congestion.Algorithm
	cong          *congestion.Sender
	priorCwnd     uint32 // cwnd when the reduction began (PRR, undo)
	priorSsthresh uint32 // ssthresh to restore on undo, 0: none
	rtxTSval      uint32 // TSval of the episode's first retransmission (Eifel)
	ca            caState
	undoMarkerOK  bool // undoMarker is set (Linux undo_marker != 0)
	frto          bool // F-RTO is judging an RTO (RFC 5682)
	isSackReneg   bool
	tlpOut        bool   // a probe is outstanding (Linux tlp_high_seq != 0)
	tlpRetrans    bool   // the probe was a retransmission
	highSeq       seqnum // snd_nxt when recovery or the reduction began (high_seq)
	undoMarker    seqnum // snd_una when the episode began
	tlpHigh       seqnum
	cwndUsageSeq  seqnum // end of the window cwndLimited describes
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

	// Delayed ACK (Linux icsk_ack).
	ackPending   bool
	pingpong     bool // interactive: ACKs wait to ride on data (ICSK_ACK pingpong)
	ackNow       bool
	errSoft      uint8 // sk_err_soft: the last ICMP error (an errno) of a connection that goes on
	quickAcks    int
	unackedBytes int

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

	rdWait, wrWait sockwait.Waiter
	rdDL, wrDL     sockwait.LazyDeadline
	addrs          atomic.Pointer[connAddrs] // made on first use (connAddrs)
	// estWait is closed once the handshake of an active open ends (either
	// way); passive opens never wait on it and leave it nil.
	estWait chan struct{}
}

// rcvSpace is Linux's receive-buffer auto-tuning state (tcp_rcv_space_adjust).
type rcvSpace struct {
	seq    seqnum // copied_seq at the start of the measurement
	copied seqnum // bytes the application has read, as a sequence number
	time   stamp
	space  int
}

func (c *Conn) notifyAll() {
	c.rdWait.Wake()
	c.wrWait.Wake()
}

func (c *Conn) notifyRead() { c.rdWait.Wake() }

func (c *Conn) notifyWrite() { c.wrWait.Wake() }
