package main

import (
	"fmt"
	"slices"
	"strings"
)

// renderUDP is the report's UDP section: datagrams/s against the TAP's
// frame ceiling, the UDP round trip next to the TCP one of the same run,
// the targets, and where the datagrams went ("" when no UDP
// workload ran).
func renderUDP(stacks []string, wls []workload, records []runRecord) string {
	var sinks []workload
	var udpRTT, tcpRTT bool
	for _, w := range wls {
		switch {
		case w.ServerMode == "udpsink":
			sinks = append(sinks, w)
		case w.Name == "udprtt":
			udpRTT = true
		case w.Name == "rtt":
			tcpRTT = true
		}
	}
	if len(sinks) == 0 && !udpRTT {
		return ""
	}
	cols := slices.Clone(stacks)
	if len(sinks) > 0 && slices.ContainsFunc(records, func(r runRecord) bool { return r.Stack == rawStack }) {
		cols = append(cols, rawStack)
	}
	var pairs [][2]string
	for _, p := range [][2]string{{"tapstack", "gvisor"}, {"tapstack", "kernel"}, {"tapstack", rawStack}, {"gvisor", rawStack}} {
		if slices.Contains(cols, p[0]) && slices.Contains(cols, p[1]) {
			pairs = append(pairs, p)
		}
	}
	var b strings.Builder
	b.WriteString("\n## UDP\n\n| figure |")
	for _, s := range cols {
		fmt.Fprintf(&b, " %s |", stackTitles[s])
	}
	for _, p := range pairs {
		fmt.Fprintf(&b, " %s ÷ %s |", udpColName(p[0]), udpColName(p[1]))
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(cols)+len(pairs)) + "\n")
	row := func(label, wl, key, format string) {
		cells := map[string]cell{}
		fmt.Fprintf(&b, "| %s |", label)
		for _, s := range cols {
			cells[s] = summarize(records, s, wl, key)
			fmt.Fprintf(&b, " %s |", cells[s].render(format))
		}
		for _, p := range pairs {
			fmt.Fprintf(&b, " %s |", ratio(cells[p[0]], cells[p[1]]))
		}
		b.WriteString("\n")
	}
	for _, w := range sinks {
		size := strings.TrimPrefix(w.Name, "udp")
		row("datagrams/s received by the server socket, "+size+"-byte payload", w.Name, "rx_pps", "%.0f")
		row("sender's datagrams/s, "+size+"-byte payload", w.Name, "send_pps", "%.0f")
	}
	if udpRTT {
		row("UDP 1-byte round trip p50 (µs)", "udprtt", "p50_us", "%.0f")
		row("UDP 1-byte round trip p99 (µs)", "udprtt", "p99_us", "%.0f")
	}
	if tcpRTT {
		row("TCP 1-byte round trip p50 (µs), the rtt workload of this run", "rtt", "p50_us", "%.0f")
	}
	if udpRTT && tcpRTT {
		fmt.Fprintf(&b, "| UDP round trip p50 ÷ TCP round trip p50 (same stack) |")
		for _, s := range cols {
			fmt.Fprintf(&b, " %s |", ratio(summarize(records, s, "udprtt", "p50_us"), summarize(records, s, "rtt", "p50_us")))
		}
		b.WriteString(strings.Repeat(" – |", len(pairs)) + "\n")
	}
	b.WriteString("\nDatagrams/s received: datagrams the server's socket delivered to its reader (one read per datagram: " +
		"tapstack's and the kernel's ReadFromUDPAddrPort, gVisor gonet's ReadFrom), less the first, ÷ the time from the first to the " +
		"last read. Sender: one kernel UDP socket in the client netns (the TAP's for the TAP stacks, the veth's for the kernel), " +
		"connected, 64 datagrams per sendmmsg as fast as the kernel takes them, bounded in count and time (see the run log's send_s). " +
		"SO_RCVBUF 212992 bytes on every server socket (Linux's and tapstack's net.core.rmem_default; gVisor set to it, its default " +
		"is 32 KiB). TAP ceiling: the same sender and the same datagrams at a reader of the same TAP (one queue, no virtio-net header) " +
		"that only read(2)s frames into one buffer and counts the UDP frames to the port — no stack, no copy, no reply — measured " +
		"the same way: what a reader taking one frame per read can at most take off this TAP here. Round trips: 1-byte datagrams " +
		"to an echo, one outstanding, 100 warm-ups, an answer later than 500 ms is lost (the run log's lost).\n")
	if t := udpTargets(records, sinks, udpRTT && tcpRTT); t != "" {
		b.WriteString("\n" + t)
	}
	if len(sinks) > 0 {
		b.WriteString(renderUDPAccounting(cols, sinks, records))
	}
	return b.String()
}

func udpColName(s string) string {
	return map[string]string{"tapstack": "tapstack", "gvisor": "gVisor", "kernel": "Linux", rawStack: "TAP ceiling"}[s]
}

// udpTargets checks issue 14's targets against the medians.
func udpTargets(records []runRecord, sinks []workload, rtt bool) string {
	var b strings.Builder
	check := func(what string, a, c cell, want float64, atLeast bool) {
		if !a.hasValue || !c.hasValue || c.median == 0 {
			return
		}
		r := a.median / c.median
		ok := r >= want
		op := "≥"
		if !atLeast {
			ok, op = r <= want, "≤"
		}
		verdict := map[bool]string{true: "met", false: "**not met**"}[ok]
		fmt.Fprintf(&b, "- %s: %.2f (target %s %g): %s\n", what, r, op, want, verdict)
	}
	for _, w := range sinks {
		size := strings.TrimPrefix(w.Name, "udp")
		ts := summarize(records, "tapstack", w.Name, "rx_pps")
		check("tapstack ÷ gVisor datagrams/s, "+size+" B", ts, summarize(records, "gvisor", w.Name, "rx_pps"), 2, true)
		check("tapstack ÷ TAP ceiling datagrams/s, "+size+" B", ts, summarize(records, rawStack, w.Name, "rx_pps"), 0.8, true)
	}
	if rtt {
		check("tapstack UDP round trip p50 ÷ TCP round trip p50", summarize(records, "tapstack", "udprtt", "p50_us"),
			summarize(records, "tapstack", "rtt", "p50_us"), 1, false)
	}
	if b.Len() == 0 {
		return ""
	}
	return "Targets (issue 14), quotients of medians:\n\n" + b.String()
}

// udpAccount is where a stack's datagrams went over a sink workload's
// runs, summed over the rounds.
type udpAccount struct {
	Runs                                    int
	Sent, SndbufErrors                      float64
	QdiscDrops, LinkDrops, LinkPassed       float64
	HostSoftnetDrops                        float64
	NetdevDrops, IPDrops, SockDrops, NoPort float64
	Delivered                               float64
	HasStack                                bool // the stack reports drop counters
}

// Unaccounted is what no counter saw: sent less every drop on the way and
// what the socket delivered. Host softnet drops and the sender's
// SndbufErrors are not subtracted: they count datagrams the link's drops
// count too (a veth counts its peer's netif_rx failure, and udp_send_skb
// counts a qdisc's or veth's refusal as SndbufErrors).
func (a udpAccount) Unaccounted() float64 {
	return a.Sent - a.QdiscDrops - a.LinkDrops - a.NetdevDrops - a.IPDrops - a.SockDrops - a.NoPort - a.Delivered
}

func accountUDP(records []runRecord, stack, wl string) udpAccount {
	var a udpAccount
	for _, r := range records {
		if r.Stack != stack || r.Workload != wl || r.Err != nil {
			continue
		}
		m := r.Metrics
		a.Runs++
		a.Sent += m["sent"]
		a.SndbufErrors += m["cli_sndbuf_err"]
		a.QdiscDrops += m["qdisc_drop"]
		a.LinkDrops += m["link_drop"]
		a.LinkPassed += m["link_tx"]
		a.HostSoftnetDrops += m["host_softnet_drop"]
		if _, ok := m["srv_udp_inerr"]; ok {
			a.HasStack = true
		}
		a.NetdevDrops += m["srv_netdev_drop"]
		a.IPDrops += m["srv_ip_discard"] + m["srv_ip_hdrerr"] + m["srv_ip_addrerr"]
		a.SockDrops += m["srv_udp_inerr"]
		a.NoPort += m["srv_noport"]
		a.Delivered += m["rx"]
	}
	return a
}

func renderUDPAccounting(cols []string, sinks []workload, records []runRecord) string {
	var b strings.Builder
	b.WriteString("\n| run | stack | sent | sender's SndbufErrors | qdisc drops | link drops | link passed on | host softnet drops | " +
		"stack: netdev backlog | stack: IP | stack: socket (UdpInErrors) | stack: no port | delivered by the socket | unaccounted |\n" +
		"|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, w := range sinks {
		for _, s := range cols {
			a := accountUDP(records, s, w.Name)
			if a.Runs == 0 {
				continue
			}
			stackCol := func(v float64) string {
				if !a.HasStack {
					return "–"
				}
				return fmt.Sprintf("%.0f", v)
			}
			fmt.Fprintf(&b, "| %s | %s | %.0f | %.0f | %.0f | %s | %.0f | %.0f | %s | %s | %s | %s | %s | %s |\n",
				w.Name, udpColName(s), a.Sent, a.SndbufErrors, a.QdiscDrops, share(a.LinkDrops, a.Sent), a.LinkPassed,
				a.HostSoftnetDrops, stackCol(a.NetdevDrops), stackCol(a.IPDrops), stackCol(a.SockDrops), stackCol(a.NoPort),
				share(a.Delivered, a.Sent), share(a.Unaccounted(), a.Sent))
		}
	}
	b.WriteString("\nSums over the rounds, measured datagrams only (the 20 warm-ups before the clock starts are left out of sent and " +
		"delivered). The link is the TAP for tapstack, gVisor and the ceiling, the client's end of the veth (vc0) for the kernel: " +
		"link drops are its tx_dropped (`ip -s link`; a TAP drops when its ring of txqueuelen frames is full: the reader was too " +
		"slow), link passed on its tx_packets (frames its reader took, warm-ups and ARP included). The stack's own counters: " +
		"tapstack's SoftnetDropped, IpInDiscards+IpInHdrErrors+IpInAddrErrors, UdpInErrors (= UdpRcvbufErrors here), UdpNoPorts; " +
		"gVisor's IP malformed and invalid-destination, UDP ReceiveBufferErrors+malformed+checksum, UnknownPortErrors; the kernel's " +
		"from its server netns's /proc/net/snmp. Unaccounted = sent − qdisc − link − stack drops − delivered; host softnet drops " +
		"(/proc/net/softnet_stat, the whole machine) and the sender's SndbufErrors are shown but not subtracted, since they count " +
		"again datagrams a veth or a qdisc dropped.\n")
	return b.String()
}
