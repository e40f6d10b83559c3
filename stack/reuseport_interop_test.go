package stack_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/testenv/netnstest"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
	"github.com/tapstack/tapstack/stack"
)

// kernelDials opens n kernel connections from ns to addr (sockets of the
// namespace's kernel: the dial runs on a thread inside it).
func kernelDials(t *testing.T, ns *netnstest.NS, addr string, n int) []net.Conn {
	t.Helper()
	var cs []net.Conn
	err := ns.Do(func() error {
		d := net.Dialer{Deadline: testwait.Deadline(t)}
		for range n {
			c, err := d.Dial("tcp", addr)
			if err != nil {
				return err
			}
			cs = append(cs, c)
		}
		return nil
	})
	t.Cleanup(func() {
		for _, c := range cs {
			c.Close()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// TestInteropReusePortKernelClients: two SO_REUSEPORT listeners share
// 10.0.0.2:80; kernel clients' connections are spread over their accept
// queues by flow hash (ss lists each listener with its own Recv-Q). With
// tcp_migrate_req=1 closing one hands its unaccepted connections to the
// other, where they are accepted and work; with 0, a closing listener
// resets its own and leaves its sibling's alone.
func TestInteropReusePortKernelClients(t *testing.T) {
	ns, st := tapStack(t, map[string]string{"net.ipv4.tcp_migrate_req": "1"})
	lc := &stack.ListenConfig{Stack: st, Backlog: 64, ReusePort: true}
	listen := func() *stack.Listener {
		t.Helper()
		l, err := lc.Listen(context.Background(), "tcp", ":80")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l.(*stack.Listener)
	}
	a, b := listen(), listen()
	if _, err := st.Listen("tcp", ":80"); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("a plain listener on the group's port: %v, want EADDRINUSE", err)
	}
	const n = 32
	clients := kernelDials(t, ns, "10.0.0.2:80", n)
	queues := func() (int, int) {
		_, qa := a.QueueLens()
		_, qb := b.QueueLens()
		return qa, qb
	}
	testwait.Until(t, "every connection in an accept queue", func() bool {
		qa, qb := queues()
		return qa+qb == n
	})
	qa, qb := queues()
	if qa == 0 || qb == 0 {
		t.Fatalf("accept queues %d and %d: the flow hash sent all %d connections to one listener", qa, qb, n)
	}
	listed := 0
	for _, si := range st.Sockets() {
		if si.State == "LISTEN" && si.Local.Port() == 80 {
			if si.RecvQ != qa && si.RecvQ != qb {
				t.Errorf("ss: a listener with Recv-Q %d, want %d or %d", si.RecvQ, qa, qb)
			}
			listed++
		}
	}
	if listed != 2 {
		t.Fatalf("ss lists %d listeners on :80, want 2", listed)
	}

	// Migration: a closes, b takes its connections.
	a.Close()
	if _, q := b.QueueLens(); q != n {
		t.Fatalf("after a closed with tcp_migrate_req=1: b's accept queue %d, want %d", q, n)
	}
	if got := counter(t, st, "TcpExtTCPMigrateReqSuccess"); got != uint64(qa) {
		t.Fatalf("TCPMigrateReqSuccess %d, want %d", got, qa)
	}
	echo := func(c net.Conn) {
		defer c.Close()
		io.Copy(c, c)
	}
	for range n {
		c, err := b.Accept()
		if err != nil {
			t.Fatal(err)
		}
		go echo(c)
	}
	buf := make([]byte, 1)
	for i, c := range clients {
		c.SetDeadline(testwait.Deadline(t))
		if _, err := c.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil || buf[0] != byte(i) {
			t.Fatalf("client %d after migration: %v", i, err)
		}
	}

	// Without migration: c joins b, then closes and resets what it held.
	if err := st.SetSysctl("net.ipv4.tcp_migrate_req", "0"); err != nil {
		t.Fatal(err)
	}
	c := listen()
	more := kernelDials(t, ns, "10.0.0.2:80", n)
	testwait.Until(t, "the new connections queued", func() bool {
		_, qb := b.QueueLens()
		_, qc := c.QueueLens()
		return qb+qc == n
	})
	_, qc := c.QueueLens()
	_, qb = b.QueueLens()
	c.Close()
	// The kernel drops each connection c's reset reaches: wait until only
	// the first n and b's new ones are established; then a read finds
	// ECONNRESET pending on each reset socket at once, and on the others
	// nothing (a deadline just ahead: Go checks one already passed before
	// it reads at all).
	testwait.Until(t, "the kernel to take c's resets", func() bool {
		out, _ := ns.Run("ss", "-Htn", "state", "established", "dport", "=", ":80")
		return strings.Count(out, "\n") == n+qb
	})
	resets, alive := 0, 0
	for _, k := range more {
		k.SetReadDeadline(time.Now().Add(time.Millisecond))
		_, err := k.Read(buf)
		switch {
		case errors.Is(err, syscall.ECONNRESET):
			resets++
		case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
			alive++ // queued on b, nobody has accepted it yet
		default:
			t.Fatalf("a client after c closed: %v", err)
		}
	}
	if resets != qc || alive != qb {
		t.Fatalf("c held %d and b %d: %d clients were reset, %d still connected", qc, qb, resets, alive)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestInteropReusePortIncomingCPU: a two-queue TAP, two shards and one
// SO_REUSEPORT listener per shard, each naming its shard with
// SO_INCOMING_CPU (nginx's per-RX-queue workers). Every kernel connection is
// accepted by the listener of the shard that carries it — its own
// getsockopt(SO_INCOMING_CPU) says which — both listeners get some, and each
// connection echoes.
func TestInteropReusePortIncomingCPU(t *testing.T) {
	ns := netnstest.New(t)
	tap, err := ns.OpenTAP("tap0", 2)
	if err != nil {
		t.Fatal(err)
	}
	st, err := stack.New(stack.Config{Shards: 2})
	if err != nil {
		tap.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Attach(tap, stackAddr); err != nil {
		t.Fatal(err)
	}
	ns.AddrAdd("tap0", kernelAddr.String())
	ns.LinkUp("tap0")
	if st.Shards() != 2 {
		t.Fatalf("Shards() = %d, want 2", st.Shards())
	}
	lc := &stack.ListenConfig{Stack: st, Backlog: 64, ReusePort: true}
	var lns [2]*stack.Listener
	for i := range lns {
		l, err := lc.Listen(context.Background(), "tcp", ":80")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		lns[i] = l.(*stack.Listener)
		lns[i].SetIncomingCPU(i)
	}
	const n = 32
	clients := kernelDials(t, ns, "10.0.0.2:80", n)
	testwait.Until(t, "every connection in an accept queue", func() bool {
		_, qa := lns[0].QueueLens()
		_, qb := lns[1].QueueLens()
		return qa+qb == n
	})
	var per [2]int
	for i, l := range lns {
		_, q := l.QueueLens()
		for range q {
			c, err := l.AcceptTCP()
			if err != nil {
				t.Fatal(err)
			}
			if c.IncomingCPU() != i {
				t.Errorf("listener %d (SO_INCOMING_CPU %d) accepted %v, whose segments shard %d takes",
					i, i, c.RemoteAddr(), c.IncomingCPU())
			}
			per[i]++
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}
	if per[0] == 0 || per[1] == 0 {
		t.Fatalf("accepted %d and %d: all %d connections came in on one shard", per[0], per[1], n)
	}
	buf := make([]byte, 1)
	for i, c := range clients {
		c.SetDeadline(testwait.Deadline(t))
		if _, err := c.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil || buf[0] != byte(i) {
			t.Fatalf("client %d: %v", i, err)
		}
	}
}
