package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
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
	for _, w := range wls {
		for _, m := range w.Metrics {
			cells := map[string]cell{}
			fmt.Fprintf(&b, "| %s |", m.Label)
			for _, s := range stacks {
				cells[s] = summarize(records, s, w.Name, m.Key)
				fmt.Fprintf(&b, " %s |", cells[s].render(m.Format))
			}
			for _, p := range ratios {
				fmt.Fprintf(&b, " %s |", ratio(cells[p[0]], cells[p[1]]))
			}
			b.WriteString("\n")
		}
	}
	fmt.Fprintf(&b, "\nMedian over %d round(s), (min–max) when more than one; rounds interleave the stacks "+
		"(each workload runs on every stack before the next). `*` = at least one run started while the CPU was busier "+
		"than %.0f%% (waited up to %v). Ratios are quotients of medians (for µs, ms and MB rows lower is better). "+
		"Userspace stacks: server in its own process behind a TAP, clients are kernel sockets in the TAP's netns; "+
		"kernel: server and client netns joined by a veth (default offloads). Idle memory: server process RSS delta "+
		"(after GC) for the userspace stacks; for the kernel, process delta plus half the Slab delta (both ends' sockets). "+
		"Flood: spoofed sources from %v, routed back to the client netns and blackholed; 200 legit connect+1-byte-echo "+
		"attempts, 10 at a time, 2 s timeout each. TAP queues for tapstack: %d (gVisor: 1); tapstack's TAP offloads "+
		"(IFF_VNET_HDR, TSO4/CSUM): %s. Server GOMAXPROCS: %s.\n", o.Rounds, 100*o.MaxBusy, o.BusyWait, spoofed, o.Queues, map[bool]string{true: "on", false: "off"}[o.Offload], gomaxprocsNote(o))

	b.WriteString("\n## Runs\n\n```\n")
	for _, r := range records {
		b.WriteString(r.line())
		b.WriteString("\n")
	}
	b.WriteString("```\n")
	return b.String()
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
	if r.Note != "" {
		fmt.Fprintf(&b, " [%s]", r.Note)
	}
	return b.String()
}
