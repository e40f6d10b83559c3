package stack_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
	"github.com/tapstack/tapstack/stack"
)

// raceEnabled reports whether the test binary was built with -race (the
// build settings record it), to scale the soak down.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
}

// soakPlan is the size of a soak run. It has no time budget: the soak
// asserts that every stream arrives intact and every socket and goroutine
// ends, however long a loaded machine takes (BenchmarkBulk and the bench
// module measure speed).
type soakPlan struct {
	conns, bytes int
}

func soakSize() soakPlan {
	p := soakPlan{conns: 1000, bytes: 64 << 10}
	if raceEnabled() {
		p.bytes = 16 << 10 // the race detector slows the stack 5–10×
	}
	if testing.Short() {
		p.conns, p.bytes = 200, 2<<10
	}
	return p
}

// soakStacks joins a server stack (10.1.0.1) and a client stack (10.1.0.2)
// by an in-memory link impaired the same way in both directions.
func soakStacks(t *testing.T, imp driver.Impairment, sysctls map[string]string) (srv, cli *stack.Stack, la, lb *driver.PipeEnd) {
	t.Helper()
	ia, ib := imp, imp
	ib.Seed = imp.Seed + 1
	la, lb = driver.NewPipe(driver.PipeConfig{Impair: ia}, driver.PipeConfig{Impair: ib})
	var err error
	if srv, err = stack.New(stack.Config{Sysctls: sysctls}); err != nil {
		t.Fatal(err)
	}
	if cli, err = stack.New(stack.Config{Sysctls: sysctls}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Attach(la, netip.MustParsePrefix("10.1.0.1/24")); err != nil {
		t.Fatal(err)
	}
	if err := cli.Attach(lb, netip.MustParsePrefix("10.1.0.2/24")); err != nil {
		t.Fatal(err)
	}
	return srv, cli, la, lb
}

// abandoned names a client connection that waits for a server connection
// that is gone: in FIN-WAIT-2 (everything it sent is acknowledged, it
// waits for the server's data and FIN) with no socket left for it on the
// server, and nothing on the wire: nothing will ever reach it, so its
// stream cannot finish (TcpExtTCPAbortOnTimeout: the server gave up
// retransmitting to it). It is checked only with the pipe quiet, before
// and after the socket lists are read, so no frame was on its way meanwhile.
func abandoned(srv, cli *stack.Stack, la, lb *driver.PipeEnd) string {
	quiet := func() (bool, uint64) {
		ok, _ := pipeSettled(pipeSide{srv, lb}, pipeSide{cli, la})
		return ok, pipeSource(la.Stats()) + pipeSource(lb.Stats())
	}
	ok, sent := quiet()
	if !ok {
		return ""
	}
	server := map[[2]netip.AddrPort]bool{}
	for _, si := range srv.Sockets() {
		server[[2]netip.AddrPort{si.Remote, si.Local}] = true
	}
	var waiting []stack.SocketInfo
	for _, si := range cli.Sockets() {
		if si.State == "FIN-WAIT-2" && !server[[2]netip.AddrPort{si.Local, si.Remote}] {
			waiting = append(waiting, si)
		}
	}
	if ok2, sent2 := quiet(); len(waiting) == 0 || !ok2 || sent2 != sent {
		return ""
	}
	abortOnTimeout, _ := srv.Stats().Get("TcpExtTCPAbortOnTimeout")
	return fmt.Sprintf("%d client connections (first %v -> %v) in FIN-WAIT-2 with no server socket and nothing on the wire; server TcpExtTCPAbortOnTimeout %d",
		len(waiting), waiting[0].Local, waiting[0].Remote, abortOnTimeout)
}

// openSockets lists up to limit connections of the stacks (not listeners),
// as ss -tanoi does.
func openSockets(srv, cli *stack.Stack, limit int) string {
	var b strings.Builder
	n := 0
	for _, st := range []*stack.Stack{srv, cli} {
		for _, si := range st.Sockets() {
			if si.State == "LISTEN" {
				continue
			}
			if n++; n <= limit {
				fmt.Fprintf(&b, "%s %v -> %v Recv-Q %d Send-Q %d timer:(%s,%v,%d) rtt %v cwnd %d wnd rcv %d snd %d\n", si.State, si.Local, si.Remote,
					si.RecvQ, si.SendQ, si.Timer, si.TimerLeft.Round(time.Millisecond), si.Retrans, si.RTT, si.Cwnd, si.RcvWnd, si.SndWnd)
			}
		}
	}
	fmt.Fprintf(&b, "(%d in all)", n)
	return b.String()
}

// streamData is connection i's pseudo-random payload.
func streamData(i, n int) []byte {
	r := rand.New(rand.NewPCG(uint64(i), 0x50a4))
	b := make([]byte, n)
	for k := 0; k < n; k += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && k+j < n; j++ {
			b[k+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// TestSoakImpairedLink runs 1,000 concurrent echo connections over a link
// that loses, reorders, duplicates and corrupts frames. Every stream must
// come back intact (SHA-256), the checksums must have caught the
// corruption (counters), every socket must close (TIME_WAIT shortened so
// it expires), and after Close the goroutines and the heap are back near
// where they started.
func TestSoakImpairedLink(t *testing.T) {
	plan := soakSize()
	// 5 % loss each way: at 10 % a handshake fails ~19 % of the time, and
	// one of 1000 connections using up tcp_syn_retries (7 attempts) would
	// be a few-in-a-thousand event per run; at 5 % it is about 1e-4. The
	// backlog is raised so that netdev drops do not add much loss on top.
	imp := driver.Impairment{Seed: 7, LossPercent: 5, ReorderPercent: 5, DupPercent: 2, CorruptPercent: 2, QueueLimit: 4096}
	t.Logf("%d connections × %d bytes each way, loss %.0f%% reorder %.0f%% dup %.0f%% corrupt %.0f%%, race %v",
		plan.conns, plan.bytes, imp.LossPercent, imp.ReorderPercent, imp.DupPercent, imp.CorruptPercent, raceEnabled())

	runtime.GC()
	baseG := runtime.NumGoroutine()
	baseHeap := heapInUse()
	start := time.Now() // for the log only

	// An orphan (the echo server closes once it has sent everything back)
	// retries as long as a connection an application holds (tcp_retries2's
	// 15, not tcp_orphan_retries' 8): under -race on a loaded machine the
	// RTT estimate reaches seconds, and 8 backed-off retransmissions all
	// lost at this loss rate, which Linux too answers by giving up
	// (TCPAbortOnTimeout, no RST), would strand the client in FIN-WAIT-2
	// waiting for a FIN that never comes. The test is about the impaired
	// link, not the orphan budget.
	sys := map[string]string{"tapstack.tcp_timewait_len_ms": "100", "tapstack.tcp_rto_min_ms": "50",
		"net.core.netdev_max_backlog": "8192", "net.ipv4.tcp_orphan_retries": "15"}
	srv, cli, la, lb := soakStacks(t, imp, sys)
	closed := false
	defer func() {
		if !closed {
			srv.Close()
			cli.Close()
		}
	}()
	ln, err := srv.ListenTCP(netip.MustParseAddrPort("10.1.0.1:7"), 4096)
	if err != nil {
		t.Fatal(err)
	}
	var srvWG sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			srvWG.Add(1)
			go func() {
				defer srvWG.Done()
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()

	var (
		wg       sync.WaitGroup
		failures atomic.Int64
		mu       sync.Mutex
		errs     []string
	)
	fail := func(i int, format string, args ...any) {
		failures.Add(1)
		mu.Lock()
		if len(errs) < 10 {
			errs = append(errs, fmt.Sprintf("conn %d: ", i)+fmt.Sprintf(format, args...))
		}
		mu.Unlock()
	}
	for i := 0; i < plan.conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := cli.Dial("tcp", "10.1.0.1:7")
			if err != nil {
				fail(i, "dial: %v", err)
				return
			}
			defer c.Close()
			data := streamData(i, plan.bytes)
			werr := make(chan error, 1)
			go func() {
				_, err := c.Write(data)
				if err == nil {
					err = c.(interface{ CloseWrite() error }).CloseWrite()
				}
				werr <- err
			}()
			h := sha256.New()
			n, err := io.Copy(h, c)
			if err != nil {
				fail(i, "read after %d bytes: %v", n, err)
				return
			}
			if err := <-werr; err != nil {
				fail(i, "write: %v", err)
				return
			}
			if want := sha256.Sum256(data); n != int64(len(data)) || !bytes.Equal(h.Sum(nil), want[:]) {
				fail(i, "stream mismatch: %d bytes, sha256 %x, want %d bytes %x", n, h.Sum(nil), len(data), want)
			}
		}()
	}
	streams := make(chan struct{})
	go func() { wg.Wait(); close(streams) }()
	testwait.UntilReport(t, "every stream to come back", func() bool {
		select {
		case <-streams:
			return true
		default:
		}
		if d := abandoned(srv, cli, la, lb); d != "" {
			t.Fatalf("a stream can never finish: %s\n%s", d, openSockets(srv, cli, 20))
		}
		return false
	}, func() string { return "sockets not closed yet:\n" + openSockets(srv, cli, 20) })
	transfer := time.Since(start)
	ln.Close()
	srvWG.Wait()

	// Every socket closes: TIME_WAIT expires, and a FIN or its ACK lost on
	// the way is retransmitted (with RTO backoff: on a slow machine, with
	// a long RTT estimate, that can take many seconds) until the peer
	// answers, or answers with a RST once its side has gone.
	testwait.UntilReport(t, "every socket to close", func() bool {
		return len(srv.Sockets())+len(cli.Sockets()) == 0
	}, func() string { return "sockets left:\n" + openSockets(srv, cli, 20) })
	sStats, cStats := snapshot(srv), snapshot(cli)
	caught := func(c counterSet) uint64 {
		return c["TcpInCsumErrors"] + c["IpExtInCsumErrors"] + c["IpInHdrErrors"]
	}
	ps, pc := la.Stats(), lb.Stats()
	t.Logf("transfer of %d streams took %v", plan.conns, transfer.Round(time.Millisecond))
	t.Logf("link server→client: %+v", ps)
	t.Logf("link client→server: %+v", pc)
	for _, side := range []struct {
		name string
		c    counterSet
	}{{"server", sStats}, {"client", cStats}} {
		c := side.c
		t.Logf("%s: TcpInCsumErrors %d IpExtInCsumErrors %d IpInHdrErrors %d TcpRetransSegs %d TcpExtTCPTimeouts %d TcpExtTCPSackRecovery %d TcpExtTCPOFOQueue %d TcpExtTCPDSACKRecv %d SoftnetDropped %d",
			side.name, c["TcpInCsumErrors"], c["IpExtInCsumErrors"], c["IpInHdrErrors"], c["TcpRetransSegs"], c["TcpExtTCPTimeouts"],
			c["TcpExtTCPSackRecovery"], c["TcpExtTCPOFOQueue"], c["TcpExtTCPDSACKRecv"], c["SoftnetDropped"])
	}
	if n := failures.Load(); n > 0 {
		t.Errorf("%d of %d streams failed; first: %v", n, plan.conns, errs)
	}
	if ps.Corrupted+pc.Corrupted == 0 {
		t.Error("the link corrupted nothing: the test proves nothing about checksums")
	}
	if caught(sStats)+caught(cStats) == 0 {
		t.Errorf("%d frames corrupted but no checksum counter moved", ps.Corrupted+pc.Corrupted)
	}
	if sStats["TcpRetransSegs"]+cStats["TcpRetransSegs"] == 0 {
		t.Error("no retransmissions on a lossy link")
	}

	// Close: every goroutine the stacks started ends, the heap returns.
	srv.Close()
	cli.Close()
	closed = true
	testwait.UntilState(t, "the stacks' goroutines to end", func() (bool, string) {
		runtime.GC()
		g := runtime.NumGoroutine()
		if g <= baseG {
			return true, ""
		}
		return false, fmt.Sprintf("%d goroutines after Close, %d before the stacks existed", g, baseG)
	})
	heapAfter := heapInUse()
	t.Logf("heap: %.1f MiB before, %.1f MiB after Close", mib(baseHeap), mib(heapAfter))
	if heapAfter > baseHeap+16<<20 {
		t.Errorf("heap %.1f MiB after Close, %.1f MiB before: leak", mib(heapAfter), mib(baseHeap))
	}
}
