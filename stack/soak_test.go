package stack_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tapstack/tapstack/driver"
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

// soakPlan is the size of a soak run.
type soakPlan struct {
	conns, bytes int
	budget       time.Duration
}

func soakSize() soakPlan {
	p := soakPlan{conns: 1000, bytes: 64 << 10, budget: 60 * time.Second}
	if raceEnabled() {
		// The race detector slows the stack 5–10×, and CI shares two cores
		// with the other packages' tests: a wider bound, still finite.
		p.bytes, p.budget = 16<<10, 150*time.Second
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
	// with the SYN RTO starting at 1 s and doubling, one of 1000
	// connections needing 6 attempts (63 s) is a few-percent event per run,
	// beyond the 60 s budget (seen once). The backlog is raised so that
	// netdev drops do not add much loss on top.
	imp := driver.Impairment{Seed: 7, LossPercent: 5, ReorderPercent: 5, DupPercent: 2, CorruptPercent: 2, QueueLimit: 4096}
	t.Logf("%d connections × %d bytes each way, loss %.0f%% reorder %.0f%% dup %.0f%% corrupt %.0f%%, race %v",
		plan.conns, plan.bytes, imp.LossPercent, imp.ReorderPercent, imp.DupPercent, imp.CorruptPercent, raceEnabled())

	runtime.GC()
	baseG := runtime.NumGoroutine()
	baseHeap := heapInUse()
	start := time.Now()

	sys := map[string]string{"tapstack.tcp_timewait_len_ms": "100", "tapstack.tcp_rto_min_ms": "50",
		"net.core.netdev_max_backlog": "8192"}
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
				c.SetDeadline(time.Now().Add(plan.budget))
				io.Copy(c, c)
			}()
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), plan.budget)
	defer cancel()
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
			c, err := cli.DialContext(ctx, "tcp", "10.1.0.1:7")
			if err != nil {
				fail(i, "dial: %v", err)
				return
			}
			defer c.Close()
			dl, _ := ctx.Deadline()
			c.SetDeadline(dl)
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
	wg.Wait()
	transfer := time.Since(start)
	ln.Close()
	srvWG.Wait()

	// Every socket closes: only TIME_WAIT may linger, and it expires.
	var left []string
	for deadline := time.Now().Add(10 * time.Second); ; {
		left = left[:0]
		for _, st := range []*stack.Stack{srv, cli} {
			for _, si := range st.Sockets() {
				left = append(left, si.State+" "+si.Local.String()+"->"+si.Remote.String())
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
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
	if len(left) > 0 {
		t.Errorf("%d sockets still open 10 s after the last stream: %v", len(left), left[:min(len(left), 10)])
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
	if transfer > plan.budget {
		t.Errorf("transfer took %v, budget %v", transfer, plan.budget)
	}

	// Close: every goroutine the stacks started ends, the heap returns.
	srv.Close()
	cli.Close()
	closed = true
	var g int
	for deadline := time.Now().Add(10 * time.Second); ; {
		runtime.GC()
		if g = runtime.NumGoroutine(); g <= baseG || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if g > baseG {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Errorf("goroutines: %d after Close, %d before the stacks existed\n%s", g, baseG, buf[:min(n, 8000)])
	}
	heapAfter := heapInUse()
	t.Logf("heap: %.1f MiB before, %.1f MiB after Close", mib(baseHeap), mib(heapAfter))
	if heapAfter > baseHeap+16<<20 {
		t.Errorf("heap %.1f MiB after Close, %.1f MiB before: leak", mib(heapAfter), mib(baseHeap))
	}
}
