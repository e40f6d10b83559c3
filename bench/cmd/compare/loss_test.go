package main

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// A FORWARD listing as `iptables -L FORWARD -v -n -x --line-numbers` prints
// it (iptables 1.8.9, nf_tables), after a lossy run.
const forwardListing = `Chain FORWARD (policy ACCEPT 0 packets, 0 bytes)
num      pkts      bytes target     prot opt in     out     source               destination         
1       59091  3073060            6    --  *      *       0.0.0.0/0            0.0.0.0/0            tcp spt:5201
2           0        0            6    --  *      *       0.0.0.0/0            0.0.0.0/0            tcp spt:5201 length 1501:65535
3        1847    96044 DROP       6    --  *      *       0.0.0.0/0            0.0.0.0/0            tcp spt:5201 statistic mode random probability 0.02999999933
4       61793 92432716            6    --  *      *       0.0.0.0/0            0.0.0.0/0            tcp dpt:5201
5           2     3000            6    --  *      *       0.0.0.0/0            0.0.0.0/0            tcp dpt:5201 length 1501:65535
6        1809  2705004 DROP       6    --  *      *       0.0.0.0/0            0.0.0.0/0            tcp dpt:5201 statistic mode random probability 0.02999999933
`

func TestParseChainCounters(t *testing.T) {
	in, err := parseChainCounters(forwardListing, 0)
	if err != nil || in != (chainCounters{Pkts: 59091, Big: 0, Dropped: 1847}) {
		t.Fatalf("server → client: %+v, %v", in, err)
	}
	out, err := parseChainCounters(forwardListing, ruleDrop)
	if err != nil || out != (chainCounters{Pkts: 61793, Big: 2, Dropped: 1809}) {
		t.Fatalf("client → server: %+v, %v", out, err)
	}
	// A listing without our rules (flushed, or someone else's) is an error.
	cut := forwardListing[:strings.Index(forwardListing, "\n6 ")+1]
	if _, err := parseChainCounters(cut, ruleDrop); err == nil {
		t.Error("listing without rule 6 accepted")
	}
	if _, err := parseChainCounters("1 lots 0 DROP\n2 0 0\n3 0 0\n", 0); err == nil {
		t.Error("bad packet count accepted")
	}
}

func TestLossRules(t *testing.T) {
	r := lossRules("--dport", 3)
	if len(r) != 3 {
		t.Fatalf("%d rules", len(r))
	}
	got := strings.Join(r[ruleDrop-1], " ")
	want := "-A FORWARD -p tcp --dport 5201 -m statistic --mode random --probability 0.030000 -j DROP"
	if got != want {
		t.Errorf("drop rule %q, want %q", got, want)
	}
	if got := strings.Join(r[ruleAll-1], " "); got != "-A FORWARD -p tcp --dport 5201" {
		t.Errorf("counting rule %q", got)
	}
	// Appending to one rule must not change the others (shared slices).
	if strings.Contains(strings.Join(r[ruleAll-1], " "), "length") {
		t.Error("rules share their backing array")
	}
}

func TestParseSNMP(t *testing.T) {
	text := "Ip: Forwarding DefaultTTL\nIp: 1 64\n" +
		"Tcp: RtoAlgorithm RtoMin MaxConn OutSegs RetransSegs\nTcp: 1 200 -1 4321 17\n" +
		"TcpExt: SyncookiesSent TCPTimeouts\nTcpExt: 0 3\n"
	m := parseSNMP(text)
	for k, want := range map[string]uint64{"TcpOutSegs": 4321, "TcpRetransSegs": 17, "TcpExtTCPTimeouts": 3, "IpDefaultTTL": 64} {
		if m[k] != want {
			t.Errorf("%s = %d, want %d", k, m[k], want)
		}
	}
	if _, ok := m["TcpMaxConn"]; ok {
		t.Error("negative MaxConn kept")
	}
	d := counterDelta("srv_", map[string]uint64{"TcpOutSegs": 4000, "TcpRetransSegs": 20}, m)
	if d["srv_segs"] != 321 || d["srv_retrans"] != 0 || d["srv_rto"] != 3 {
		t.Errorf("delta %v", d)
	}
}

func TestParseLoss(t *testing.T) {
	p, err := parseLoss("1, 3%,0.5")
	if err != nil || len(p) != 3 || p[0] != 1 || p[1] != 3 || p[2] != 0.5 {
		t.Fatalf("got %v, %v", p, err)
	}
	for _, bad := range []string{"0", "-1", "x", "60"} {
		if _, err := parseLoss(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestWithLoss(t *testing.T) {
	var sel []workload
	for _, w := range workloads {
		if w.Name == "bulk" || w.Name == "rtt" {
			sel = append(sel, w)
		}
	}
	out, err := withLoss(sel, []float64{1, 3})
	if err != nil {
		t.Fatal(err)
	}
	var names, labels []string
	for _, w := range out {
		names = append(names, w.Name)
		labels = append(labels, w.Metrics[0].Label)
	}
	if got := strings.Join(names, " "); got != "bulk bulk@1% bulk@3% rtt" {
		t.Errorf("variants %s", got)
	}
	if labels[0] != "bulk, no loss (Gbit/s)" || labels[2] != "bulk at 3 % loss (Gbit/s)" {
		t.Errorf("labels %q", labels)
	}
	o := Options{LossTime: 10 * time.Second, LossMB: 16384}
	if got := strings.Join(out[1].ClientArgs(o), " "); got != "-client-workload bulk -client-n 16384 -client-max-time 10s" {
		t.Errorf("client args %q", got)
	}
	if out[1].Base != "bulk" || out[1].Loss != 1 || !out[0].LossRun || out[0].Loss != 0 || out[3].LossRun {
		t.Errorf("variant fields %+v", out[:2])
	}
	if _, err := withLoss(out[3:], []float64{1}); err == nil {
		t.Error("-loss without bulk or download accepted")
	}
}

func TestRetention(t *testing.T) {
	g := func(v float64) map[string]float64 { return map[string]float64{"gbps": v} }
	recs := []runRecord{
		{Round: 1, Stack: "kernel", Workload: "download", Metrics: g(4)},
		{Round: 1, Stack: "kernel", Workload: "download@3%", Metrics: g(1)},
		{Round: 2, Stack: "kernel", Workload: "download", Metrics: g(2), Flagged: true},
		{Round: 2, Stack: "kernel", Workload: "download@3%", Metrics: g(1)},
		{Round: 3, Stack: "kernel", Workload: "download@3%", Metrics: g(1)}, // its clean run failed
		{Round: 3, Stack: "kernel", Workload: "download", Err: errors.New("boom")},
	}
	c := summarize(retention(recs, "download@3%", "download"), "kernel", "download@3%", "retention")
	if c.median != 0.375 || c.min != 0.25 || c.max != 0.5 || c.busy != 1 {
		t.Fatalf("retention cell %+v", c)
	}
}

func TestRenderLossTable(t *testing.T) {
	wls, _ := withLoss(workloads[:2], []float64{3})
	m := map[string]float64{"gbps": 1, "in_pkts": 1000, "in_drop": 30, "out_pkts": 500, "out_drop": 16, "in_big": 0, "out_big": 0,
		"srv_segs": 1000, "srv_retrans": 31, "srv_rto": 2, "cli_segs": 500, "cli_retrans": 0}
	recs := []runRecord{{Round: 1, Stack: "tapstack", Workload: "download@3%", Metrics: m}, {Round: 2, Stack: "tapstack", Workload: "download@3%", Metrics: m}}
	got := renderLossTable([]string{"tapstack"}, wls, recs)
	want := "| download at 3 % loss | tapstack | 3.00 % (60 of 2000) | 3.20 % (32 of 1000) | 0 | 3.10 % (62 of 2000) (tapstack server) | 4 |"
	if !strings.Contains(got, want) {
		t.Errorf("loss table lacks\n%s\ngot\n%s", want, got)
	}
	if strings.Contains(got, "| bulk") {
		t.Errorf("rows for runs that did not happen:\n%s", got)
	}
}

func TestReportRetentionRows(t *testing.T) {
	wls, err := withLoss(workloads[:2], []float64{1, 3})
	if err != nil {
		t.Fatal(err)
	}
	gbps := map[string]float64{"bulk": 4, "bulk@1%": 2, "bulk@3%": 1, "download": 4, "download@1%": 3, "download@3%": 2}
	var recs []runRecord
	for round := 1; round <= 2; round++ {
		for _, w := range wls {
			recs = append(recs, runRecord{Round: round, Stack: "kernel", Workload: w.Name, Metrics: map[string]float64{"gbps": gbps[w.Name]}})
		}
	}
	o := Options{Rounds: 2, Loss: []float64{1, 3}, LossTime: 10 * time.Second, LossMB: 16384}
	rep := renderReport(o, []string{"compare"}, []string{"kernel"}, wls, recs)
	var rows []string
	for _, l := range strings.Split(rep, "\n") {
		f := strings.Split(l, "|")
		if len(f) == 4 && (strings.HasPrefix(f[1], " bulk") || strings.HasPrefix(f[1], " download")) {
			rows = append(rows, strings.TrimSpace(f[1])+" = "+strings.Fields(f[2])[0])
		}
	}
	want := []string{
		"bulk, no loss (Gbit/s) = 4.00",
		"bulk at 1 % loss (Gbit/s) = 2.00",
		"bulk at 3 % loss (Gbit/s) = 1.00",
		"bulk retention at 1 % loss (÷ no loss, same stack, same round) = 0.500",
		"bulk retention at 3 % loss (÷ no loss, same stack, same round) = 0.250",
		"download, no loss (Gbit/s) = 4.00",
		"download at 1 % loss (Gbit/s) = 3.00",
		"download at 3 % loss (Gbit/s) = 2.00",
		"download retention at 1 % loss (÷ no loss, same stack, same round) = 0.750",
		"download retention at 3 % loss (÷ no loss, same stack, same round) = 0.500",
	}
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}
}
