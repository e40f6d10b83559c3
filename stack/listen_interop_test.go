package stack_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/testenv/netnstest"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
	"github.com/tapstack/tapstack/stack"
)

func countOutcomes(res []connectResult, field func(connectResult) string) map[string]int {
	m := map[string]int{}
	for _, r := range res {
		m[field(r)]++
	}
	return m
}

func connectOutcome(r connectResult) string { return r.Connect }
func probeOutcome(r connectResult) string   { return r.Probe }

// kernelListener listens with the kernel inside ns on addr with backlog and
// never accepts. net.Listen takes its backlog from somaxconn, so the socket
// is made by hand to pass listen(2) an explicit one.
func kernelListener(t *testing.T, ns *netnstest.NS, addr netip.AddrPort, backlog int) {
	t.Helper()
	var fd int
	err := ns.Do(func() error {
		var err error
		fd, err = kernelListen(addr, backlog)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeFD(fd) })
}

// listenerView reads a listener's accept queue and its namespace's
// ListenOverflows: what shows that a connect has been dealt with.
type listenerView func() (acceptq int, overflows uint64)

// stackListener is the view of a stack's listener.
func stackListener(t *testing.T, st *stack.Stack, ln *stack.Listener) listenerView {
	return func() (int, uint64) {
		_, acceptq := ln.QueueLens()
		return acceptq, counter(t, st, "TcpExtListenOverflows")
	}
}

// kernelListenerView is the view of a kernel listener on port in ns (ss's
// Recv-Q of a LISTEN socket is its accept queue).
func kernelListenerView(t *testing.T, ns *netnstest.NS, port uint16) listenerView {
	return func() (int, uint64) {
		out, err := ns.Run("ss", "-Hltn", fmt.Sprintf("sport = :%d", port))
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(out)
		if len(f) < 2 {
			t.Fatalf("ss: no listener on :%d: %q", port, out)
		}
		acceptq, err := strconv.Atoi(f[1])
		if err != nil {
			t.Fatalf("ss: %q: %v", out, err)
		}
		return acceptq, linuxTCPCounters(t, ns)["TcpExtListenOverflows"]
	}
}

// stepDials has a stepped helper start its next n connects one at a time,
// each once the listener has dealt with the one before: queued its child
// (the handshake's last ACK is in) or dropped its SYN. So no SYN can
// overtake the ACK before it, however slowly either side runs.
func stepDials(t *testing.T, h *helperProc, n int, view listenerView) {
	t.Helper()
	for i := 0; i < n; i++ {
		q0, o0 := view()
		h.step(stepDial)
		testwait.UntilState(t, fmt.Sprintf("connect %d to be queued or dropped by the listener", i+1), func() (bool, string) {
			q, o := view()
			return q > q0 || o > o0, fmt.Sprintf("accept queue %d (was %d), ListenOverflows %d (was %d)", q, q0, o, o0)
		})
	}
}

// sequentialConnects connects n times from the namespace, one after the
// other as the listener deals with each (stepDials), and reports the
// outcomes: "ok", or "pending" for a connect whose SYNs were all dropped.
func sequentialConnects(t *testing.T, ns *netnstest.NS, addr string, n int, view listenerView) []connectResult {
	t.Helper()
	h := startInNS(t, ns, "connect", connectArgs{Addr: addr, Sequential: n, Stepped: true})
	stepDials(t, h, n, view)
	h.step(stepEnd)
	var res []connectResult
	h.result(&res)
	return res
}

// With backlog 4 and nobody accepting, Linux completes exactly backlog+1
// handshakes (sk_ack_backlog > sk_max_ack_backlog) and drops later SYNs.
// The stack and a kernel listener in the same namespace must agree.
func TestListenBacklogMatchesKernel(t *testing.T) {
	ns, st := tapStack(t, nil)
	ln, err := st.ListenTCP(netip.MustParseAddrPort("10.0.0.2:8000"), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	kernelListener(t, ns, netip.MustParseAddrPort("10.0.0.1:8001"), 4)

	ours := countOutcomes(sequentialConnects(t, ns, "10.0.0.2:8000", 10, stackListener(t, st, ln)), connectOutcome)
	kernel := countOutcomes(sequentialConnects(t, ns, "10.0.0.1:8001", 10, kernelListenerView(t, ns, 8001)), connectOutcome)
	t.Logf("tapstack: %v; kernel: %v", ours, kernel)
	if ours["ok"] != 5 || ours["pending"] != 5 {
		t.Errorf("tapstack: %v, want 5 ok and 5 pending (every SYN dropped)", ours)
	}
	if ours["ok"] != kernel["ok"] || ours["pending"] != kernel["pending"] {
		t.Errorf("tapstack %v differs from the kernel %v", ours, kernel)
	}
	if d := counter(t, st, "TcpExtListenDrops"); d < 5 {
		t.Errorf("TcpExtListenDrops = %d, want ≥ 5 (one per dropped SYN)", d)
	}
	if o, d := counter(t, st, "TcpExtListenOverflows"), counter(t, st, "TcpExtListenDrops"); o != d {
		t.Errorf("ListenOverflows %d != ListenDrops %d", o, d)
	}
	for _, si := range st.Sockets() {
		if si.State == "LISTEN" && (si.RecvQ != 5 || si.SendQ != 4) {
			t.Errorf("ss: LISTEN Recv-Q %d Send-Q %d, want 5 and 4", si.RecvQ, si.SendQ)
		}
	}
}

// somaxconn clamps listen(2)'s backlog: 8 with listen(100) behaves as 8.
func TestSomaxconnClampsBacklog(t *testing.T) {
	ns, st := tapStack(t, map[string]string{"net.core.somaxconn": "8"})
	if _, err := ns.Run("sysctl", "-qw", "net.core.somaxconn=8"); err != nil {
		t.Fatal(err)
	}
	ln, err := st.ListenTCP(netip.MustParseAddrPort("10.0.0.2:8000"), 100)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	kernelListener(t, ns, netip.MustParseAddrPort("10.0.0.1:8001"), 100)
	ours := countOutcomes(sequentialConnects(t, ns, "10.0.0.2:8000", 12, stackListener(t, st, ln)), connectOutcome)
	kernel := countOutcomes(sequentialConnects(t, ns, "10.0.0.1:8001", 12, kernelListenerView(t, ns, 8001)), connectOutcome)
	t.Logf("tapstack: %v; kernel: %v", ours, kernel)
	if ours["ok"] != 9 || kernel["ok"] != 9 {
		t.Errorf("completed: tapstack %d, kernel %d, want 9 each", ours["ok"], kernel["ok"])
	}
}

// tcp_syncookies=2 answers every SYN with a cookie; the connections work
// like any other.
func TestSyncookiesAlways(t *testing.T) {
	ns, st := tapStack(t, map[string]string{"net.ipv4.tcp_syncookies": "2"})
	ln, err := st.Listen("tcp", ":7")
	if err != nil {
		t.Fatal(err)
	}
	echoServer(t, ln)
	var res []connectResult
	runInNS(t, ns, "connect", connectArgs{
		Addr: "10.0.0.2:7", Sequential: 20, Spacing: 20 * time.Millisecond, Echo: "cookie echo",
	}, &res)
	if got := countOutcomes(res, probeOutcome); got["echo"] != 20 {
		t.Fatalf("echo over cookie connections: %v", got)
	}
	sent, recv := counter(t, st, "TcpExtSyncookiesSent"), counter(t, st, "TcpExtSyncookiesRecv")
	if sent != 20 || recv != 20 || counter(t, st, "TcpExtSyncookiesFailed") != 0 {
		t.Fatalf("SyncookiesSent %d Recv %d Failed %d, want 20 20 0", sent, recv, counter(t, st, "TcpExtSyncookiesFailed"))
	}
}

// tcp_abort_on_overflow=1: a handshake completing into a full accept queue
// is answered with a RST. With backlog 4, four connections fill the queue
// to 4; two more SYNs then both get SYN-ACKs (the queue is not yet over);
// the first ACK fills it (backlog+1 = 5) and the second overflows: the
// client gets a RST, and the five others stay up. (With backlog 1 the
// second SYN would find the SYN queue full — its length ≥ backlog — and get
// a cookie instead, and a cookie ACK into a full accept queue is discarded
// without a RST, as in Linux's tcp_v4_cookie_check.)
//
// On the wire, the second SYN may come after the first ACK, and then meets
// a full queue and is dropped instead. So the stack's SYN-ACKs are held
// back (a gate on its link) until both SYNs are in its SYN queue: the
// order the test is about is then the only one possible.
func TestAbortOnOverflowSendsRST(t *testing.T) {
	var g *gate
	ns, st := tapStackWrapped(t, map[string]string{"net.ipv4.tcp_abort_on_overflow": "1"}, func(l stack.Link) stack.Link {
		g = &gate{Link: l}
		return g
	})
	addr := netip.AddrPortFrom(stackAddr.Addr(), 8000)
	ln, err := st.ListenTCP(addr, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	h := startInNS(t, ns, "connect", connectArgs{Addr: addr.String(), Sequential: 4, Burst: 2, Stepped: true})
	stepDials(t, h, 4, stackListener(t, st, ln))

	g.shut()
	h.step(stepBurst)
	testwait.Until(t, "both SYNs of the burst in the SYN queue", func() bool { synq, _ := ln.QueueLens(); return synq == 2 })
	rsts, overflows := counter(t, st, "TcpOutRsts"), counter(t, st, "TcpExtListenOverflows")
	kBefore := linuxTCPCounters(t, ns)
	g.open()
	testwait.Until(t, "the second ACK to overflow the accept queue and be answered with a RST", func() bool {
		return counter(t, st, "TcpExtListenOverflows") > overflows && counter(t, st, "TcpOutRsts") > rsts
	})
	testwait.Until(t, "the kernel client to take the RST", func() bool {
		return linuxTCPCounters(t, ns).delta(kBefore)["TcpEstabResets"] > 0
	})
	h.step(stepEnd)
	var res []connectResult
	h.result(&res)
	// The RST may beat the client's check of its connect (Go reads
	// SO_ERROR after the socket turns writable), so a reset shows either
	// in the connect or in the probe that follows.
	outcome := map[string]int{}
	for _, r := range res {
		if r.Connect == "reset" || r.Probe == "reset" {
			outcome["reset"]++
		} else {
			outcome[r.Connect+"/"+r.Probe]++
		}
	}
	synq, acceptq := ln.QueueLens()
	t.Logf("outcomes %v; SYN queue %d, accept queue %d; ListenOverflows +%d, OutRsts +%d", outcome, synq, acceptq,
		counter(t, st, "TcpExtListenOverflows")-overflows, counter(t, st, "TcpOutRsts")-rsts)
	if outcome["reset"] != 1 || outcome["ok/live"] != 5 {
		t.Errorf("want one reset connection and five live ones, got %v", outcome)
	}
	if synq != 0 || acceptq != 5 {
		t.Errorf("SYN queue %d, accept queue %d; want 0 and backlog+1 = 5", synq, acceptq)
	}
}

// gate passes what the stack sends on, except while shut: then it holds
// the frames, and sends them in order when opened.
type gate struct {
	stack.Link
	mu     sync.Mutex
	closed bool
	held   []heldFrame
}

type heldFrame struct {
	q int
	b []byte
}

func (g *gate) WriteFrame(q int, b []byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		g.held = append(g.held, heldFrame{q, bytes.Clone(b)})
		return nil
	}
	return g.Link.WriteFrame(q, b)
}

func (g *gate) shut() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, f := range g.held {
		g.Link.WriteFrame(f.q, f.b)
	}
	g.held, g.closed = nil, false
}
