package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The forwarded-connection workload, fwdmem (issue 18): the server runs the
// stack's TCP forwarder (tapstack's Stack.NewTCPForwarder over a local
// route, gVisor's tcp.Forwarder on a promiscuous, spoofing NIC) and kernel
// clients in the TAP's netns, which routes fwdRange to the stack, open N
// connections to N distinct addresses and ports of the range. Each sends
// fwdMessage; the handler echoes it and keeps the connection open, blocked
// in Read, as a proxy's would be. With all N established and idle the server
// weighs itself against its weight before the first SYN. The kernel has no
// forwarder (TPROXY needs iptables and a listener), so it does not run.

var fwdRange = netip.MustParsePrefix("10.99.0.0/16")

const (
	// fwdMaxInFlight is both forwarders' bound on handshakes in progress.
	fwdMaxInFlight = 128
	fwdMessage     = "fwd-ping"
	// fwdMaxConns is how many distinct addresses fwdDest has (x.y.0–255.1–254).
	fwdMaxConns = 256 * 254
)

func fwdmemWorkload() workload {
	conns := func(o Options) int { return pick(o, 500, 2000) }
	return workload{
		Name: "fwdmem", ServerMode: "fwdmem", Forward: conns,
		ClientArgs: func(o Options) []string {
			return []string{"-client-workload", "fwd", "-client-n", strconv.Itoa(conns(o)), "-client-conc", "8", "-client-timeout", "5s"}
		},
		Metrics: []metricDef{
			{"fwd_heap_per_conn", "memory per forwarded connection, Go heap (bytes)", false, "%.0f"},
			{"fwd_rss_per_conn", "memory per forwarded connection, RSS (bytes)", false, "%.0f"},
			{"fwd_stacks_per_conn", "memory per forwarded connection, goroutine stacks (bytes)", false, "%.0f"},
		},
	}
}

// fwdDest is the i-th connection's destination: every connection has an
// address of its own (10.99.0.1, 10.99.0.2, … 10.99.0.254, 10.99.1.1, …) and
// a port of its own.
func fwdDest(i int) netip.AddrPort {
	b := fwdRange.Addr().As4()
	b[2], b[3] = byte(i/254), byte(i%254+1)
	return netip.AddrPortFrom(netip.AddrFrom4(b), uint16(20000+i%40000))
}

// memSnapshot is the server's memory at one moment, after a collection:
// live heap objects, goroutine stack space, VmRSS, goroutines.
type memSnapshot struct {
	Heap, Stacks, RSS int64
	Goroutines        int
}

func takeMemSnapshot() memSnapshot {
	runtime.GC()
	debug.FreeOSMemory()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	return memSnapshot{Heap: int64(s[0].Value.Uint64()), Stacks: int64(s[1].Value.Uint64()),
		RSS: readRSS(os.Getpid()), Goroutines: runtime.NumGoroutine()}
}

// fwdReport is the RESULT line of a fwdmem server.
type fwdReport struct {
	Before, After memSnapshot
	// Open is how many connections the handlers held open at After; Dests
	// how many distinct original destinations in fwdRange they had
	// (read after the snapshot: a LocalAddr may be cached in the Conn);
	// Failed how many requests the handler could not accept.
	Open, Dests, Failed int
}

// fwdMetrics turns a server's report into the per-connection figures; a
// run in which any of the n connections is missing, or has the wrong
// destination, fails.
func fwdMetrics(r fwdReport, n int) (map[string]float64, error) {
	if n <= 0 {
		return nil, fmt.Errorf("fwdmem: %d connections", n)
	}
	if r.Open != n || r.Dests != n || r.Failed != 0 {
		return nil, fmt.Errorf("fwdmem: the server held %d of %d connections open (%d distinct destinations in %v, %d failed accepts)",
			r.Open, n, r.Dests, fwdRange, r.Failed)
	}
	per := func(a, b int64) float64 { return float64(a-b) / float64(n) }
	return map[string]float64{
		"fwd_heap_per_conn":       per(r.After.Heap, r.Before.Heap),
		"fwd_stacks_per_conn":     per(r.After.Stacks, r.Before.Stacks),
		"fwd_rss_per_conn":        per(r.After.RSS, r.Before.RSS),
		"fwd_goroutines_per_conn": float64(r.After.Goroutines-r.Before.Goroutines) / float64(n),
		"fwd_conns":               float64(n),
	}, nil
}

// fwdHolder is what both stacks' forwarder handlers hand their connections
// to: serve echoes fwdMessage and then blocks in Read until the peer
// closes the connection (or awaitClose gives up on it).
type fwdHolder struct {
	want int
	cc   firstCC
	read func(net.Conn) (string, error) // the stack's ConnCC

	mu      sync.Mutex
	conns   []net.Conn // echoed, in the order they were
	failed  int
	all     chan struct{} // closed when want connections have echoed
	exited  atomic.Int64  // serve calls returned after their echo: the peer closed
	running sync.WaitGroup
}

func newFwdHolder(want int) *fwdHolder {
	return &fwdHolder{want: want, conns: make([]net.Conn, 0, want), all: make(chan struct{})}
}

// serve runs on the forwarder's goroutine for the request, with the
// connection the handler accepted.
func (h *fwdHolder) serve(c net.Conn) {
	h.running.Add(1)
	defer h.running.Done()
	defer c.Close()
	buf := make([]byte, 64)
	if _, err := io.ReadFull(c, buf[:len(fwdMessage)]); err != nil {
		h.fail(err)
		return
	}
	if _, err := c.Write(buf[:len(fwdMessage)]); err != nil {
		h.fail(err)
		return
	}
	if h.read != nil {
		h.cc.record(c, h.read)
	}
	h.mu.Lock()
	h.conns = append(h.conns, c)
	if len(h.conns) == h.want {
		close(h.all)
	}
	h.mu.Unlock()
	defer h.exited.Add(1)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

// fail counts a request the handler could not accept or echo.
func (h *fwdHolder) fail(err error) {
	h.mu.Lock()
	if h.failed == 0 {
		fmt.Fprintf(os.Stderr, "fwdmem: first failed request: %v\n", err)
	}
	h.failed++
	h.mu.Unlock()
}

// report fills the counts of a fwdReport.
func (h *fwdHolder) report(r *fwdReport) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r.Open = len(h.conns) - int(h.exited.Load())
	r.Failed = h.failed
	dests := map[netip.AddrPort]bool{}
	for _, c := range h.conns {
		if a, ok := c.LocalAddr().(*net.TCPAddr); ok && fwdRange.Contains(a.AddrPort().Addr().Unmap()) {
			dests[a.AddrPort()] = true
		}
	}
	r.Dests = len(dests)
}

// awaitClose waits (up to timeout) for every handler to see its peer
// close, then closes whatever is left; it reports how many connections the
// peers closed.
func (h *fwdHolder) awaitClose(timeout time.Duration) int {
	done := make(chan struct{})
	go func() { h.running.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
	closed := int(h.exited.Load())
	h.mu.Lock()
	conns := h.conns
	h.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	return closed
}

// runForwardServer is the fwdmem server: the stack's forwarder over the
// TAP, fwdRange routed to it in this netns, and the report once f.expect
// connections are established and idle.
func runForwardServer(d *stackDef, f serverFlags, cfg serverConfig) error {
	if d.Forward == nil {
		return fmt.Errorf("%s has no TCP forwarder", d.Name)
	}
	profDir := os.Getenv("COMPARE_PROFILE_DIR")
	if profDir != "" {
		// Every allocation in the heap profile; the buckets live outside
		// the heap, but count in RSS: a profiled run's RSS is not the figure.
		runtime.MemProfileRate = 1
	}
	h := newFwdHolder(f.expect)
	st, err := d.Forward(cfg, h)
	if err != nil {
		return fmt.Errorf("%s forwarder: %w", d.Name, err)
	}
	defer st.Close()
	h.read = st.ConnCC
	// The TAP's netns (the clients') sends the range to the stack.
	if err := run("ip", "route", "add", fwdRange.String(), "via", tapStackAddr.Addr().String(), "dev", tapName); err != nil {
		return err
	}
	stopProfile, err := maybeProfile(f)
	if err != nil {
		return err
	}
	defer stopProfile()

	out := bufio.NewWriter(os.Stdout)
	r := fwdReport{Before: takeMemSnapshot()}
	writeHeapProfile(profDir, d.Name+"-fwdmem-before")
	counters0 := st.Counters()
	fmt.Fprintln(out, "READY")
	out.Flush()
	stdinClosed := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(stdinClosed) }()
	select {
	case <-h.all:
	case <-stdinClosed:
		return nil
	}
	time.Sleep(500 * time.Millisecond) // the last ACKs and the delayed-ACK timers
	r.After = takeMemSnapshot()
	writeHeapProfile(profDir, d.Name+"-fwdmem-after")
	h.report(&r)
	b, _ := json.Marshal(r)
	fmt.Fprintf(out, "RESULT %s\n", b)
	out.Flush()

	// The orchestrator stops the client first: its kernel closes every
	// connection, each handler reads EOF and closes, and no socket is left
	// retransmitting a FIN into the next run's TAP.
	<-stdinClosed
	closed := h.awaitClose(8 * time.Second) // within finish's 10 s
	time.Sleep(200 * time.Millisecond)      // the handlers' FINs and their ACKs
	m := counterDelta("srv_", counters0, st.Counters())
	m["srv_fwd_closed"] = float64(closed)
	b, _ = json.Marshal(serverFinish{Counters: m, CC: h.cc.measured()})
	fmt.Fprintf(out, "COUNTERS %s\n", b)
	out.Flush()
	return nil
}

// writeHeapProfile writes the heap profile as of the last collection into
// dir (COMPARE_PROFILE_DIR; nothing if empty): `go tool pprof
// -sample_index=inuse_space -diff_base BEFORE AFTER` shows what the
// connections hold.
func writeHeapProfile(dir, name string) {
	if dir == "" {
		return
	}
	if f, err := os.CreateTemp(dir, name+"-*.heap.pprof"); err == nil {
		_ = pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
	}
}

// forwardResult reads a fwdmem server's report into m after the client
// has said how many of the n connections it established and echoed.
func forwardResult(srv *child, m map[string]float64, n int) error {
	if got := int(m["fwd_established"]); got != n {
		return fmt.Errorf("client established and echoed %d of %d forwarded connections", got, n)
	}
	line, err := srv.expect("RESULT", 60*time.Second)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	var r fwdReport
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		return fmt.Errorf("server result %q: %w", line, err)
	}
	fm, err := fwdMetrics(r, n)
	if err != nil {
		return err
	}
	for k, v := range fm {
		m[k] = v
	}
	return nil
}

// clientForward opens f.n connections, f.conc at a time, to fwdDest(0 …
// n−1) (the range, not -client-target), each within f.timeout: connect,
// send fwdMessage, read it back. It keeps them open (clientHeld) until
// stdin closes.
func clientForward(f clientFlags) (clientResult, error) {
	if f.n < 1 || f.n > fwdMaxConns {
		return clientResult{}, fmt.Errorf("fwd: -client-n %d, want 1 … %d", f.n, fwdMaxConns)
	}
	conns := make([]net.Conn, f.n)
	var failed atomic.Int64
	var firstErr atomic.Value
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(f.conc, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= f.n {
					return
				}
				c, err := fwdEcho(fwdDest(i), f.timeout)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	clientHeld = conns
	r := clientResult{Metrics: map[string]float64{"fwd_established": float64(f.n - int(failed.Load()))}}
	if e := firstErr.Load(); e != nil {
		r.Note = fmt.Sprintf("%d failed, first: %v", failed.Load(), e)
	}
	return r, nil
}

// fwdEcho connects to dest, sends fwdMessage and reads it back, all
// within timeout; it returns the open connection.
func fwdEcho(dest netip.AddrPort, timeout time.Duration) (net.Conn, error) {
	start := time.Now()
	c, err := kernelClients.dial(dest, timeout)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(start.Add(timeout))
	buf := make([]byte, len(fwdMessage))
	if _, err := io.WriteString(c, fwdMessage); err != nil {
		c.Close()
		return nil, fmt.Errorf("%v: write: %w", dest, err)
	}
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != fwdMessage {
		c.Close()
		return nil, fmt.Errorf("%v: echo %q: %v", dest, buf, err)
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// fwdNote is the report's paragraph on fwdmem, if it ran.
func fwdNote(wls []workload) string {
	for _, w := range wls {
		if w.Forward != nil {
			return fmt.Sprintf("\nForwarded connections (fwdmem): the server runs the stack's TCP forwarder (tapstack: "+
				"`Stack.NewTCPForwarder` with `AddLocalRoute(%v)`; gVisor: `tcp.NewForwarder` with its default receive window, "+
				"the NIC promiscuous and spoofing), both bounded at %d handshakes in flight, and the TAP's netns routes %v to the "+
				"stack; kernel clients there open one connection to each of N distinct addresses and ports of the range, 8 at a "+
				"time, 5 s each, send %d bytes, get them echoed and keep the connection open; the handler echoes on the "+
				"forwarder's goroutine and stays blocked in Read (gVisor: through `gonet.TCPConn`). With all N established "+
				"and idle (+0.5 s) the server's live Go heap, goroutine stack space and VmRSS (each after GC and "+
				"FreeOSMemory) minus the same before the first SYN, ÷ N. Every connection is accounted for: the run fails "+
				"unless the client echoed N, the server holds N open with N distinct original destinations, and, once the client "+
				"exits, its handlers see all N closed by the peer. The kernel has no forwarder (n/a): its nearest equivalent, TPROXY, needs iptables and a listener.\n",
				fwdRange, fwdMaxInFlight, fwdRange, len(fwdMessage))
		}
	}
	return ""
}
