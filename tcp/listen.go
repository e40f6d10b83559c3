package tcp

import (
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tapstack/tapstack/internal/sockwait"
)

// Listener is a listening socket (Linux inet_connection_sock in LISTEN):
// a SYN queue of request socks and an accept queue of established
// children. It implements net.Listener.
type Listener struct {
	s         *Stack
	addr      netip.AddrPort
	reusePort bool // SO_REUSEPORT: one of a group sharing addr
	v6only    bool // IPV6_V6ONLY on a [::] listener
	// incomingCPU is SO_INCOMING_CPU (sk_incoming_cpu), -1: unset. In a
	// reuseport group the member whose value is the shard that received a
	// SYN takes that connection.
	incomingCPU atomic.Int32

	mu           sync.Mutex
	backlog      int // sk_max_ack_backlog
	synq         map[tuple]*reqSock
	young        int // requests never retransmitted (reqsk_queue_len_young)
	acceptq      []*Conn
	deferRounds  int // TCP_DEFER_ACCEPT in SYN-ACK retransmission rounds
	lastOverflow time.Time
	closed       bool

	wait    sockwait.Waiter
	closeCh chan struct{}
	dl      sockwait.Deadline
	fwd     *Forwarder // set on the forwarder's listener (forwarder.go)
}

// ListenOptions are the socket options a listener takes before listen(2).
type ListenOptions struct {
	// ReusePort is SO_REUSEPORT: listeners that all set it may share an
	// address and port. Each keeps its own SYN queue, accept queue and
	// backlog; a new connection goes to the one its flow hash picks
	// (reuseport_select_sock), so its handshake, syncookie ACK included,
	// stays with that listener. Joining an address held without it, or
	// holding one without it that a group holds, is EADDRINUSE.
	ReusePort bool
	// V6Only is IPV6_V6ONLY: a listener on [::] takes IPv6 connections
	// only. Without it (Linux's default, net.ipv6.bindv6only=0) it is
	// dual-stack and takes IPv4 ones too, for which no IPv4 listener holds
	// the port; their addresses are plain IPv4, as Go's net shows them.
	V6Only bool
}

// Listen opens a listener on laddr (port 0: an ephemeral port). backlog
// is clamped to net.core.somaxconn like Linux __sys_listen.
func (s *Stack) Listen(laddr netip.AddrPort, backlog int) (*Listener, error) {
	return s.ListenOpts(laddr, backlog, ListenOptions{})
}

// ListenOpts is Listen with socket options.
func (s *Stack) ListenOpts(laddr netip.AddrPort, backlog int, o ListenOptions) (*Listener, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "listen", Net: "tcp", Addr: net.TCPAddrFromAddrPort(laddr), Err: err}
	}
	if !laddr.Addr().IsValid() {
		laddr = netip.AddrPortFrom(netip.IPv4Unspecified(), laddr.Port())
	}
	laddr = netip.AddrPortFrom(laddr.Addr().Unmap(), laddr.Port())
	if o.V6Only && laddr.Addr().Is4() {
		return nil, opErr(os.NewSyscallError("setsockopt", syscall.ENOPROTOOPT)) // IPV6_V6ONLY on AF_INET
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, opErr(net.ErrClosed)
	}
	if laddr.Port() == 0 {
		p, ok := s.pickPort(laddr.Addr(), netip.AddrPort{})
		if !ok {
			return nil, opErr(os.NewSyscallError("listen", syscall.EADDRINUSE))
		}
		laddr = netip.AddrPortFrom(laddr.Addr(), p)
	}
	g := s.listeners[laddr]
	if len(g) > 0 && (!o.ReusePort || !g[0].reusePort) {
		return nil, opErr(os.NewSyscallError("bind", syscall.EADDRINUSE))
	}
	l := &Listener{s: s, addr: laddr, reusePort: o.ReusePort, v6only: o.V6Only, synq: make(map[tuple]*reqSock),
		closeCh: make(chan struct{})}
	l.incomingCPU.Store(-1)
	l.backlog = s.clampBacklog(backlog)
	s.listeners[laddr] = append(g[:len(g):len(g)], l)
	return l, nil
}

// clampBacklog mirrors __sys_listen: (unsigned)backlog > somaxconn → somaxconn.
func (s *Stack) clampBacklog(n int) int {
	som := int(s.sys.Somaxconn.Load())
	if n < 0 || n > som {
		return som
	}
	return n
}

// SetBacklog changes sk_max_ack_backlog, as calling listen(2) again does.
func (l *Listener) SetBacklog(n int) {
	l.mu.Lock()
	l.backlog = l.s.clampBacklog(n)
	l.mu.Unlock()
}

// SetIncomingCPU is SO_INCOMING_CPU: in an SO_REUSEPORT group, a new
// connection whose segments the device's shard cpu receives goes to a
// member that set cpu (reuseport_select_sock_by_hash looks for one from the
// hashed member on), so its handshake, its accept and — with one accept
// loop per member — its first reads run beside that shard, as nginx's
// per-worker reuseport listeners do with one per RX queue. Other flows are
// spread by hash as before; a negative cpu unsets it. Shards are numbered
// from 0 (netdev.Device.Shards; stack.Stack.Softnet lists them).
func (l *Listener) SetIncomingCPU(cpu int) {
	l.incomingCPU.Store(int32(max(cpu, -1)))
}

// IncomingCPU is getsockopt(SO_INCOMING_CPU): the value set, -1 if none.
func (l *Listener) IncomingCPU() int { return int(l.incomingCPU.Load()) }

// SetDeferAccept is TCP_DEFER_ACCEPT: a handshake completes only when data
// arrives (or after d, on the last SYN-ACK retransmission). d is converted
// to SYN-ACK retransmission rounds like Linux secs_to_retrans.
func (l *Listener) SetDeferAccept(d time.Duration) {
	secs := int((d + time.Second - 1) / time.Second)
	rounds := 0
	if secs > 0 {
		timeout, period := 1, 1
		rounds = 1
		for secs > period && rounds < 255 {
			rounds++
			timeout = min(timeout<<1, int(maxRTO/time.Second))
			period += timeout
		}
	}
	l.mu.Lock()
	l.deferRounds = rounds
	l.mu.Unlock()
}

// QueueLens returns the SYN queue and accept queue lengths.
func (l *Listener) QueueLens() (synq, acceptq int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.synq), len(l.acceptq)
}

// Addr implements net.Listener.
func (l *Listener) Addr() net.Addr { return net.TCPAddrFromAddrPort(l.addr) }

// AddrPort returns the listening address.
func (l *Listener) AddrPort() netip.AddrPort { return l.addr }

// SetDeadline sets the Accept deadline.
func (l *Listener) SetDeadline(t time.Time) error {
	l.dl.Set(l.s.clock, t, &l.wait)
	return nil
}

// Accept implements net.Listener.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AcceptTCP waits for and returns the next established connection.
func (l *Listener) AcceptTCP() (*Conn, error) {
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: net.ErrClosed}
		}
		if len(l.acceptq) > 0 {
			c := l.acceptq[0]
			l.acceptq[0] = nil
			l.acceptq = l.acceptq[1:]
			more := len(l.acceptq) > 0
			l.mu.Unlock()
			if more {
				l.notify()
			}
			c.lockSock()
			c.listener = nil
			c.release()
			return c, nil
		}
		l.mu.Unlock()
		if l.dl.Passed() {
			l.notify() // chain the wake-up to other acceptors
			return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.ErrDeadlineExceeded}
		}
		select {
		case <-l.wait.Get():
		case <-l.closeCh:
		}
	}
}

func (l *Listener) notify() { l.wait.Wake() }

// Close stops listening: pending requests are dropped and connections
// never accepted are reset (Linux inet_csk_listen_stop). A member of a
// reuseport group with net.ipv4.tcp_migrate_req set hands them to the
// siblings instead (TCPMigrateReqSuccess).
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return &net.OpError{Op: "close", Net: "tcp", Addr: l.Addr(), Err: net.ErrClosed}
	}
	l.closed = true
	close(l.closeCh)
	reqs := l.synq
	l.synq = make(map[tuple]*reqSock)
	l.young = 0
	q := l.acceptq
	l.acceptq = nil
	l.mu.Unlock()
	s := l.s
	s.mu.Lock()
	var siblings []*Listener
	for _, m := range s.listeners[l.addr] {
		if m != l {
			siblings = append(siblings, m)
		}
	}
	if len(siblings) == 0 {
		delete(s.listeners, l.addr)
	} else {
		s.listeners[l.addr] = siblings
	}
	s.mu.Unlock()
	if l.reusePort && s.sys.MigrateReq.Load() != 0 {
		// inet_csk_listen_stop with tcp_migrate_req: what this listener
		// held goes to the sibling its flow hash picks among those left.
		reqs, q = l.migrate(siblings, reqs, q)
	}
	for _, r := range reqs {
		r.timer.Stop()
		if r.fr != nil {
			l.mu.Lock()
			r.fr.finishLocked(nil, net.ErrClosed)
			l.mu.Unlock()
		}
	}
	for _, c := range q {
		var out outBatch
		c.lockSock()
		c.listener = nil
		if c.state != StateClose {
			c.closed = true
			c.sendRst(&out)
			c.done()
		}
		c.releaseSock(&out)
	}
	l.dl.Stop()
	return nil
}

// migrate hands the closing listener's requests and unaccepted children
// to siblings (reuseport_migrate_sock, inet_reqsk_clone): a request is
// cloned onto the sibling's SYN queue with a fresh SYN-ACK timer, a child
// joins the sibling's accept queue. What finds no sibling is returned, to
// be dropped and reset as without migration (TCPMigrateReqFailure).
func (l *Listener) migrate(siblings []*Listener, reqs map[tuple]*reqSock, q []*Conn) (map[tuple]*reqSock, []*Conn) {
	s := l.s
	if len(siblings) == 0 {
		s.mib.add(cTCPMigrateReqFailure, uint64(len(reqs)+len(q)))
		return reqs, q
	}
	for k, r := range reqs {
		r.timer.Stop()
		sib := siblings[s.reuseportIndex(k.local, k.remote, len(siblings))]
		nr := *r
		nr.l = sib
		sib.mu.Lock()
		if sib.closed || sib.synq[k] != nil {
			sib.mu.Unlock()
			s.mib.inc(cTCPMigrateReqFailure)
			continue
		}
		sib.synq[k] = &nr
		if nr.numTimeout == 0 {
			sib.young++
		}
		nr.timer = s.clock.AfterFunc(min(initRTO<<nr.numTimeout, maxRTO), nr.onTimer)
		sib.mu.Unlock()
		s.mib.inc(cTCPMigrateReqSuccess)
	}
	var left []*Conn
	for _, c := range q {
		sib := siblings[s.reuseportIndex(c.id.local, c.id.remote, len(siblings))]
		c.lockSock()
		c.listener = sib
		c.release()
		sib.mu.Lock()
		if sib.closed {
			sib.mu.Unlock()
			left = append(left, c)
			s.mib.inc(cTCPMigrateReqFailure)
			continue
		}
		sib.acceptq = append(sib.acceptq, c)
		sib.mu.Unlock()
		sib.notify()
		s.mib.inc(cTCPMigrateReqSuccess)
	}
	return nil, left
}

// acceptqFull mirrors sk_acceptq_is_full: sk_ack_backlog > sk_max_ack_backlog.
func (l *Listener) acceptqFull() bool { return len(l.acceptq) > l.backlog }

// synqFull mirrors inet_csk_reqsk_queue_is_full (queue length ≥ backlog).
func (l *Listener) synqFull() bool { return l.inFlightLocked() >= l.backlog }

// inFlightLocked is the SYN queue's length; on a forwarder also the
// requests that left it undecided (their handlers still run, and Accept
// will tell them why), so that no more handlers run than maxInFlight.
func (l *Listener) inFlightLocked() int {
	if l.fwd != nil {
		return len(l.synq) + l.fwd.orphans
	}
	return len(l.synq)
}
