package stack_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/testenv/netnstest"
	"github.com/tapstack/tapstack/internal/testenv/synflood"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
	"github.com/tapstack/tapstack/stack"
)

// Spoofed flood sources: RFC 2544's benchmarking range, blackholed in the
// test namespace so the SYN-ACKs the stack sends there die quietly.
var floodSources = netip.MustParsePrefix("198.18.0.0/15")

const (
	floodRate    = 100_000 // SYN/s asked of the flooder
	floodBacklog = 128
	// reqSockCost is a deliberately low estimate of what one request sock
	// would cost if every spoofed SYN were kept (gVisor-style unbounded
	// queue): the bound on heap growth must be far below sent × this.
	reqSockCost = 160
)

// tapLinkStats is the kernel's view of tap0: what it handed to the TAP fd
// (tx, counted as the reader takes each frame) and what its ring dropped.
type tapLinkStats struct {
	TxPackets, TxDropped uint64 // ip -s link: stats64.tx
	QdiscSent, QdiscDrop uint64 // tc -s qdisc: packets through and dropped by the root qdisc
	QdiscQlen            uint64 // tc -s qdisc: packets waiting in it
}

func readTapStats(t *testing.T, ns *netnstest.NS) tapLinkStats {
	t.Helper()
	var link []struct {
		Stats64 struct {
			Tx struct{ Packets, Dropped uint64 } `json:"tx"`
		} `json:"stats64"`
	}
	out, err := ns.Run("ip", "-s", "-j", "link", "show", "tap0")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &link); err != nil || len(link) != 1 {
		t.Fatalf("ip -s -j link show tap0: %v: %q", err, out)
	}
	var qd []struct {
		Root    bool   `json:"root"`
		Packets uint64 `json:"packets"`
		Drops   uint64 `json:"drops"`
		Qlen    uint64 `json:"qlen"`
	}
	out, err = ns.Run("tc", "-s", "-j", "qdisc", "show", "dev", "tap0")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &qd); err != nil {
		t.Fatalf("tc -s -j qdisc show dev tap0: %v: %q", err, out)
	}
	st := tapLinkStats{TxPackets: link[0].Stats64.Tx.Packets, TxDropped: link[0].Stats64.Tx.Dropped}
	for _, q := range qd {
		if q.Root {
			st.QdiscSent, st.QdiscDrop, st.QdiscQlen = q.Packets, q.Drops, q.Qlen
		}
	}
	return st
}

// counterSet is a snapshot of named counters, with the softnet totals.
type counterSet map[string]uint64

func snapshot(st *stack.Stack) counterSet {
	s := st.Stats()
	m := counterSet{}
	for _, c := range s.Counters {
		m[c.Name] = c.Value
	}
	for _, sn := range s.Softnet {
		m["backlog"] += uint64(sn.BacklogLen)
	}
	return m
}

func (a counterSet) delta(b counterSet) counterSet {
	d := counterSet{}
	for k, v := range a {
		d[k] = v - b[k]
	}
	return d
}

// heapInUse returns the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// floodStats is what a sampler saw while a flood ran. Its fields are
// read only after stop, which waits for the sampler to finish.
type floodStats struct {
	maxSynq, maxAcceptq, maxSSSynq int
	maxHeap                        uint64
	samples                        int
	quit, done                     chan struct{}
	once                           sync.Once
}

// sampleQueues watches the listener's queues (every 2 ms), the ss row of
// the listener (every 50 ms) and the heap (every 100 ms) until stop.
func sampleQueues(st *stack.Stack, lens func() (int, int), port uint16) *floodStats {
	fs := &floodStats{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(fs.done)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-fs.quit:
				return
			case <-tick.C:
			}
			synq, acceptq := lens()
			fs.maxSynq, fs.maxAcceptq = max(fs.maxSynq, synq), max(fs.maxAcceptq, acceptq)
			fs.samples++
			if n%25 == 0 {
				for _, si := range st.Sockets() {
					if si.State == "LISTEN" && si.Local.Port() == port {
						fs.maxSSSynq = max(fs.maxSSSynq, si.SynQueue)
					}
				}
			}
			if n%50 == 0 {
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				fs.maxHeap = max(fs.maxHeap, ms.HeapAlloc)
			}
		}
	}()
	return fs
}

// stop ends the sampling and waits for it; it may be called again (the
// tests also register it as a cleanup, for when they fail early).
func (fs *floodStats) stop() {
	fs.once.Do(func() { close(fs.quit) })
	<-fs.done
}

// flood runs synflood inside ns (a raw socket must be made in the
// namespace) and returns the SYNs sent and the time it took.
func flood(ns *netnstest.NS, cfg synflood.Config) (int, time.Duration, error) {
	var sent int
	start := time.Now()
	err := ns.Do(func() error {
		var err error
		sent, err = synflood.Flood(context.Background(), cfg)
		return err
	})
	return sent, time.Since(start), err
}

// floodNS sets up the flood scenario: a stack at 10.0.0.2 in a namespace,
// default route via the kernel at 10.0.0.1, the spoofed prefix blackholed
// in the namespace, and no IPv6 chatter on tap0 (so every frame the kernel
// hands the TAP during a flood is a flood SYN or an ARP exchange).
func floodNS(t *testing.T) (*netnstest.NS, *stack.Stack) {
	t.Helper()
	ns, st := tapStack(t, nil)
	if err := st.AddRoute(netip.MustParsePrefix("0.0.0.0/0"), kernelAddr.Addr()); err != nil {
		t.Fatal(err)
	}
	ns.MustIP("route", "add", "blackhole", floodSources.String())
	if out, err := ns.Run("sysctl", "-qw", "net.ipv6.conf.tap0.disable_ipv6=1"); err != nil {
		t.Logf("disable IPv6 on tap0: %v %s", err, out)
	}
	return ns, st
}

// pinNeighbour makes the kernel's ARP entry for the stack permanent, so the
// kernel sends no ARP probes to it while flooding.
func pinNeighbour(t *testing.T, ns *netnstest.NS) {
	t.Helper()
	out := ns.MustIP("neigh", "show", stackAddr.Addr().String(), "dev", "tap0")
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "lladdr" {
			ns.MustIP("neigh", "replace", stackAddr.Addr().String(), "lladdr", f[i+1], "dev", "tap0", "nud", "permanent")
			return
		}
	}
	t.Fatalf("kernel has no neighbour entry for the stack: %q", out)
}

// A spoofed SYN flood at 100k SYN/s against a listener of backlog 128 with
// syncookies on (the Linux default): every legitimate client still
// connects and echoes, the SYN queue never exceeds its bound, the heap
// stays small, and in a flood-only phase every SYN the flooder sent is
// accounted for by a counter somewhere between the kernel and TCP.
func TestSynFloodWithCookies(t *testing.T) {
	ns, st := floodNS(t)
	ln, err := st.ListenTCP(netip.MustParseAddrPort("10.0.0.2:7"), floodBacklog)
	if err != nil {
		t.Fatal(err)
	}
	echoServer(t, ln)

	// Warm up (ARP both ways, pools) with one connection, then measure.
	var warm []connectResult
	runInNS(t, ns, "connect", connectArgs{Addr: "10.0.0.2:7", Sequential: 1, Echo: "warm"}, &warm)
	if warm[0].Probe != "echo" {
		t.Fatalf("warm-up connection: %+v", warm[0])
	}
	heapBefore := heapInUse()
	before := snapshot(st)

	// Phase 1: flood and 200 legitimate clients at once.
	const legit = 200
	fs := sampleQueues(st, ln.QueueLens, 7)
	t.Cleanup(fs.stop)
	type floodResult struct {
		sent int
		took time.Duration
		err  error
	}
	floodc, flooded := make(chan floodResult, 1), make(chan struct{})
	go func() {
		defer close(flooded)
		sent, took, err := flood(ns, synflood.Config{Target: netip.MustParseAddrPort("10.0.0.2:7"),
			Sources: floodSources, Rate: floodRate, Duration: 6 * time.Second})
		floodc <- floodResult{sent, took, err}
	}()
	// The clients come once the flood has filled the SYN queue. They have
	// no timeout of their own: a SYN of theirs that the flood crowds out
	// (in the kernel's queues or ours) is retransmitted, and the flood
	// ends; each must connect and echo in the end.
	testwait.Until(t, "the flood to fill the SYN queue", func() bool {
		synq, _ := ln.QueueLens()
		select {
		case <-flooded: // it failed, or never filled the queue: reported below
			return true
		default:
			return synq >= floodBacklog
		}
	})
	var res []connectResult
	runInNS(t, ns, "connect", connectArgs{
		Addr: "10.0.0.2:7", Sequential: legit, Spacing: 20 * time.Millisecond, Echo: "legit client under a SYN flood",
	}, &res)
	fr := <-floodc
	fs.stop()
	if fr.err != nil {
		t.Fatalf("flood: %v", fr.err)
	}
	after, _ := drain(t, ns, st)
	heapAfter := heapInUse()
	d := after.delta(before)

	connects, probes := countOutcomes(res, connectOutcome), countOutcomes(res, probeOutcome)
	var worst time.Duration
	for _, r := range res {
		worst = max(worst, r.Took)
	}
	rate := float64(fr.sent) / fr.took.Seconds()
	growth := int64(max(fs.maxHeap, heapAfter)) - int64(heapBefore)
	t.Logf("phase 1: flood sent %d SYNs in %v = %.0f SYN/s (asked %d/s)", fr.sent, fr.took.Round(time.Millisecond), rate, floodRate)
	t.Logf("phase 1: legit connects %v, echoes %v (%.1f %% echoed), slowest connect %v",
		connects, probes, 100*float64(probes["echo"])/legit, worst.Round(time.Millisecond))
	t.Logf("phase 1: SYN queue max %d (ss max %d) of bound %d, accept queue max %d, %d samples",
		fs.maxSynq, fs.maxSSSynq, floodBacklog, fs.maxAcceptq, fs.samples)
	t.Logf("phase 1: heap before %.1f MiB, peak %.1f MiB, after %.1f MiB: growth %.1f MiB (unbounded request socks: ≥ %.0f MiB)",
		mib(heapBefore), mib(fs.maxHeap), mib(heapAfter), float64(growth)/(1<<20), mib(uint64(fr.sent)*reqSockCost))
	t.Logf("phase 1: SyncookiesSent %d Recv %d Failed %d, TCPReqQFullDoCookies %d, TCPReqQFullDrop %d, ListenDrops %d, SoftnetDropped %d, PassiveOpens %d",
		d["TcpExtSyncookiesSent"], d["TcpExtSyncookiesRecv"], d["TcpExtSyncookiesFailed"], d["TcpExtTCPReqQFullDoCookies"],
		d["TcpExtTCPReqQFullDrop"], d["TcpExtListenDrops"], d["SoftnetDropped"], d["TcpPassiveOpens"])

	if probes["echo"] != legit {
		t.Errorf("%d of %d legitimate clients connected and echoed, want all: connect %v probe %v", probes["echo"], legit, connects, probes)
	}
	if fs.maxSynq > floodBacklog || fs.maxSSSynq > floodBacklog {
		t.Errorf("SYN queue reached %d (ss %d), bound %d", fs.maxSynq, fs.maxSSSynq, floodBacklog)
	}
	if fs.maxSynq < floodBacklog || d["TcpExtSyncookiesSent"] == 0 {
		t.Errorf("the flood never filled the SYN queue (max %d) or no cookies were sent (%d): not a flood", fs.maxSynq, d["TcpExtSyncookiesSent"])
	}
	if d["TcpExtTCPReqQFullDrop"] != 0 {
		t.Errorf("TCPReqQFullDrop %d with syncookies on", d["TcpExtTCPReqQFullDrop"])
	}
	if growth > 64<<20 {
		t.Errorf("heap grew by %.1f MiB under the flood, want < 64 MiB", float64(growth)/(1<<20))
	}

	// Phase 2: the flood alone, an exact count, on a fresh listener, so
	// that every SYN can be followed from the flooder to a counter.
	floodAccounting(t, ns, st)
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// floodAccounting sends exactly count SYNs to a fresh listener and checks
// that the kernel, the netdev layer, IP and TCP account for each of them
// (kernelToStack), and that TCP accounts for every SYN it received:
//
//	TcpInSegs = first SYN-ACKs sent (cookies and request socks) + ListenDrops + TcpInErrs
//
// First SYN-ACKs are counted on the way out (OutSegs - RetransSegs - OutRsts),
// so that the request socks expiring while the test runs, slowly on a busy
// machine, change nothing.
func floodAccounting(t *testing.T, ns *netnstest.NS, st *stack.Stack) {
	const count = 150_000
	pinNeighbour(t, ns)
	ln, err := st.ListenTCP(netip.MustParseAddrPort("10.0.0.2:9"), floodBacklog)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	before, kBefore := drain(t, ns, st)

	fs := sampleQueues(st, ln.QueueLens, 9)
	t.Cleanup(fs.stop)
	sent, took, err := flood(ns, synflood.Config{Target: netip.MustParseAddrPort("10.0.0.2:9"),
		Sources: floodSources, Rate: floodRate, Count: count})
	if err != nil {
		t.Fatalf("flood: %v", err)
	}
	after, kAfter := drain(t, ns, st)
	fs.stop()
	synq, acceptq := ln.QueueLens()
	d, k := after.delta(before), kAfter.delta(kBefore)

	t.Logf("phase 2: flood sent %d SYNs (asked %d) in %v = %.0f SYN/s", sent, count, took.Round(time.Millisecond), float64(sent)/took.Seconds())
	if sent != count {
		t.Errorf("flooder sent %d of %d", sent, count)
	}
	kernelToStack(t, sent, k, d)

	fresh := d["TcpOutSegs"] - d["TcpRetransSegs"] - d["TcpOutRsts"]
	t.Logf("phase 2: tcp: InSegs %d = first SYN-ACKs %d (cookies %d + request socks %d) + ListenDrops %d + InErrs %d; OutSegs %d RetransSegs %d OutRsts %d",
		d["TcpInSegs"], fresh, d["TcpExtSyncookiesSent"], fresh-d["TcpExtSyncookiesSent"], d["TcpExtListenDrops"], d["TcpInErrs"],
		d["TcpOutSegs"], d["TcpRetransSegs"], d["TcpOutRsts"])
	t.Logf("phase 2: TCPReqQFullDoCookies %d, TCPReqQFullDrop %d, ListenOverflows %d, SYN queue max %d (now %d), accept queue %d",
		d["TcpExtTCPReqQFullDoCookies"], d["TcpExtTCPReqQFullDrop"], d["TcpExtListenOverflows"], fs.maxSynq, synq, acceptq)
	hopCheck(t, "TcpInSegs = first SYN-ACKs + ListenDrops + InErrs", d["TcpInSegs"], fresh+d["TcpExtListenDrops"]+d["TcpInErrs"])
	// Request socks are made while the SYN queue has room (and again as
	// old ones expire), cookies once it is full: it fills, and no further.
	if fs.maxSynq != floodBacklog {
		t.Errorf("SYN queue max %d, bound %d", fs.maxSynq, floodBacklog)
	}
	if acceptq != 0 {
		t.Errorf("accept queue %d after a flood of spoofed SYNs", acceptq)
	}
}
