package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
)

// cell summarizes one metric of one stack over the rounds.
type cell struct {
	vals         []float64
	errs, busy   int
	median       float64
	min, max     float64
	hasValue     bool
	firstErrText string
}

func summarize(records []runRecord, stack, wl, key string) cell {
	var c cell
	for _, r := range records {
		if r.Stack != stack || r.Workload != wl {
			continue
		}
		if r.Flagged {
			c.busy++
		}
		if r.Err != nil {
			c.errs++
			if c.firstErrText == "" {
				c.firstErrText = r.Err.Error()
			}
			continue
		}
		if v, ok := r.Metrics[key]; ok && v >= 0 {
			c.vals = append(c.vals, v)
		}
	}
	if len(c.vals) > 0 {
		s := slices.Clone(c.vals)
		slices.Sort(s)
		c.hasValue = true
		c.min, c.max = s[0], s[len(s)-1]
		if n := len(s); n%2 == 1 {
			c.median = s[n/2]
		} else {
			c.median = (s[n/2-1] + s[n/2]) / 2
		}
	}
	return c
}

func (c cell) render(format string) string {
	if !c.hasValue {
		if c.errs > 0 {
			return fmt.Sprintf("error ×%d", c.errs)
		}
		return "–"
	}
	s := fmt.Sprintf(format, c.median)
	if len(c.vals) > 1 {
		s += " (" + fmt.Sprintf(format, c.min) + "–" + fmt.Sprintf(format, c.max) + ")"
	}
	if c.errs > 0 {
		s += fmt.Sprintf(" +%d err", c.errs)
	}
	if c.busy > 0 {
		s += "*"
	}
	return s
}

func ratio(a, b cell) string {
	if !a.hasValue || !b.hasValue || b.median == 0 {
		return "–"
	}
	r := a.median / b.median
	switch {
	case r >= 100:
		return fmt.Sprintf("%.0f", r)
	case r >= 0.1 || r == 0:
		return fmt.Sprintf("%.2f", r)
	default:
		return fmt.Sprintf("%.2g", r)
	}
}

var stackTitles = map[string]string{"tapstack": "tapstack (TAP)", "gvisor": "gVisor (TAP)", "kernel": "Linux (veth)"}

func renderReport(o Options, argv []string, stacks []string, wls []workload, records []runRecord) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# tapstack / gVisor netstack / Linux kernel\n\n")
	fmt.Fprintf(&b, "Command: `cd bench && go run ./cmd/compare %s` (as root)\n\n", strings.Join(argv[1:], " "))
	fmt.Fprintf(&b, "Machine: %s\n\n", machineInfo())
	fmt.Fprintf(&b, "%s\n\n", ccNote(o, stacks, records))

	ratios := [][2]string{}
	for _, p := range [][2]string{{"tapstack", "gvisor"}, {"tapstack", "kernel"}, {"gvisor", "kernel"}} {
		if slices.Contains(stacks, p[0]) && slices.Contains(stacks, p[1]) {
			ratios = append(ratios, p)
		}
	}
	b.WriteString("| figure |")
	for _, s := range stacks {
		fmt.Fprintf(&b, " %s |", stackTitles[s])
	}
	for _, p := range ratios {
		fmt.Fprintf(&b, " %s ÷ %s |", p[0], p[1])
	}
	b.WriteString("\n|---|")
	for range len(stacks) + len(ratios) {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	row := func(label, wl, key, format string, recs []runRecord) {
		cells := map[string]cell{}
		fmt.Fprintf(&b, "| %s |", label)
		for _, s := range stacks {
			if !runsOn(wls, wl, s) {
				fmt.Fprintf(&b, " n/a |")
				continue
			}
			cells[s] = summarize(recs, s, wl, key)
			fmt.Fprintf(&b, " %s |", cells[s].render(format))
		}
		for _, p := range ratios {
			fmt.Fprintf(&b, " %s |", ratio(cells[p[0]], cells[p[1]]))
		}
		b.WriteString("\n")
	}
	for i, w := range wls {
		for _, m := range w.Metrics {
			row(m.Label, w.Name, m.Key, m.Format, records)
		}
		if w.LossRun && (i+1 == len(wls) || wls[i+1].Base != w.Base) {
			// After a workload's last loss variant: its retention rows.
			for _, v := range wls {
				if v.Base == w.Base && v.Loss > 0 {
					row(fmt.Sprintf("%s retention at %g %% loss (÷ no loss, same stack, same round)", v.Title, v.Loss),
						v.Name, "retention", "%.3f", retention(records, v.Name, v.Base))
				}
			}
		}
	}
	fmt.Fprintf(&b, "\nMedian over %d round(s), (min–max) when more than one; rounds interleave the stacks "+
		"(each workload runs on every stack before the next). `*` = at least one run started while the CPU was busier "+
		"than %.0f%% (waited up to %v). Ratios are quotients of medians (for µs, ms and MB rows lower is better). "+
		"Userspace stacks: server in its own process behind a TAP, clients are kernel sockets in the TAP's netns; "+
		"kernel: server and client netns joined by a veth (default offloads). Idle memory: server process RSS delta "+
		"(after GC) for the userspace stacks; for the kernel, process delta plus half the Slab delta (both ends' sockets). "+
		"Flood: spoofed sources from %v, routed back to the client netns and blackholed; 200 legit connect+1-byte-echo "+
		"attempts, 10 at a time, 2 s timeout each. TAP queues for tapstack: %d (gVisor: 1); the TAP's txqueuelen: %s; tapstack's TAP offloads "+
		"(IFF_VNET_HDR, TSO4/CSUM): %s. Server GOMAXPROCS: %s. TCP listeners per server (SO_REUSEPORT, an accept loop each): %d.\n", o.Rounds, 100*o.MaxBusy, o.BusyWait, spoofed, o.Queues, txqlenNote(o), map[bool]string{true: "on", false: "off"}[o.Offload], gomaxprocsNote(o), max(o.Reuse, 1))
	b.WriteString(fwdNote(wls))
	b.WriteString(renderUDP(stacks, wls, records))
	if len(o.Loss) > 0 {
		fmt.Fprintf(&b, "\nLoss (-loss): iptables drops TCP packets of port %d at random, each direction with the stated "+
			"probability, in the FORWARD chain of the netns on the client's side of the server's link (the TAP's for the userspace "+
			"stacks, the veth client's for the kernel); for these runs the client process sits one veth further, in a leaf netns "+
			"routed through it, because a drop in OUTPUT is reported to the sending TCP, which sends the segment again as new "+
			"(no loss at all in the bulk direction). The no-loss runs have the same path and rules with probability 0. Every "+
			"stack loses single frames: the veths of the loss path and the kernel's veth have tso, gso and gro off on both ends "+
			"(for the whole run), a TAP without a virtio-net header neither merges nor offloads, and a rule counts frames over "+
			"1500 bytes (below: 0). Each bulk and download run is bounded: it stops after %v or %d MB, whichever comes first, "+
			"and reports bytes delivered ÷ elapsed (bulk: bytes the server acknowledged, TCP_INFO bytes_acked; download: bytes "+
			"read, the clock starting at the first). Retention = lossy ÷ no-loss throughput of the same stack in the same round, "+
			"median (min–max) over rounds.\n", serverPort, o.LossTime, pick(o, 1024, o.LossMB))
		b.WriteString(renderLossTable(stacks, wls, records))
	}

	b.WriteString("\n## Runs\n\n```\n")
	for _, r := range records {
		b.WriteString(r.line())
		b.WriteString("\n")
	}
	b.WriteString("```\n")
	return b.String()
}

// runsOn reports whether the workload named wl runs on stack s (a
// forwarder workload does not where the stack has no forwarder).
func runsOn(wls []workload, wl, s string) bool {
	for _, w := range wls {
		if w.Name == wl {
			return slices.Contains(runStacks(w, []string{s}), s)
		}
	}
	return true
}

func machineInfo() string {
	model := "unknown CPU"
	if c, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(c), "\n") {
			if rest, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), ":"))
				break
			}
		}
	}
	kernel := "unknown"
	if k, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(k))
	}
	gv := "not built in"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "gvisor.dev/gvisor" {
				gv = d.Version
			}
		}
	}
	nproc := fmt.Sprint(runtime.NumCPU())
	if out, err := exec.Command("nproc").Output(); err == nil {
		nproc = strings.TrimSpace(string(out))
	}
	return fmt.Sprintf("nproc %s, %s, Linux %s, %s, gvisor.dev/gvisor %s, %s",
		nproc, model, kernel, runtime.Version(), gv, time.Now().UTC().Format(time.RFC3339))
}

// gomaxprocsNote says how the server processes' GOMAXPROCS was set.
func gomaxprocsNote(o Options) string {
	if len(o.GOMAXPROCS) == 0 {
		return "Go's default (one per CPU) for every stack"
	}
	var parts []string
	for _, name := range stackNames() {
		if n, ok := o.GOMAXPROCS[name]; ok {
			parts = append(parts, fmt.Sprintf("%s %d", name, n))
		}
	}
	return strings.Join(parts, ", ") + "; Go's default for the others"
}

// line is a record as one line of the run log.
func (r runRecord) line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "round %d %-8s %-9s busy %3.0f%%%s", r.Round, r.Stack, r.Workload, 100*r.Busy, map[bool]string{true: " BUSY", false: ""}[r.Flagged])
	if r.Err != nil {
		fmt.Fprintf(&b, " ERROR: %v", r.Err)
	}
	keys := make([]string, 0, len(r.Metrics))
	for k := range r.Metrics {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%.4g", k, r.Metrics[k])
	}
	if r.ServerCC != "" || r.ClientCC != "" {
		fmt.Fprintf(&b, " cc_srv=%s cc_cli=%s", ccWord(r.ServerCC), ccWord(r.ClientCC))
	}
	if r.Note != "" {
		fmt.Fprintf(&b, " [%s]", r.Note)
	}
	return b.String()
}

// retention pairs, round by round and stack by stack, each run of the
// lossy variant with the clean run of its base workload: records whose
// "retention" metric is lossy ÷ clean throughput.
func retention(records []runRecord, lossy, clean string) []runRecord {
	type key struct {
		round int
		stack string
	}
	base := map[key]runRecord{}
	for _, r := range records {
		if r.Workload == clean && r.Err == nil {
			base[key{r.Round, r.Stack}] = r
		}
	}
	var out []runRecord
	for _, r := range records {
		if r.Workload != lossy {
			continue
		}
		c, ok := base[key{r.Round, r.Stack}]
		q := runRecord{Round: r.Round, Stack: r.Stack, Workload: lossy, Flagged: r.Flagged || c.Flagged, Err: r.Err}
		if q.Err == nil && ok && c.Metrics["gbps"] > 0 {
			q.Metrics = map[string]float64{"retention": r.Metrics["gbps"] / c.Metrics["gbps"]}
		}
		out = append(out, q)
	}
	return out
}

// renderLossTable sums, per loss variant and stack, what the iptables
// rules counted and what the sending TCP retransmitted.
func renderLossTable(stacks []string, wls []workload, records []runRecord) string {
	var b strings.Builder
	b.WriteString("\n| loss run | stack | dropped server → client | dropped client → server | frames > 1500 B at the rules | " +
		"sender's retransmitted segments | sender's RTOs |\n|---|---|---|---|---|---|---|\n")
	for _, w := range wls {
		if !w.LossRun {
			continue
		}
		snd := map[string]string{"client": "cli_", "server": "srv_"}[w.Sender]
		for _, s := range stacks {
			var sum = map[string]float64{}
			runs := 0
			for _, r := range records {
				if r.Stack == s && r.Workload == w.Name && r.Err == nil {
					runs++
					for k, v := range r.Metrics {
						sum[k] += v
					}
				}
			}
			if runs == 0 {
				continue
			}
			sender := map[string]string{"client": "kernel client", "server": s + " server"}[w.Sender]
			if cc := senderCC(records, s, w); cc != "" {
				sender += ", " + cc
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %.0f | %s (%s) | %.0f |\n", variantTitle(w), s,
				share(sum["in_drop"], sum["in_pkts"]), share(sum["out_drop"], sum["out_pkts"]), sum["in_big"]+sum["out_big"],
				share(sum[snd+"retrans"], sum[snd+"segs"]), sender, sum[snd+"rto"])
		}
	}
	b.WriteString("\nSums over the rounds. Dropped: packets the drop rule took of those the counting rule saw, " +
		"in each direction. Retransmitted: the sending TCP's RetransSegs of its OutSegs (the kernel's own counters in its " +
		"netns, tapstack's and gVisor's stack counters), with the congestion control the sender ran (read back from its live " +
		"connection, each run); RTOs: TcpExtTCPTimeouts (gVisor: Timeouts).\n")
	return b.String()
}

// share renders n of total as a percentage with the counts.
func share(n, total float64) string {
	if total == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f %% (%.0f of %.0f)", 100*n/total, n, total)
}

// ccNote is the report's congestion-control line: what was asked for, and
// what each stack's server and its kernel clients ran, as read back from
// live connections, counted over the runs.
func ccNote(o Options, stacks []string, records []runRecord) string {
	var b strings.Builder
	if ccChosen(o.CC) {
		fmt.Fprintf(&b, "Congestion control: `-cc %s` for every stack and every kernel client.", o.CC)
	} else {
		var defaults []string
		for _, s := range stacks {
			if d := stackDefs[s]; d.DefaultCC != nil {
				defaults = append(defaults, s+" "+d.DefaultCC())
			}
		}
		fmt.Fprintf(&b, "Congestion control: `-cc default`, each stack its own (%s; kernel clients: the kernel's).", strings.Join(defaults, ", "))
	}
	b.WriteString(" Ran, read back from live connections (runs):")
	for i, s := range stacks {
		srv, cli := map[string]int{}, map[string]int{}
		for _, r := range records {
			if r.Stack == s && r.Err == nil {
				srv[ccWord(r.ServerCC)]++
				cli[ccWord(r.ClientCC)]++
			}
		}
		sep := ";"
		if i == len(stacks)-1 {
			sep = "."
		}
		fmt.Fprintf(&b, " %s server %s, its kernel clients %s%s", stackTitles[s], ccRuns(srv), ccRuns(cli), sep)
	}
	b.WriteString(" (tapstack: its net.ipv4.tcp_congestion_control at accept, the library has no per-connection name; " +
		"gVisor: the accepted endpoint's CongestionControlOption; kernel server and Go clients: getsockopt TCP_CONGESTION; " +
		"h2load and ab, given the algorithm by a congctl route: ss -tin.)")
	return b.String()
}

// ccWord is a read-back algorithm for the report ("not read" if none).
func ccWord(name string) string {
	if name == "" {
		return "not-read"
	}
	return name
}

// ccRuns renders run counts per algorithm: "cubic ×18", most runs first.
func ccRuns(m map[string]int) string {
	if len(m) == 0 {
		return "–"
	}
	out := ccCounts(m)
	if len(m) == 1 {
		for _, n := range m {
			out += fmt.Sprintf(" ×%d", n)
		}
	}
	return out
}

// senderCC is what the sending TCP of a loss variant ran on one stack:
// its runs' read-back algorithms ("cubic", or "cubic ×2, bbr ×1").
func senderCC(records []runRecord, stack string, w workload) string {
	m := map[string]int{}
	for _, r := range records {
		if r.Stack != stack || r.Workload != w.Name || r.Err != nil {
			continue
		}
		if cc := map[string]string{"client": r.ClientCC, "server": r.ServerCC}[w.Sender]; cc != "" {
			m[cc]++
		}
	}
	if len(m) == 0 {
		return ""
	}
	return ccCounts(m)
}

// txqlenNote says how long the kernel's queue in front of each TAP was.
func txqlenNote(o Options) string {
	if o.TxQueueLen > 0 {
		return strconv.Itoa(o.TxQueueLen) + " frames (-txqueuelen)"
	}
	return "the kernel's default (1000 frames)"
}
