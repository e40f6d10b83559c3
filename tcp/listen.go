package tcp

import (
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/tapstack/tapstack/internal/sockwait"
)

// Listener is a listening socket (Linux inet_connection_sock in LISTEN):
// a SYN queue of request socks and an accept queue of established
// children. It implements net.Listener.
type Listener struct {
	s    *Stack
	addr netip.AddrPort

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
}

// Listen opens a listener on laddr (port 0: an ephemeral port). backlog
// is clamped to net.core.somaxconn like Linux __sys_listen.
func (s *Stack) Listen(laddr netip.AddrPort, backlog int) (*Listener, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "listen", Net: "tcp", Addr: net.TCPAddrFromAddrPort(laddr), Err: err}
	}
	if !laddr.Addr().IsValid() {
		laddr = netip.AddrPortFrom(netip.IPv4Unspecified(), laddr.Port())
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
	if _, ok := s.listeners[laddr]; ok {
		return nil, opErr(os.NewSyscallError("bind", syscall.EADDRINUSE))
	}
	l := &Listener{s: s, addr: laddr, synq: make(map[tuple]*reqSock),
		closeCh: make(chan struct{})}
	l.backlog = s.clampBacklog(backlog)
	s.listeners[laddr] = l
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
// never accepted are reset (Linux inet_csk_listen_stop).
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return &net.OpError{Op: "close", Net: "tcp", Addr: l.Addr(), Err: net.ErrClosed}
	}
	l.closed = true
	close(l.closeCh)
	for k, r := range l.synq {
		r.timer.Stop()
		delete(l.synq, k)
	}
	l.young = 0
	q := l.acceptq
	l.acceptq = nil
	l.mu.Unlock()
	l.s.mu.Lock()
	if l.s.listeners[l.addr] == l {
		delete(l.s.listeners, l.addr)
	}
	l.s.mu.Unlock()
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

// acceptqFull mirrors sk_acceptq_is_full: sk_ack_backlog > sk_max_ack_backlog.
func (l *Listener) acceptqFull() bool { return len(l.acceptq) > l.backlog }

// synqFull mirrors inet_csk_reqsk_queue_is_full (queue length ≥ backlog).
func (l *Listener) synqFull() bool { return len(l.synq) >= l.backlog }
