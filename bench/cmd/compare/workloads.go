package main

import (
	"fmt"
	"slices"
	"strconv"
	"time"
)

// metricDef is one row of the report.
type metricDef struct {
	Key, Label   string
	HigherBetter bool
	Format       string // fmt verb for one value
}

// workload is what the server and client do, and which rows it fills.
type workload struct {
	Name       string
	Group      string // -only GROUP selects every workload of the group
	Explicit   bool   // runs only when -only names it (or its group)
	ServerMode string
	Backlog    int
	Hold       func(o Options) int // hold mode: connections
	ClientArgs func(o Options) []string
	Metrics    []metricDef
	SampleRSS  bool // sample the server's RSS while the client runs

	// Title names a one-connection throughput workload that -loss can
	// impair (its variants' rows are built from it); Sender is the side
	// whose TCP sends the data: "client" or "server".
	Title, Sender string
	// A variant of a -loss run: Base is the workload it derives from, Loss
	// the percentage dropped each way (0: the clean run retention divides by).
	LossRun bool
	Loss    float64
	Base    string

	// UDP marks a UDP workload: the orchestrator reads the link's counters
	// around it (the TAP's or the veth's, udp.go); Raw runs it also
	// against the raw TAP reader, the TAP's frame ceiling.
	UDP, Raw bool

	// Forward marks a forwarder workload (fwdmem.go): it runs only on the
	// stacks that have a TCP forwarder, with this many connections.
	Forward func(o Options) int
}

func pick(o Options, quick, full int) int {
	if o.Quick {
		return quick
	}
	return full
}

func floodWorkload(name string, rate int) workload {
	label := fmt.Sprintf("%dk spoofed SYN/s, backlog 128", rate/1000)
	return workload{
		Name: name, ServerMode: "echo", Backlog: 128, SampleRSS: true,
		ClientArgs: func(o Options) []string {
			warm := "1s"
			if o.Quick {
				warm = "500ms"
			}
			return []string{"-client-workload", "flood", "-client-n", "200", "-client-conc", "10",
				"-client-timeout", "2s", "-client-warmup", warm, "-client-rate", strconv.Itoa(rate)}
		},
		Metrics: []metricDef{
			{"success_pct", "legit connects OK under " + label + " (%)", true, "%.0f"},
			{"connect_p50_ms", "legit connect p50 under " + label + " (ms)", false, "%.2f"},
			{"rss_growth_mb", "server RSS growth under " + label + " (MB)", false, "%.1f"},
			{"flood_rate", "flood rate achieved, " + label + " (SYN/s)", true, "%.0f"},
		},
	}
}

var workloads = []workload{
	{
		Name: "bulk", ServerMode: "sink", Backlog: 4096,
		ClientArgs: func(o Options) []string {
			return []string{"-client-workload", "bulk", "-client-n", strconv.Itoa(pick(o, 64, 1024))}
		},
		Metrics: []metricDef{{"gbps", "bulk, one connection (Gbit/s)", true, "%.2f"}},
		Title:   "bulk", Sender: "client",
	},
	{
		Name: "download", ServerMode: "source", Backlog: 4096,
		ClientArgs: func(o Options) []string {
			return []string{"-client-workload", "download", "-client-n", strconv.Itoa(pick(o, 64, 1024))}
		},
		Metrics: []metricDef{{"gbps", "download, one connection, server to client (Gbit/s)", true, "%.2f"}},
		Title:   "download", Sender: "server",
	},
	{
		Name: "cps1", ServerMode: "echo", Backlog: 4096,
		ClientArgs: func(o Options) []string {
			return []string{"-client-workload", "cps", "-client-conc", "1", "-client-duration", durFlag(o)}
		},
		Metrics: []metricDef{{"cps", "connections/s, 1 client goroutine", true, "%.0f"}},
	},
	{
		Name: "cps8", ServerMode: "echo", Backlog: 4096,
		ClientArgs: func(o Options) []string {
			return []string{"-client-workload", "cps", "-client-conc", "8", "-client-duration", durFlag(o)}
		},
		Metrics: []metricDef{{"cps", "connections/s, 8 client goroutines", true, "%.0f"}},
	},
	{
		Name: "rtt", ServerMode: "echo", Backlog: 4096,
		ClientArgs: func(o Options) []string {
			return []string{"-client-workload", "rtt", "-client-n", strconv.Itoa(pick(o, 2000, 20000))}
		},
		Metrics: []metricDef{
			{"p50_us", "1-byte round trip p50 (µs)", false, "%.0f"},
			{"p99_us", "1-byte round trip p99 (µs)", false, "%.0f"},
		},
	},
	udpSinkWorkload(64),
	udpSinkWorkload(1400),
	udpRTTWorkload(),
	{
		Name: "idle", ServerMode: "hold", Backlog: 4096,
		Hold: func(o Options) int { return pick(o, 2000, 10000) },
		ClientArgs: func(o Options) []string {
			return []string{"-client-workload", "hold", "-client-n", strconv.Itoa(pick(o, 2000, 10000))}
		},
		Metrics: []metricDef{{"mb_per_10k", "memory per 10k idle connections (MB)", false, "%.1f"}},
	},
	fwdmemWorkload(),
	floodWorkload("flood20k", 20000),
	floodWorkload("flood100k", 100000),
	httpWorkload(50, true),
	httpWorkload(200, true),
	httpWorkload(1000, true),
	httpWorkload(50, false),
	httpWorkload(200, false),
	httpWorkload(1000, false),
	abWorkload(200),
}

// selected reports whether -only (empty: everything not Explicit) picks w.
func (w workload) selected(only []string) bool {
	if len(only) == 0 {
		return !w.Explicit
	}
	return slices.Contains(only, w.Name) || (w.Group != "" && slices.Contains(only, w.Group))
}

func durFlag(o Options) string {
	if o.Quick {
		return (time.Second).String()
	}
	return (5 * time.Second).String()
}

func workloadNames() []string {
	var out []string
	for _, w := range workloads {
		if w.Group != "" && !slices.Contains(out, w.Group) {
			out = append(out, w.Group)
		}
		out = append(out, w.Name)
	}
	return out
}

// withLoss replaces each workload that -loss can impair by its variants:
// the clean run (same links and rules, drop probability 0) and one per
// loss percentage, adjacent so that the rounds interleave them like any
// other workload. Each variant is bounded in bytes and in time.
func withLoss(wls []workload, loss []float64) ([]workload, error) {
	if len(loss) == 0 {
		return wls, nil
	}
	var out []workload
	impaired := false
	for _, w := range wls {
		if w.Title == "" {
			out = append(out, w)
			continue
		}
		impaired = true
		for _, p := range append([]float64{0}, loss...) {
			v := w
			v.LossRun, v.Loss, v.Base = true, p, w.Name
			v.ClientArgs = func(o Options) []string {
				return []string{"-client-workload", w.Name, "-client-n", strconv.Itoa(pick(o, 1024, o.LossMB)),
					"-client-max-time", o.LossTime.String()}
			}
			if p > 0 {
				v.Name = fmt.Sprintf("%s@%g%%", w.Name, p)
			}
			v.Metrics = []metricDef{{"gbps", variantTitle(v) + " (Gbit/s)", true, "%.2f"}}
			out = append(out, v)
		}
	}
	if !impaired {
		return nil, errNoLossWorkload
	}
	return out, nil
}

// variantTitle names a -loss variant in the report.
func variantTitle(v workload) string {
	if v.Loss == 0 {
		return v.Title + ", no loss"
	}
	return fmt.Sprintf("%s at %g %% loss", v.Title, v.Loss)
}
