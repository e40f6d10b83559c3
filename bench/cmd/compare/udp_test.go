package main

import (
	"encoding/binary"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// frame builds an Ethernet frame of an IPv4 UDP datagram to port.
func frame(port uint16, payload []byte, mutate func(f []byte)) []byte {
	f := make([]byte, 14+20+8+len(payload))
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(payload)))
	ip[9] = 17
	binary.BigEndian.PutUint16(ip[20+2:], port)
	copy(ip[28:], payload)
	if mutate != nil {
		mutate(f)
	}
	return f
}

func TestUDPPayload(t *testing.T) {
	tests := []struct {
		name   string
		f      []byte
		want   string
		wantOK bool
	}{
		{"udp to port", frame(5201, []byte("mxyz"), nil), "mxyz", true},
		{"empty payload", frame(5201, nil, nil), "", true},
		{"other port", frame(53, []byte("m"), nil), "", false},
		{"tcp", frame(5201, []byte("m"), func(f []byte) { f[14+9] = 6 }), "", false},
		{"arp", frame(5201, []byte("m"), func(f []byte) { f[12], f[13] = 0x08, 0x06 }), "", false},
		{"fragment", frame(5201, []byte("m"), func(f []byte) { f[14+6] = 0x20 }), "", false},
		{"ipv6 version", frame(5201, []byte("m"), func(f []byte) { f[14] = 0x65 }), "", false},
		{"short", frame(5201, nil, nil)[:40], "", false},
		{"options", func() []byte {
			// IHL 6: one word of options before the UDP header.
			f := frame(5201, []byte("mab"), nil)
			g := append(append(slices.Clone(f[:34]), 1, 1, 1, 1), f[34:]...)
			g[14] = 0x46
			return g
		}(), "mab", true},
	}
	for _, tt := range tests {
		p, ok := udpPayload(tt.f, 5201)
		if ok != tt.wantOK || string(p) != tt.want {
			t.Errorf("%s: udpPayload = %q, %v; want %q, %v", tt.name, p, ok, tt.want, tt.wantOK)
		}
	}
}

func TestParseLinkCounters(t *testing.T) {
	// `ip -s -j link show dev tsb0` (iproute2 6.1), trimmed.
	out := `[{"ifindex":2,"ifname":"tsb0","mtu":1500,"qdisc":"pfifo_fast","txqlen":1000,` +
		`"stats64":{"rx":{"bytes":0,"packets":7,"errors":0,"dropped":0,"over_errors":0,"multicast":0},` +
		`"tx":{"bytes":123,"packets":402488,"errors":0,"dropped":41760,"carrier_errors":0,"collisions":0}}}]`
	p, d, err := parseLinkTx([]byte(out))
	if err != nil || p != 402488 || d != 41760 {
		t.Fatalf("parseLinkTx = %d, %d, %v", p, d, err)
	}
	for _, bad := range []string{"", "[]", `[{"ifname":"x"}]`, `[{"stats64":{}},{"stats64":{}}]`} {
		if _, _, err := parseLinkTx([]byte(bad)); err == nil {
			t.Errorf("parseLinkTx accepted %q", bad)
		}
	}
	// `tc -s -j qdisc show dev DEV`: pfifo_fast, noqueue (no drops field), mq with children.
	for _, tt := range []struct {
		out  string
		want uint64
	}{
		{`[{"kind":"pfifo_fast","handle":"0:","bytes":0,"packets":0,"drops":12,"overlimits":0,"requeues":0,"backlog":0,"qlen":0}]`, 12},
		{`[{"kind":"noqueue","handle":"0:","root":true,"refcnt":2,"options":{}}]`, 0},
		{`[{"kind":"mq","drops":3},{"kind":"pfifo_fast","drops":1},{"kind":"pfifo_fast","drops":2}]`, 6},
	} {
		if got, err := parseQdiscDrops([]byte(tt.out)); err != nil || got != tt.want {
			t.Errorf("parseQdiscDrops(%s) = %d, %v; want %d", tt.out, got, err, tt.want)
		}
	}
	if _, err := parseQdiscDrops([]byte("Error: Cannot find device")); err == nil {
		t.Error("parseQdiscDrops accepted an error message")
	}
	softnet := "01cc9905 00000000 00000004 00000000 00000000\n0199ef3c 0000001a 00000002 00000000 00000000\n"
	if got, err := parseSoftnetDropped(softnet); err != nil || got != 26 {
		t.Errorf("parseSoftnetDropped = %d, %v; want 26", got, err)
	}
	if _, err := parseSoftnetDropped("01cc9905\n"); err == nil {
		t.Error("parseSoftnetDropped accepted a line without a dropped column")
	}
	a := linkCounters{TxPackets: 10, TxDropped: 5, QdiscDrops: 1, SoftnetDropped: 7}
	m := a.metrics(linkCounters{TxPackets: 110, TxDropped: 8, QdiscDrops: 1, SoftnetDropped: 6})
	if m["link_tx"] != 100 || m["link_drop"] != 3 || m["qdisc_drop"] != 0 || m["host_softnet_drop"] != 0 {
		t.Errorf("linkCounters.metrics = %v", m)
	}
}

func TestSinkMetrics(t *testing.T) {
	m := sinkMetrics(1001, 20, time.Second, 3*time.Second)
	if m["rx"] != 1001 || m["rx_warm"] != 20 || m["rx_pps"] != 500 || m["rx_window_s"] != 2 {
		t.Errorf("sinkMetrics = %v", m)
	}
	for _, n := range []int64{0, 1} {
		if _, ok := sinkMetrics(n, 0, time.Second, time.Second)["rx_pps"]; ok {
			t.Errorf("a rate from %d datagrams", n)
		}
	}
}

func TestUDPCounterDelta(t *testing.T) {
	before := map[string]uint64{"UdpInDatagrams": 5, "UdpRcvbufErrors": 0, "TcpOutSegs": 1}
	after := map[string]uint64{"UdpInDatagrams": 105, "UdpRcvbufErrors": 7, "TcpOutSegs": 9, "RawFrames": 3}
	got := udpCounterDelta("srv_", before, after)
	want := map[string]float64{"srv_udp_in": 100, "srv_rcvbuf_drop": 7, "srv_rx_frames": 3}
	if len(got) != len(want) {
		t.Fatalf("udpCounterDelta = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

func TestRunStacksAndSelection(t *testing.T) {
	var udp64 workload
	var names []string
	for _, w := range workloads {
		if w.Name == "udp64" {
			udp64 = w
		}
		if w.selected([]string{"udp"}) {
			names = append(names, w.Name)
		}
	}
	if got := strings.Join(names, ","); got != "udp64,udp1400,udprtt" {
		t.Errorf("-only udp selects %s", got)
	}
	stacks := []string{"tapstack", "gvisor"}
	if got := runStacks(udp64, stacks); !slices.Equal(got, []string{"tapstack", "gvisor", rawStack}) {
		t.Errorf("runStacks(udp64) = %v", got)
	}
	if !slices.Equal(stacks, []string{"tapstack", "gvisor"}) {
		t.Error("runStacks changed its argument")
	}
	if got := runStacks(workloads[0], stacks); !slices.Equal(got, stacks) {
		t.Errorf("runStacks(%s) = %v", workloads[0].Name, got)
	}
	if slices.Contains(stackNames(), rawStack) {
		t.Error("the raw TAP reader is among the default stacks")
	}
}

// udpRecords is one round of the UDP workloads with the TCP round trip.
func udpRecords() []runRecord {
	sink := func(stack string, rx, sent, linkDrop, sock float64) runRecord {
		m := map[string]float64{"rx_pps": rx, "send_pps": sent, "sent": sent, "rx": rx, "link_drop": linkDrop,
			"link_tx": sent - linkDrop, "qdisc_drop": 0, "host_softnet_drop": 0, "cli_sndbuf_err": 0}
		if stack != rawStack {
			m["srv_udp_inerr"], m["srv_netdev_drop"], m["srv_ip_discard"], m["srv_noport"] = sock, 0, 0, 0
		}
		return runRecord{Round: 1, Stack: stack, Workload: "udp64", Metrics: m}
	}
	return []runRecord{
		sink("tapstack", 300, 400, 40, 60),
		sink("gvisor", 100, 400, 200, 100),
		sink("kernel", 200, 200, 0, 0),
		sink(rawStack, 390, 400, 10, 0),
		{Round: 1, Stack: "tapstack", Workload: "udprtt", Metrics: map[string]float64{"p50_us": 30, "p99_us": 90}},
		{Round: 1, Stack: "tapstack", Workload: "rtt", Metrics: map[string]float64{"p50_us": 40, "p99_us": 80}},
	}
}

func TestAccountUDP(t *testing.T) {
	recs := udpRecords()
	recs = append(recs, runRecord{Round: 2, Stack: "tapstack", Workload: "udp64",
		Metrics: map[string]float64{"sent": 100, "rx": 50, "link_drop": 10, "srv_udp_inerr": 30, "srv_netdev_drop": 5}})
	a := accountUDP(recs, "tapstack", "udp64")
	if a.Runs != 2 || a.Sent != 500 || a.Delivered != 350 || a.LinkDrops != 50 || a.SockDrops != 90 || a.NetdevDrops != 5 || !a.HasStack {
		t.Fatalf("accountUDP = %+v", a)
	}
	if u := a.Unaccounted(); u != 5 {
		t.Errorf("Unaccounted = %v, want 5", u)
	}
	if raw := accountUDP(recs, rawStack, "udp64"); raw.HasStack || raw.Unaccounted() != 0 {
		t.Errorf("raw reader account = %+v", raw)
	}
}

func TestRenderUDP(t *testing.T) {
	var wls []workload
	for _, w := range workloads {
		if w.Name == "rtt" || w.Name == "udp64" || w.Name == "udprtt" {
			wls = append(wls, w)
		}
	}
	out := renderUDP([]string{"tapstack", "gvisor", "kernel"}, wls, udpRecords())
	for _, want := range []string{
		"| TAP ceiling (raw reader) |",
		"| tapstack ÷ TAP ceiling |",
		"| datagrams/s received by the server socket, 64-byte payload | 300 | 100 | 200 | 390 | 3.00 | 1.50 | 0.77 | 0.26 |",
		"| UDP round trip p50 ÷ TCP round trip p50 (same stack) | 0.75 | – | – | – |",
		"- tapstack ÷ gVisor datagrams/s, 64 B: 3.00 (target ≥ 2): met",
		"- tapstack ÷ TAP ceiling datagrams/s, 64 B: 0.77 (target ≥ 0.8): **not met**",
		"- tapstack UDP round trip p50 ÷ TCP round trip p50: 0.75 (target ≤ 1): met",
		"| udp64 | tapstack | 400 | 0 | 0 | 10.00 % (40 of 400) | 360 | 0 | 0 | 0 | 60 | 0 | 75.00 % (300 of 400) | 0.00 % (0 of 400) |",
		"| udp64 | TAP ceiling | 400 | 0 | 0 | 2.50 % (10 of 400) | 390 | 0 | – | – | – | – | 97.50 % (390 of 400) |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("renderUDP lacks %q:\n%s", want, out)
		}
	}
	if got := renderUDP([]string{"tapstack"}, workloads[:1], nil); got != "" {
		t.Errorf("renderUDP without UDP workloads = %q", got)
	}
	if math.IsNaN(accountUDP(nil, "tapstack", "udp64").Unaccounted()) {
		t.Error("empty account")
	}
}
