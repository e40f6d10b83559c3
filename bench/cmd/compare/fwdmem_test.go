package main

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestFwdDest(t *testing.T) {
	addrs := map[netip.Addr]bool{}
	ports := map[uint16]bool{}
	for i := range 2000 {
		d := fwdDest(i)
		if !fwdRange.Contains(d.Addr()) || d.Addr().As4()[3] == 0 || d.Addr().As4()[3] == 255 {
			t.Fatalf("fwdDest(%d) = %v: not a host address of %v", i, d, fwdRange)
		}
		addrs[d.Addr()], ports[d.Port()] = true, true
	}
	if len(addrs) != 2000 || len(ports) != 2000 {
		t.Errorf("2000 destinations: %d addresses, %d ports, want all distinct", len(addrs), len(ports))
	}
	if got, want := fwdDest(0), netip.MustParseAddrPort("10.99.0.1:20000"); got != want {
		t.Errorf("fwdDest(0) = %v, want %v", got, want)
	}
	if got, want := fwdDest(254), netip.MustParseAddrPort("10.99.1.1:20254"); got != want {
		t.Errorf("fwdDest(254) = %v, want %v", got, want)
	}
	if last := fwdDest(fwdMaxConns - 1).Addr(); last != netip.MustParseAddr("10.99.255.254") {
		t.Errorf("fwdDest(fwdMaxConns-1) = %v", last)
	}
}

func TestFwdMetrics(t *testing.T) {
	ok := fwdReport{
		Before: memSnapshot{Heap: 1 << 20, Stacks: 64 << 10, RSS: 10 << 20, Goroutines: 10},
		After:  memSnapshot{Heap: 1<<20 + 2000*3000, Stacks: 64<<10 + 2000*8192, RSS: 10<<20 + 2000*12000, Goroutines: 2010},
		Open:   2000, Dests: 2000,
	}
	m, err := fwdMetrics(ok, 2000)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"fwd_heap_per_conn": 3000, "fwd_stacks_per_conn": 8192, "fwd_rss_per_conn": 12000,
		"fwd_goroutines_per_conn": 1, "fwd_conns": 2000}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	for name, r := range map[string]fwdReport{
		"one closed early":     {Open: 1999, Dests: 2000},
		"a destination shared": {Open: 2000, Dests: 1999},
		"a failed accept":      {Open: 2000, Dests: 2000, Failed: 1},
	} {
		if _, err := fwdMetrics(r, 2000); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := fwdMetrics(fwdReport{}, 0); err == nil {
		t.Error("0 connections accepted")
	}
}

// The kernel has no forwarder: fwdmem skips it, and its cells say n/a
// rather than that the run is missing.
func TestFwdmemSkipsTheKernel(t *testing.T) {
	fwd := fwdmemWorkload()
	all := []string{"tapstack", "gvisor", "kernel"}
	if got := runStacks(fwd, all); !slices.Equal(got, []string{"tapstack", "gvisor"}) {
		t.Errorf("runStacks(fwdmem) = %v", got)
	}
	if !fwd.selected(nil) || !fwd.selected([]string{"fwdmem"}) {
		t.Error("fwdmem must run by default and when named")
	}
	var recs []runRecord
	for round := 1; round <= 3; round++ {
		for _, s := range []string{"tapstack", "gvisor"} {
			recs = append(recs, runRecord{Round: round, Stack: s, Workload: "fwdmem", Metrics: map[string]float64{
				"fwd_heap_per_conn": map[string]float64{"tapstack": 2000, "gvisor": 8000}[s] + float64(round),
				"fwd_rss_per_conn":  1, "fwd_stacks_per_conn": 1}})
		}
	}
	rep := renderReport(Options{Rounds: 3, CC: "cubic"}, []string{"compare"}, all, []workload{fwd}, recs)
	var row string
	for _, l := range strings.Split(rep, "\n") {
		if strings.HasPrefix(l, "| memory per forwarded connection, Go heap") {
			row = l
		}
	}
	f := strings.Split(row, "|")
	if len(f) != 9 {
		t.Fatalf("heap row %q", row)
	}
	got := []string{strings.TrimSpace(f[2]), strings.TrimSpace(f[3]), strings.TrimSpace(f[4]), strings.TrimSpace(f[5]), strings.TrimSpace(f[6])}
	want := []string{"2002 (2001–2003)", "8002 (8001–8003)", "n/a", "0.25", "–"}
	if !slices.Equal(got, want) {
		t.Errorf("heap row cells %q, want %q", got, want)
	}
	if !strings.Contains(rep, "The kernel has no forwarder") {
		t.Error("the report does not say why the kernel did not run")
	}
}
