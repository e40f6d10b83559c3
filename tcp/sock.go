package tcp

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapstack/tapstack/internal/clock"
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
	state State

	// Send sequence space (RFC 9293 §3.3.1). sndNxt is also the highest
	// sequence sent: retransmissions are tracked by the scoreboard.
	// (Fields are grouped by size within each part: a smaller Conn is
	// what an idle connection costs.)
	sndWscale           uint8 // shift applied to the peer's window field
	rcvWscale           uint8 // shift we apply to ours
	cwndLimited         bool
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
	tsRecentStamp      time.Time
	lastOOWAck         time.Time // last out-of-window reply (tp->last_oow_ack_time)

	// RTT and RTO (RFC 6298).
	srtt, rttvar, rto time.Duration
	minRTT            time.Duration
	rttSeq            seqnum
	rttStart          time.Time
	backoff           int
	retransStamp      time.Time // first retransmission of the head (Linux retrans_stamp)
	totalRetrans      int
	retransOut        int // retransmissions of the current head (icsk_retransmits)
	synRetries        int
	probesOut         int

	// Congestion control and recovery.
	cc          congestionControl
	cwnd        uint32 // segments
	ssthresh    uint32
	cwndCnt     uint32
	ca          caState
	rtxHeadOK   bool // (see rtxHeadSeq)
	rtxHeadLost bool
	undoOK      bool // (see undoMarker)
	dupAcks     int
	reordering  int    // measured reordering in segments (Linux tp->reordering), 0: default
	recoverSeq  seqnum // snd_nxt when recovery started (RFC 6582 "recover", Linux high_seq)
	highRxt     seqnum // RFC 6675 HighRxt
	lostEnd     seqnum // unSACKed data below this is deemed lost
	sacked      []seqRange
	sackedBytes int
	renoDup     int // NewReno: dupACKs counted as segments that left the network
	// Lost retransmission of the head (Linux tcp_mark_lost_retrans): the
	// head was resent when snd_nxt was rtxHeadNxt; data sent after that
	// being SACKed means the retransmission itself was lost.
	rtxHeadSeq seqnum
	rtxHeadNxt seqnum
	lastRtxNxt seqnum // snd_nxt at the latest retransmission
	// Undo of a spurious reduction (Linux undo_marker, undo_retrans,
	// prior_cwnd, prior_ssthresh; retrans_stamp as a TSval for Eifel).
	undoMarker    seqnum
	priorCwnd     uint32
	priorSsthresh uint32
	rtxTSval      uint32
	rtxTSvalSet   bool
	eifelUndo     bool // this ACK proves the episode's first retransmission spurious

	// Delayed ACK (Linux icsk_ack).
	ackPending   bool
	pingpong     bool // interactive: ACKs wait to ride on data (ICSK_ACK pingpong)
	ackNow       bool
	undoRetrans  int // (undo, above)
	quickAcks    int
	unackedBytes int

	// One timer multiplexes every deadline of the connection.
	timer     clock.Timer
	timerAt   time.Time
	rtoAt     time.Time
	delackAt  time.Time
	keepAt    time.Time
	persistAt time.Time
	tlpAt     time.Time // tail loss probe (RFC 8985)
	tlpHigh   seqnum
	tlpOut    bool      // a probe is outstanding (Linux tlp_high_seq != 0)
	twAt      time.Time // TIME_WAIT or FIN_WAIT2 (orphan) expiry
	lastRecv  time.Time
	lastSend  time.Time // last new data sent (Linux lsndtime)

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
	kaProbes   int
	linger     time.Duration // <0: off
	listener   *Listener     // set while in the accept queue

	tx txQueue // segments built under mu, sent in order after it

	rdWait, wrWait waiter
	rdDL, wrDL     lazyDeadline
	// estWait is closed once the handshake of an active open ends (either
	// way); passive opens never wait on it and leave it nil.
	estWait chan struct{}
}

// rcvSpace is Linux's receive-buffer auto-tuning state (tcp_rcv_space_adjust).
type rcvSpace struct {
	seq    seqnum // copied_seq at the start of the measurement
	copied seqnum // bytes the application has read, as a sequence number
	time   time.Time
	space  int
}

func (c *Conn) notifyAll() {
	c.rdWait.wake()
	c.wrWait.wake()
}

func (c *Conn) notifyRead() { c.rdWait.wake() }

func (c *Conn) notifyWrite() { c.wrWait.wake() }

// waiter is a one-slot wake-up channel made on first use: an idle
// connection that nobody reads or writes never pays for one (96 bytes
// each), the way a Linux socket's wait queue costs nothing until a task
// sleeps on it.
type waiter struct {
	ch atomic.Pointer[chan struct{}]
}

// get returns the channel to sleep on, making it if needed. A wake that
// comes before the channel exists is not lost: the sleeper re-checks its
// condition after get and before sleeping (every caller loops).
func (w *waiter) get() chan struct{} {
	if p := w.ch.Load(); p != nil {
		return *p
	}
	ch := make(chan struct{}, 1)
	if w.ch.CompareAndSwap(nil, &ch) {
		// A wake may have come before the channel existed: make the first
		// sleep a recheck. (A wake since the swap may have filled the slot
		// already, so never block here.)
		select {
		case ch <- struct{}{}:
		default:
		}
		return ch
	}
	return *w.ch.Load()
}

func (w *waiter) wake() {
	if p := w.ch.Load(); p != nil {
		select {
		case *p <- struct{}{}:
		default:
		}
	}
}
