package tcp

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"

	"github.com/tapstack/tapstack/wire"
)

// fwdKey is where the forwarder's listener sits in Stack.listeners: no
// Listen binds it (port 0 picks an ephemeral port), and a segment reaches
// it only when no listener holds its address and port.
var fwdKey = netip.AddrPortFrom(netip.IPv4Unspecified(), 0)

// Forwarder accepts connections to any address and port that no listener
// holds: what a transparent proxy, a VPN or tun2socks needs from a
// userspace stack (gVisor's tcp.Forwarder; Linux's TPROXY listener). The
// IP layer must deliver those destinations, e.g. with a local route
// (stack.AddLocalRoute, `ip route add local 10.99.0.0/16 dev lo`).
//
// It is a listener under the hood, with the same listen path: each SYN is a
// request sock on its SYN queue, bounded by maxInFlight as listen(2)'s
// backlog bounds a listener's (tcp_conn_request: past it SYNs are dropped,
// TcpExtListenDrops and TCPReqQFullDrop, or answered with syncookies under
// net.ipv4.tcp_syncookies), with the same counters, and ss lists it as a
// LISTEN socket on 0.0.0.0:0 with its requests in SYN-RECV.
//
// What differs is who answers the SYN: the handler, run on a goroutine of
// its own for each request with the original 4-tuple, decides before the
// peer sees anything — Accept sends the SYN-ACK and returns the
// connection, Reset refuses, Drop stays silent — so a proxy can first try
// the real destination. A request the handler leaves undecided expires
// after the time the SYN-ACK retransmissions would have taken
// (net.ipv4.tcp_synack_retries) and still counts against maxInFlight until
// then. A connection a syncookie completes (the queue was full) is handed
// to the handler already established.
type Forwarder struct {
	l       *Listener
	handler func(*ForwarderRequest)
	orphans int // undecided requests no longer on the SYN queue (guarded by l.mu)
}

// NewForwarder installs the stack's forwarder (one per stack; a second is
// EADDRINUSE). maxInFlight ≥ 1 bounds the handshakes in progress.
func (s *Stack) NewForwarder(maxInFlight int, handler func(*ForwarderRequest)) (*Forwarder, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "listen", Net: "tcp", Addr: net.TCPAddrFromAddrPort(fwdKey), Err: err}
	}
	if maxInFlight < 1 || handler == nil {
		return nil, opErr(os.NewSyscallError("listen", syscall.EINVAL))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, opErr(net.ErrClosed)
	}
	if len(s.listeners[fwdKey]) > 0 {
		return nil, opErr(os.NewSyscallError("bind", syscall.EADDRINUSE))
	}
	f := &Forwarder{handler: handler}
	l := &Listener{s: s, addr: fwdKey, synq: make(map[tuple]*reqSock), closeCh: make(chan struct{}), fwd: f}
	l.incomingCPU.Store(-1)
	l.backlog = maxInFlight
	f.l = l
	s.listeners[fwdKey] = []*Listener{l}
	return f, nil
}

// InFlight is the number of handshakes in progress: requests awaiting the
// handler's decision or the peer's ACK (the SYN queue), and requests whose
// handler has not yet answered although they ended (expired, reset by the
// peer): it never passes maxInFlight, nor do the handlers deciding.
func (f *Forwarder) InFlight() int {
	f.l.mu.Lock()
	defer f.l.mu.Unlock()
	return f.l.inFlightLocked()
}

// Close removes the forwarder: connections no listener holds are reset
// again, pending requests are dropped and their Accept calls return
// net.ErrClosed. Connections already accepted go on.
func (f *Forwarder) Close() error { return f.l.Close() }

// ForwarderRequest is one connection attempt for the forwarder's handler.
type ForwarderRequest struct {
	l          *Listener
	key        tuple
	decided    bool  // Accept, Reset or Drop was called (guarded by l.mu)
	orphaned   bool  // ended before the decision: counted in Forwarder.orphans
	child      *Conn // the established connection, once there is one
	err        error // why no connection came, once that is known
	done       chan struct{}
	doneClosed bool
}

// ID returns the connection's original destination (local, as the peer
// addressed it) and its source (remote).
func (r *ForwarderRequest) ID() (local, remote netip.AddrPort) { return r.key.local, r.key.remote }

var errDecided = errors.New("tcp: forwarder request already decided")

// finishLocked records the outcome and wakes Accept; caller holds r.l.mu.
func (r *ForwarderRequest) finishLocked(c *Conn, err error) {
	if r.doneClosed {
		return
	}
	r.child, r.err, r.doneClosed = c, err, true
	close(r.done)
	if err != nil && !r.decided && !r.l.closed {
		r.orphaned = true
		r.l.fwd.orphans++
	}
}

// decideLocked marks the handler's answer; caller holds r.l.mu.
func (r *ForwarderRequest) decideLocked() {
	r.decided = true
	if r.orphaned {
		r.orphaned = false
		r.l.fwd.orphans--
	}
}

// Accept answers the SYN with a SYN-ACK and waits for the handshake: it
// returns the established connection (its LocalAddr is the destination the
// peer dialled), or the error that ended the attempt — ECONNRESET if the
// peer reset it, ETIMEDOUT after the SYN-ACK retransmissions, net.ErrClosed
// if the forwarder closed.
func (r *ForwarderRequest) Accept() (*Conn, error) {
	l := r.l
	var out outBatch
	l.mu.Lock()
	if r.decided {
		l.mu.Unlock()
		return nil, errDecided
	}
	r.decideLocked()
	if rq := l.synq[r.key]; rq != nil && rq.fr == r && rq.pending {
		rq.pending = false
		l.sendSynAck(rq, &out, false)
		rq.timer.Reset(initRTO)
	}
	l.mu.Unlock()
	l.s.flush(&out)
	select {
	case <-r.done:
	case <-l.closeCh:
		l.mu.Lock()
		r.finishLocked(nil, net.ErrClosed)
		l.mu.Unlock()
	}
	if r.err != nil {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Source: net.TCPAddrFromAddrPort(r.key.local),
			Addr: net.TCPAddrFromAddrPort(r.key.remote), Err: r.err}
	}
	return r.child, nil
}

// Reset refuses the connection: the peer gets a RST (connection refused),
// as from a port nobody listens on. An established connection (a syncookie
// completed it) is reset.
func (r *ForwarderRequest) Reset() { r.refuse(true) }

// Drop discards the request without a word: the peer's SYN retransmissions
// go unanswered (each finds a new request), as behind a firewall's DROP.
func (r *ForwarderRequest) Drop() { r.refuse(false) }

func (r *ForwarderRequest) refuse(rst bool) {
	l := r.l
	var out outBatch
	l.mu.Lock()
	if r.decided {
		l.mu.Unlock()
		return
	}
	r.decideLocked()
	child := r.child
	if rq := l.synq[r.key]; rq != nil && rq.fr == r {
		l.dropReq(rq)
		if rst {
			// tcp_v4_send_reset for a SYN: RST|ACK of the SYN's sequence.
			f := wire.TCPFields{SrcPort: r.key.local.Port(), DstPort: r.key.remote.Port(),
				Ack: uint32(rq.irs + 1), Flags: wire.TCPFlagRST | wire.TCPFlagACK}
			l.s.sendBare(r.key.local.Addr(), r.key.remote.Addr(), &f, nil, &out)
			l.s.mib.inc(cOutRsts)
		}
	}
	r.finishLocked(nil, syscall.ECONNREFUSED)
	l.mu.Unlock()
	l.s.flush(&out)
	if child != nil {
		child.lockSock()
		child.closed = true
		if child.state != StateClose {
			if rst {
				child.sendRst(&out)
			}
			child.done()
		}
		child.releaseSock(&out)
	}
}

// fwdRequest starts the handler for a new request; caller holds l.mu.
// child is the connection when a syncookie completed it already.
func (l *Listener) fwdRequest(key tuple, child *Conn) *ForwarderRequest {
	r := &ForwarderRequest{l: l, key: key, done: make(chan struct{})}
	if child != nil {
		r.finishLocked(child, nil)
	}
	go l.fwd.handler(r)
	return r
}
