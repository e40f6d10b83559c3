// Command compare runs the same TCP and UDP workloads against tapstack over a TAP,
// gVisor netstack over a TAP and the Linux kernel over a veth pair, each in
// network namespaces it creates and deletes, and prints a markdown table.
//
//	cd bench && sudo go run ./cmd/compare -quick -rounds 1
//
// The one binary plays three parts: the orchestrator (default), a server
// (-serve, re-executed inside the server netns with `ip netns exec`) and a
// client (-client, re-executed inside the client netns). Every server runs
// in its own process so its RSS can be read from /proc.
package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Options are the orchestrator's flags.
type Options struct {
	Rounds   int
	Only     []string // workload names
	Stacks   []string // stack names
	Quick    bool
	Queues   int
	Reuse    int
	Offload  bool    // tapstack's TAP with virtio-net offloads (driver.OpenTAPOffload)
	MaxBusy  float64 // CPU busy fraction above which a round waits (then is flagged)
	BusyWait time.Duration
	Out      string
	// MaxServerRSS (MB) kills a server whose memory runs away (0 = no cap).
	MaxServerRSS int64
	// GOMAXPROCS per stack for its server processes (absent: the Go default).
	GOMAXPROCS map[string]int
	// Loss lists the percentages of TCP packets dropped each way in the
	// client netns (-loss); the throughput workloads then also run clean,
	// each run bounded by LossTime and LossMB.
	Loss     []float64
	LossTime time.Duration
	LossMB   int
	// CC is the congestion control every stack and every kernel client
	// runs (-cc), or "default" for each stack's own.
	CC string
	// TxQueueLen sets the TAP's txqueuelen for every userspace stack
	// (-txqueuelen; 0: the kernel's default, 1000).
	TxQueueLen int
}

func main() {
	var (
		serve  = flag.Bool("serve", false, "internal: run as server inside a netns")
		client = flag.Bool("client", false, "internal: run as client inside a netns")
		srv    serverFlags
		cli    clientFlags
		o      Options
		only   = flag.String("only", "", "comma-separated workloads (default all): "+strings.Join(workloadNames(), ","))
		gmp    = flag.String("gomaxprocs", "", "per-stack GOMAXPROCS of the server processes, e.g. tapstack=1 (default: Go's, one per CPU)")
		loss   = flag.String("loss", "", "comma-separated percentages of TCP packets to drop each way in the client netns, e.g. 1,3: bulk and download then run at each and clean (iptables statistic match; single-frame links)")
		cc     = flag.String("cc", "cubic", "congestion control of every stack's TCP and of every kernel client socket (tapstack: its sysctl; gVisor: CongestionControlOption; kernel: TCP_CONGESTION, for h2load/ab a congctl route); \"default\": each stack's own (the kernel's sysctl, gVisor's reno, tapstack's cubic)")
		stacks = flag.String("stacks", "", "comma-separated stacks (default all available): "+strings.Join(stackNames(), ","))
	)
	flag.IntVar(&o.Rounds, "rounds", 3, "rounds; each round runs every workload on every stack, interleaved")
	flag.BoolVar(&o.Quick, "quick", false, "short durations (smoke test)")
	flag.IntVar(&o.Queues, "queues", 1, "TAP queues for the userspace stacks")
	flag.IntVar(&o.Reuse, "reuseport", 1, "SO_REUSEPORT listeners per TCP server, an accept loop each (tapstack and kernel; gVisor has none)")
	flag.IntVar(&o.TxQueueLen, "txqueuelen", 0, "the TAP's txqueuelen for every userspace stack: the kernel's queue of frames waiting for the stack's reader, per queue (0: the kernel's default, 1000)")
	flag.BoolVar(&o.Offload, "offload", false, "tapstack opens its TAP with a virtio-net header and TSO/checksum offloads (64 KB super-frames)")
	flag.Float64Var(&o.MaxBusy, "max-busy", 0.25, "CPU busy fraction (from /proc/stat) above which a round waits for quiet")
	flag.DurationVar(&o.BusyWait, "busy-wait", 30*time.Second, "longest wait for a quiet CPU before running a round flagged busy")
	flag.Int64Var(&o.MaxServerRSS, "max-server-rss", 4096, "kill a server whose RSS passes this many MB (0 = no cap)")
	flag.DurationVar(&o.LossTime, "loss-time", 10*time.Second, "with -loss: each bulk/download run stops after this long (quick: 2s) and reports bytes delivered ÷ elapsed")
	flag.IntVar(&o.LossMB, "loss-mb", 16384, "with -loss: ... or after this many MB (quick: 1024), whichever comes first")
	flag.StringVar(&o.Out, "o", "", "also write the report to this file")
	srv.register(flag.CommandLine)
	cli.register(flag.CommandLine)
	flag.Parse()

	var err error
	switch {
	case *serve:
		err = runServer(srv)
	case *client:
		err = runClient(cli)
	default:
		o.Only = splitList(*only)
		o.Stacks = splitList(*stacks)
		if o.GOMAXPROCS, err = parseGOMAXPROCS(*gmp); err != nil {
			break
		}
		if o.Loss, err = parseLoss(*loss); err != nil {
			break
		}
		if o.CC, err = parseCC(*cc); err != nil {
			break
		}
		err = orchestrate(o, os.Args)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parseGOMAXPROCS reads -gomaxprocs: comma-separated stack=N.
func parseGOMAXPROCS(s string) (map[string]int, error) {
	m := map[string]int{}
	for _, kv := range splitList(s) {
		name, v, ok := strings.Cut(kv, "=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n < 1 || !slices.Contains(stackNames(), name) {
			return nil, fmt.Errorf("-gomaxprocs %q: want stack=N with N ≥ 1 and a stack among %v", kv, stackNames())
		}
		m[name] = n
	}
	return m, nil
}
