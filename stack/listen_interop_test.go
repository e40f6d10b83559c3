package stack_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/netnstest"
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

// sequentialConnects connects n times from the namespace, 100 ms apart so each
// handshake settles before the next SYN, and reports the outcomes.
func sequentialConnects(t *testing.T, ns *netnstest.NS, addr string, n int) []connectResult {
	var res []connectResult
	runInNS(t, ns, time.Minute, "connect", connectArgs{
		Addr: addr, Sequential: n, Spacing: 100 * time.Millisecond,
		Timeout: 2500 * time.Millisecond, Probe: 100 * time.Millisecond,
	}, &res)
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

	ours := countOutcomes(sequentialConnects(t, ns, "10.0.0.2:8000", 10), connectOutcome)
	kernel := countOutcomes(sequentialConnects(t, ns, "10.0.0.1:8001", 10), connectOutcome)
	t.Logf("tapstack: %v; kernel: %v", ours, kernel)
	if ours["ok"] != 5 || ours["timeout"] != 5 {
		t.Errorf("tapstack: %v, want 5 ok and 5 timeouts", ours)
	}
	if ours["ok"] != kernel["ok"] || ours["timeout"] != kernel["timeout"] {
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
	ours := countOutcomes(sequentialConnects(t, ns, "10.0.0.2:8000", 12), connectOutcome)
	kernel := countOutcomes(sequentialConnects(t, ns, "10.0.0.1:8001", 12), connectOutcome)
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
	runInNS(t, ns, time.Minute, "connect", connectArgs{
		Addr: "10.0.0.2:7", Sequential: 20, Spacing: 20 * time.Millisecond,
		Timeout: 3 * time.Second, Probe: 3 * time.Second, Echo: "cookie echo",
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
// is answered with a RST. With backlog 4, four connections fill the queue;
// two more SYNs then arrive together, both get SYN-ACKs (the queue is not
// yet over), the first ACK fills it and the second overflows. (With backlog
// 1 the second SYN would find the SYN queue full — its length ≥ backlog —
// and get a cookie instead, and a cookie ACK into a full accept queue is
// discarded without a RST, as in Linux's tcp_v4_cookie_check.)
//
// Whether the second SYN of the burst is processed before or after the first
// ACK is a race on the wire: after it, the accept queue is already full and
// the SYN itself is dropped (tcp_conn_request), so that client's connect
// times out instead — also correct. The scenario is repeated on fresh
// listeners until the ACK-time overflow shows; every attempt must end in one
// of the two correct outcomes.
func TestAbortOnOverflowSendsRST(t *testing.T) {
	ns, st := tapStack(t, map[string]string{"net.ipv4.tcp_abort_on_overflow": "1"})
	for attempt := 0; attempt < 8; attempt++ {
		addr := netip.AddrPortFrom(stackAddr.Addr(), uint16(8000+attempt))
		ln, err := st.ListenTCP(addr, 4)
		if err != nil {
			t.Fatal(err)
		}
		rstsBefore := counter(t, st, "TcpOutRsts")
		var res []connectResult
		runInNS(t, ns, time.Minute, "connect", connectArgs{
			Addr: addr.String(), Sequential: 4, Burst: 2, Spacing: 100 * time.Millisecond,
			Timeout: 2500 * time.Millisecond, Probe: 500 * time.Millisecond,
		}, &res)
		ln.Close()
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
		t.Logf("attempt %d: %v", attempt, outcome)
		switch {
		case outcome["reset"] == 1 && outcome["ok/timeout"] == 5:
			if counter(t, st, "TcpExtListenOverflows") == 0 || counter(t, st, "TcpOutRsts") == rstsBefore {
				t.Fatal("overflow not counted or no RST sent")
			}
			return
		case outcome["timeout/"] == 1 && outcome["ok/timeout"] == 5:
			continue // the SYN lost the race and was dropped at a full queue
		default:
			t.Fatalf("want one reset (or SYN-dropped) connection and five live ones, got %v", outcome)
		}
	}
	t.Fatal("the ACK-time overflow never happened in 8 attempts")
}
