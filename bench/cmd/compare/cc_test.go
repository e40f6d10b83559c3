package main

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParseCC(t *testing.T) {
	for _, ok := range []string{"cubic", "reno", "bbr", "default", " cubic ", "dctcp", "highspeed"} {
		if got, err := parseCC(ok); err != nil || got != strings.TrimSpace(ok) {
			t.Errorf("parseCC(%q) = %q, %v", ok, got, err)
		}
	}
	for _, bad := range []string{"", "CUBIC", "cubic,reno", "a-b", "0reno", "averyveryverylongname"} {
		if _, err := parseCC(bad); err == nil {
			t.Errorf("parseCC(%q) accepted", bad)
		}
	}
	if ccChosen("default") || ccChosen("") || !ccChosen("cubic") {
		t.Error("ccChosen")
	}
}

func TestRouteCongctlArgs(t *testing.T) {
	tests := []struct {
		target, get string
		want        string
	}{
		// `ip -o route get` (iproute2 6.1) on the TAP's netns, on-link.
		{"10.77.0.2", "10.77.0.2 dev tsb0 src 10.77.0.1 uid 0 \\    cache \n",
			"route replace 10.77.0.2/32 dev tsb0 src 10.77.0.1 congctl cubic"},
		// Through a gateway (the loss path's leaf netns).
		{"10.78.0.2", "10.78.0.2 via 10.80.0.2 dev le1 src 10.80.0.1 uid 0 \\    cache \n",
			"route replace 10.78.0.2/32 via 10.80.0.2 dev le1 src 10.80.0.1 congctl cubic"},
	}
	for _, tt := range tests {
		args, err := routeCongctlArgs(netip.MustParseAddr(tt.target), tt.get, "cubic")
		if err != nil || strings.Join(args, " ") != tt.want {
			t.Errorf("routeCongctlArgs(%s) = %q, %v; want %q", tt.target, strings.Join(args, " "), err, tt.want)
		}
	}
	for _, bad := range []string{"", "RTNETLINK answers: Network is unreachable", "10.77.0.9 dev tsb0", "10.77.0.2 via 10.77.0.1"} {
		if args, err := routeCongctlArgs(netip.MustParseAddr("10.77.0.2"), bad, "cubic"); err == nil {
			t.Errorf("routeCongctlArgs accepted %q: %v", bad, args)
		}
	}
}

// `ss -tinH state established dst ...` (iproute2 6.1): one address line
// and one info line per connection, the algorithm after the option flags.
const ssOutput = `0      0          10.99.0.1:59006    10.99.0.2:5555
	 cubic wscale:10,10 rto:204 rtt:0.106/0.053 mss:1448 pmtu:1500 rcvmss:536 advmss:1448 cwnd:10 bytes_acked:1 segs_out:2 segs_in:1 send 1092830189bps
0      0          10.99.0.1:59008    10.99.0.2:5555
	 ts sack bbr wscale:10,10 rto:200 rtt:0.046/0.023 mss:1448 cwnd:10 bbr:(bw:0bps,mrtt:0.046,pacing_gain:1,cwnd_gain:1) send 2518260870bps
0      0          10.99.0.1:59010    10.99.0.2:5555
	 ts sack cubic wscale:7,7 rto:204 rtt:0.1/0.05 cwnd:10
`

func TestParseSSCongestion(t *testing.T) {
	known := []string{"reno", "bbr", "cubic"}
	m := parseSSCongestion(ssOutput, known)
	if len(m) != 2 || m["cubic"] != 2 || m["bbr"] != 1 {
		t.Fatalf("parseSSCongestion = %v", m)
	}
	if got := ccCounts(m); got != "cubic ×2, bbr ×1" {
		t.Errorf("ccCounts = %q", got)
	}
	if got := ccCounts(map[string]int{"cubic": 5}); got != "cubic" {
		t.Errorf("ccCounts one = %q", got)
	}
	if m := parseSSCongestion("", known); len(m) != 0 {
		t.Errorf("empty output: %v", m)
	}
	// A FIN-WAIT socket's info line is empty; address lines name no algorithm.
	if m := parseSSCongestion("0 0 10.0.0.1:1 10.0.0.2:2\n\t     \n", known); len(m) != 0 {
		t.Errorf("no info: %v", m)
	}
}

// fakeListener hands out the conns it holds, then fails.
type fakeListener struct {
	conns []net.Conn
}

func (l *fakeListener) Accept() (net.Conn, error) {
	if len(l.conns) == 0 {
		return nil, net.ErrClosed
	}
	c := l.conns[0]
	l.conns = l.conns[1:]
	return c, nil
}
func (l *fakeListener) Close() error   { return nil }
func (l *fakeListener) Addr() net.Addr { return &net.TCPAddr{} }

func TestCCListenerRecordsFirstConnection(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	reads := 0
	ln := &ccListener{Listener: &fakeListener{conns: []net.Conn{a, b}}, read: func(c net.Conn) (string, error) {
		reads++
		if c != a {
			return "bbr", nil
		}
		return "cubic", nil
	}}
	if got := ln.measured(); got != "" {
		t.Fatalf("before any accept: %q", got)
	}
	for range 2 {
		if _, err := ln.Accept(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ln.Accept(); err == nil {
		t.Fatal("third accept succeeded")
	}
	if got := ln.measured(); got != "cubic" || reads != 1 {
		t.Errorf("measured %q after %d reads, want cubic after 1", got, reads)
	}
	failing := &ccListener{Listener: &fakeListener{conns: []net.Conn{a}},
		read: func(net.Conn) (string, error) { return "", errors.New("no getsockopt") }}
	_, _ = failing.Accept()
	if got := failing.measured(); !strings.HasPrefix(got, "unread") {
		t.Errorf("failed read recorded as %q", got)
	}
}

// The stacks' own checks: no socket is bound or connected, no packet sent.
func TestCheckCC(t *testing.T) {
	for _, tt := range []struct {
		stack   string
		ok, bad string
	}{{"tapstack", "cubic", "bbr"}, {"gvisor", "cubic", "bbr"}} {
		d := stackDefs[tt.stack]
		if err := d.CheckCC(tt.ok); err != nil {
			t.Errorf("%s %s: %v", tt.stack, tt.ok, err)
		}
		if err := d.CheckCC(tt.bad); err == nil || !strings.Contains(err.Error(), tt.stack+" cannot run congestion control") {
			t.Errorf("%s %s: %v", tt.stack, tt.bad, err)
		}
	}
	if got := stackDefs["gvisor"].DefaultCC(); got != "reno" {
		t.Errorf("gVisor's default: %q", got)
	}
	if got := stackDefs["tapstack"].DefaultCC(); got != "cubic" {
		t.Errorf("tapstack's default: %q", got)
	}
	// reno is allowed to every user (tcp_allowed_congestion_control).
	if slices.Contains(kernelAvailableCC(), "reno") {
		if err := checkKernelCC("reno"); err != nil {
			t.Errorf("kernel reno: %v", err)
		}
	}
	if err := checkKernelCC("nosuchcc"); err == nil || !strings.Contains(err.Error(), "the kernel cannot run") {
		t.Errorf("kernel nosuchcc: %v", err)
	}
	if err := checkCC("default", []string{"gvisor"}); err != nil {
		t.Errorf("-cc default: %v", err)
	}
}

func TestCCReport(t *testing.T) {
	bulk := workload{Name: "bulk@3%", Title: "bulk", Sender: "client", LossRun: true, Loss: 3, Base: "bulk"}
	download := workload{Name: "download@3%", Title: "download", Sender: "server", LossRun: true, Loss: 3, Base: "download"}
	recs := []runRecord{
		{Round: 1, Stack: "kernel", Workload: bulk.Name, ServerCC: "cubic", ClientCC: "cubic", Metrics: map[string]float64{"gbps": 1}},
		{Round: 2, Stack: "kernel", Workload: bulk.Name, ServerCC: "cubic", ClientCC: "bbr", Metrics: map[string]float64{"gbps": 1}},
		{Round: 1, Stack: "kernel", Workload: download.Name, ServerCC: "cubic", ClientCC: "cubic", Metrics: map[string]float64{"gbps": 1}},
		{Round: 1, Stack: "gvisor", Workload: download.Name, ServerCC: "reno", Metrics: map[string]float64{"gbps": 1}},
		{Round: 2, Stack: "gvisor", Workload: download.Name, Err: errors.New("boom")},
	}
	if got := senderCC(recs, "kernel", bulk); got != "bbr ×1, cubic ×1" {
		t.Errorf("bulk sender: %q", got)
	}
	if got := senderCC(recs, "kernel", download); got != "cubic" {
		t.Errorf("download sender: %q", got)
	}
	if got := senderCC(recs, "tapstack", download); got != "" {
		t.Errorf("no runs: %q", got)
	}
	note := ccNote(Options{CC: "cubic"}, []string{"gvisor", "kernel"}, recs)
	for _, want := range []string{"`-cc cubic`", "gVisor (TAP) server reno ×1, its kernel clients not-read ×1;",
		"Linux (veth) server cubic ×3, its kernel clients cubic ×2, bbr ×1."} {
		if !strings.Contains(note, want) {
			t.Errorf("ccNote lacks %q:\n%s", want, note)
		}
	}
	if note := ccNote(Options{CC: "default"}, []string{"gvisor"}, nil); !strings.Contains(note, "each stack its own (gvisor reno;") {
		t.Errorf("default ccNote:\n%s", note)
	}
	table := renderLossTable([]string{"gvisor", "kernel"}, []workload{bulk, download}, recs)
	for _, want := range []string{"(kernel client, bbr ×1, cubic ×1)", "(gvisor server, reno)", "(kernel server, cubic)"} {
		if !strings.Contains(table, want) {
			t.Errorf("loss table lacks %q:\n%s", want, table)
		}
	}
	if line := recs[0].line(); !strings.Contains(line, "cc_srv=cubic cc_cli=cubic") {
		t.Errorf("run line: %s", line)
	}
	if line := recs[3].line(); !strings.Contains(line, "cc_srv=reno cc_cli=not-read") {
		t.Errorf("run line: %s", line)
	}
}
