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

	"github.com/tapstack/tapstack/internal/netnstest"
	"github.com/tapstack/tapstack/internal/synflood"
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
			st.QdiscSent, st.QdiscDrop = q.Packets, q.Drops
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

// quiesce waits until the stack has drained its backlogs and its receive
// counters stop moving, so a snapshot taken now is final.
func quiesce(t *testing.T, st *stack.Stack) counterSet {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	prev := snapshot(st)
	stable := 0
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		cur := snapshot(st)
		if cur["backlog"] == 0 && cur["NetdevRxFrames"] == prev["NetdevRxFrames"] &&
			cur["SoftnetProcessed"] == prev["SoftnetProcessed"] && cur["TcpInSegs"] == prev["TcpInSegs"] {
			if stable++; stable == 5 {
				return cur
			}
		} else {
			stable = 0
		}
		prev = cur
	}
	t.Fatal("stack did not go quiet within 30 s")
	return nil
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
	runInNS(t, ns, time.Minute, "connect", connectArgs{Addr: "10.0.0.2:7", Sequential: 1,
		Timeout: 10 * time.Second, Probe: 10 * time.Second, Echo: "warm"}, &warm)
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
	floodc := make(chan floodResult, 1)
	go func() {
		sent, took, err := flood(ns, synflood.Config{Target: netip.MustParseAddrPort("10.0.0.2:7"),
			Sources: floodSources, Rate: floodRate, Duration: 6 * time.Second})
		floodc <- floodResult{sent, took, err}
	}()
	time.Sleep(300 * time.Millisecond) // let the SYN queue fill first
	var res []connectResult
	runInNS(t, ns, 4*time.Minute, "connect", connectArgs{
		Addr: "10.0.0.2:7", Sequential: legit, Spacing: 20 * time.Millisecond,
		Timeout: 60 * time.Second, Probe: 60 * time.Second, Echo: "legit client under a SYN flood",
	}, &res)
	fr := <-floodc
	fs.stop()
	if fr.err != nil {
		t.Fatalf("flood: %v", fr.err)
	}
	after := quiesce(t, st)
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
// that the kernel, the netdev layer, IP and TCP account for each of them:
//
//	flooder sent   = qdisc sent + qdisc dropped              (kernel, tap0 root qdisc)
//	qdisc sent     = tap tx_packets + tap tx_dropped         (kernel, tun ring)
//	tap tx_packets = NetdevRxFrames                          (every frame we read)
//	NetdevRxFrames = SoftnetProcessed + SoftnetDropped + runts + other-host
//	SoftnetProcessed = IpInReceives + non-IPv4 frames (ARP)
//	IpInReceives   = TcpInSegs + IP-level drops
//	TcpInSegs      = SyncookiesSent + requests queued + ListenDrops + TcpInErrs
//
// The only frames that are not flood SYNs are ARP exchanges the stack
// itself starts (its entry for the gateway ageing), bounded by a handful.
func floodAccounting(t *testing.T, ns *netnstest.NS, st *stack.Stack) {
	const count = 150_000
	pinNeighbour(t, ns)
	ln, err := st.ListenTCP(netip.MustParseAddrPort("10.0.0.2:9"), floodBacklog)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	before := quiesce(t, st)
	kBefore := readTapStats(t, ns)

	fs := sampleQueues(st, ln.QueueLens, 9)
	t.Cleanup(fs.stop)
	start := time.Now()
	sent, took, err := flood(ns, synflood.Config{Target: netip.MustParseAddrPort("10.0.0.2:9"),
		Sources: floodSources, Rate: floodRate, Count: count})
	if err != nil {
		t.Fatalf("flood: %v", err)
	}
	after := quiesce(t, st)
	// Request socks last at least 1+2+4 s before expiring, so the SYN queue
	// read now still holds every request this phase queued.
	synq, acceptq := ln.QueueLens()
	sinceStart := time.Since(start)
	fs.stop()
	kAfter := readTapStats(t, ns)
	d := after.delta(before)
	k := tapLinkStats{
		TxPackets: kAfter.TxPackets - kBefore.TxPackets, TxDropped: kAfter.TxDropped - kBefore.TxDropped,
		QdiscSent: kAfter.QdiscSent - kBefore.QdiscSent, QdiscDrop: kAfter.QdiscDrop - kBefore.QdiscDrop,
	}
	ipDrops := d["IpInHdrErrors"] + d["IpInAddrErrors"] + d["IpInUnknownProtos"] + d["IpInDiscards"] + d["IpExtInCsumErrors"] + d["IpExtInTruncatedPkts"]
	nonIP := d["SoftnetProcessed"] - d["IpInReceives"]
	extra := int64(k.QdiscSent+k.QdiscDrop) - int64(sent) // frames the kernel sent that were not flood SYNs

	t.Logf("phase 2: flood sent %d SYNs (asked %d) in %v = %.0f SYN/s", sent, count, took.Round(time.Millisecond), float64(sent)/took.Seconds())
	t.Logf("phase 2: kernel: qdisc sent %d dropped %d; tap tx_packets %d tx_dropped %d; non-SYN frames %d",
		k.QdiscSent, k.QdiscDrop, k.TxPackets, k.TxDropped, extra)
	t.Logf("phase 2: netdev: RxFrames %d = SoftnetProcessed %d + SoftnetDropped %d + runt %d + other-host %d; TimeSqueeze %d",
		d["NetdevRxFrames"], d["SoftnetProcessed"], d["SoftnetDropped"], d["NetdevRxRunt"], d["NetdevRxOtherHost"], d["SoftnetTimeSqueeze"])
	t.Logf("phase 2: ip: InReceives %d (non-IPv4 frames %d, IP drops %d); tcp: InSegs %d = SyncookiesSent %d + queued %d + ListenDrops %d + InErrs %d",
		d["IpInReceives"], nonIP, ipDrops, d["TcpInSegs"], d["TcpExtSyncookiesSent"], synq, d["TcpExtListenDrops"], d["TcpInErrs"])
	t.Logf("phase 2: TCPReqQFullDoCookies %d, TCPReqQFullDrop %d, ListenOverflows %d, SYN queue max %d (now %d), accept queue %d",
		d["TcpExtTCPReqQFullDoCookies"], d["TcpExtTCPReqQFullDrop"], d["TcpExtListenOverflows"], fs.maxSynq, synq, acceptq)

	// Cross-check of "queued" from the output side: every SYN that TCP did
	// not drop got exactly one first SYN-ACK (cookie or request sock).
	fresh := d["TcpOutSegs"] - d["TcpRetransSegs"] - d["TcpOutRsts"]
	t.Logf("phase 2: first SYN-ACKs sent %d (OutSegs %d - RetransSegs %d - OutRsts %d) = cookies %d + requests %d",
		fresh, d["TcpOutSegs"], d["TcpRetransSegs"], d["TcpOutRsts"], d["TcpExtSyncookiesSent"], fresh-d["TcpExtSyncookiesSent"])
	if sinceStart > 6500*time.Millisecond {
		t.Fatalf("phase 2 took %v to flood and settle: request socks may have expired (≥ 7 s), so the SYN queue no longer counts them", sinceStart)
	}

	check := func(what string, got, want uint64) {
		t.Helper()
		if got != want {
			t.Errorf("%s: %d != %d (off by %d)", what, got, want, int64(got)-int64(want))
		}
	}
	if sent != count {
		t.Errorf("flooder sent %d of %d", sent, count)
	}
	if extra < 0 || extra > 16 {
		t.Errorf("qdisc saw %d frames for %d SYNs sent: %d unexplained", k.QdiscSent+k.QdiscDrop, sent, extra)
	}
	check("qdisc sent = tap tx_packets + tx_dropped", k.QdiscSent, k.TxPackets+k.TxDropped)
	check("tap tx_packets = NetdevRxFrames", k.TxPackets, d["NetdevRxFrames"])
	check("NetdevRxFrames = SoftnetProcessed + SoftnetDropped + runt + other-host", d["NetdevRxFrames"],
		d["SoftnetProcessed"]+d["SoftnetDropped"]+d["NetdevRxRunt"]+d["NetdevRxOtherHost"])
	check("IpInReceives = TcpInSegs + IP drops", d["IpInReceives"], d["TcpInSegs"]+ipDrops)
	check("TcpInSegs = SyncookiesSent + queued + ListenDrops + InErrs", d["TcpInSegs"],
		d["TcpExtSyncookiesSent"]+uint64(synq)+d["TcpExtListenDrops"]+d["TcpInErrs"])
	// Every SYN the flooder sent, end to end (non-SYN frames are the
	// processed non-IPv4 ones plus any the backlog dropped, ≤ extra).
	accounted := k.QdiscDrop + k.TxDropped + d["SoftnetDropped"] + d["NetdevRxRunt"] + d["NetdevRxOtherHost"] + d["TcpInSegs"] + ipDrops + nonIP
	if got := int64(accounted) - int64(sent); got != extra {
		t.Errorf("end to end: %d frames accounted for, %d SYNs sent + %d other frames", accounted, sent, extra)
	}
	check("SYN queue at its bound", uint64(synq), floodBacklog)
	if fs.maxSynq > floodBacklog {
		t.Errorf("SYN queue reached %d, bound %d", fs.maxSynq, floodBacklog)
	}
}
