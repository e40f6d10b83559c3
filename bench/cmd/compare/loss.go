package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// Loss runs (-loss P,...) drop TCP packets at random with iptables'
// statistic match (this kernel has no netem) in the namespace on the
// client's side of the link to the server: the TAP's netns for the
// userspace stacks, the veth client's netns for the kernel. The client
// process then runs one hop further, in a leaf netns (end) joined to both
// by veths, and the drops are in FORWARD: a drop in OUTPUT is reported back
// to the sending TCP (ip_local_out fails, tcp_write_xmit keeps the segment
// and sends it again later as if new: no loss, no retransmission; measured:
// 3366 of a kernel client's data segments dropped in OUTPUT, 0 retransmitted),
// so it would not impair the bulk direction at all. In FORWARD neither TCP
// sees the drop, in either direction.
//
// Every stack must lose single frames, never a GSO super-packet as a unit:
// the leaf's veth ends and the kernel server's have tso and gso off, so GSO
// skbs are cut before they cross, and every veth end has gro off, so
// nothing is merged on arrival; a TAP without a virtio-net header neither
// offloads nor merges. A rule counting frames over 1500 bytes checks this
// in every run.

// Rule positions of one direction, in the order lossRules installs them
// (the second direction's follow at +3).
const (
	ruleAll  = 1 // counts every benchmark TCP packet
	ruleBig  = 2 // counts those over 1500 bytes (super-frames: must stay 0)
	ruleDrop = 3 // drops with the requested probability
)

// chainCounters are the packet counters of one direction's rules in one run.
type chainCounters struct {
	Pkts, Big, Dropped uint64
}

// checkLossTools says clearly what is missing for -loss.
func checkLossTools() error {
	for _, t := range []struct{ bin, pkg string }{{"iptables", "iptables"}, {"ethtool", "ethtool"}} {
		if _, err := exec.LookPath(t.bin); err != nil {
			return fmt.Errorf("-loss needs %s (it drops packets with iptables' statistic match and turns offloads off with ethtool); install it: apt-get install -y %s", t.bin, t.pkg)
		}
	}
	return nil
}

// lossDirections are the two directions through the FORWARD chain, each
// counted and impaired by its own rules.
var lossDirections = []struct{ name, port string }{{"server → client", "--sport"}, {"client → server", "--dport"}}

// lossRules are the iptables arguments for one direction: port is
// --sport for what the server sends, --dport for what the client sends.
func lossRules(port string, pct float64) [][]string {
	match := []string{"-A", "FORWARD", "-p", "tcp", port, strconv.Itoa(serverPort)}
	with := func(extra ...string) []string { return append(append([]string{}, match...), extra...) }
	return [][]string{
		with(),
		with("-m", "length", "--length", "1501:65535"),
		with("-m", "statistic", "--mode", "random", "--probability", strconv.FormatFloat(pct/100, 'f', 6, 64), "-j", "DROP"),
	}
}

func iptables(ns string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "iptables", "-w"}, args...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("iptables %s (netns %s): %v: %s", strings.Join(args, " "), ns, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// installLoss replaces the router netns's FORWARD rules with, for each
// direction, the counting rules and a drop rule of probability pct % (0:
// count only, so a clean run pays for the same netfilter work as a lossy
// one).
func installLoss(ns string, pct float64) error {
	if _, err := iptables(ns, "-F", "FORWARD"); err != nil {
		return err
	}
	for _, d := range lossDirections {
		for _, r := range lossRules(d.port, pct) {
			if _, err := iptables(ns, r...); err != nil {
				return err
			}
		}
	}
	return nil
}

// readLoss returns both directions' counters (in: server to client).
func readLoss(ns string) (in, out chainCounters, err error) {
	text, err := iptables(ns, "-L", "FORWARD", "-v", "-n", "-x", "--line-numbers")
	if err != nil {
		return in, out, err
	}
	if in, err = parseChainCounters(text, 0); err != nil {
		return in, out, fmt.Errorf("FORWARD: %w", err)
	}
	if out, err = parseChainCounters(text, ruleDrop); err != nil {
		return in, out, fmt.Errorf("FORWARD: %w", err)
	}
	return in, out, nil
}

// parseChainCounters reads the three rules after the first skip of
// `iptables -L CHAIN -v -n -x --line-numbers`: rule lines start with the
// rule number, then packets and bytes.
func parseChainCounters(text string, skip int) (chainCounters, error) {
	pkts := map[int]uint64{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		num, err := strconv.Atoi(f[0])
		if err != nil {
			continue // the chain and column headers
		}
		n, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return chainCounters{}, fmt.Errorf("rule %d: packets %q", num, f[1])
		}
		pkts[num] = n
	}
	for _, r := range []int{ruleAll, ruleBig, ruleDrop} {
		if _, ok := pkts[skip+r]; !ok {
			return chainCounters{}, fmt.Errorf("rule %d missing from the listing", skip+r)
		}
	}
	// The drop rule sees only what the counting rules passed on: all of it.
	return chainCounters{Pkts: pkts[skip+ruleAll], Big: pkts[skip+ruleBig], Dropped: pkts[skip+ruleDrop]}, nil
}

// removeLoss flushes the rules.
func removeLoss(ns string) { _, _ = iptables(ns, "-F", "FORWARD") }

// Addresses of the leaf netns where loss runs' clients live, joined to the
// TAP's netns and to the veth client's netns, which route for it.
var (
	endTAPSide = netip.MustParsePrefix("10.79.0.1/24") // end, towards the TAP's netns
	tapEndSide = netip.MustParsePrefix("10.79.0.2/24")
	endCliSide = netip.MustParsePrefix("10.80.0.1/24") // end, towards the veth client's netns
	cliEndSide = netip.MustParsePrefix("10.80.0.2/24")
)

// buildLossPath adds the leaf netns and turns offloads off on every veth
// end of the paths (see the comment at the top).
func (t *topology) buildLossPath() error {
	if err := t.addNetns(t.end); err != nil {
		return err
	}
	steps := [][]string{
		{"ip", "-n", t.end, "link", "add", "le0", "type", "veth", "peer", "name", "lr0", "netns", t.tap},
		{"ip", "-n", t.end, "link", "add", "le1", "type", "veth", "peer", "name", "lr1", "netns", t.cli},
		{"ip", "-n", t.end, "addr", "add", endTAPSide.String(), "dev", "le0"},
		{"ip", "-n", t.end, "addr", "add", endCliSide.String(), "dev", "le1"},
		{"ip", "-n", t.tap, "addr", "add", tapEndSide.String(), "dev", "lr0"},
		{"ip", "-n", t.cli, "addr", "add", cliEndSide.String(), "dev", "lr1"},
	}
	for _, dev := range []struct{ ns, name string }{{t.end, "le0"}, {t.end, "le1"}, {t.tap, "lr0"}, {t.cli, "lr1"}, {t.cli, "vc0"}, {t.srv, "vs0"}} {
		steps = append(steps,
			[]string{"ip", "netns", "exec", dev.ns, "ethtool", "-K", dev.name, "tso", "off", "gso", "off", "gro", "off"},
			[]string{"ip", "-n", dev.ns, "link", "set", dev.name, "up"})
	}
	steps = append(steps,
		[]string{"ip", "-n", t.end, "route", "add", tapStackAddr.Masked().String(), "via", tapEndSide.Addr().String()},
		[]string{"ip", "-n", t.end, "route", "add", vethServer.Masked().String(), "via", cliEndSide.Addr().String()},
		[]string{"ip", "-n", t.srv, "route", "add", endCliSide.Masked().String(), "via", vethClient.Addr().String()},
		[]string{"ip", "netns", "exec", t.tap, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"},
		[]string{"ip", "netns", "exec", t.cli, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"},
	)
	steps = append(steps, clientSysctls(t.end)...)
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// lossMetrics adds one run's counters to its metrics.
func lossMetrics(m map[string]float64, in, out chainCounters) {
	m["in_pkts"], m["in_drop"], m["in_big"] = float64(in.Pkts), float64(in.Dropped), float64(in.Big)
	m["out_pkts"], m["out_drop"], m["out_big"] = float64(out.Pkts), float64(out.Dropped), float64(out.Big)
}

// parseLoss reads -loss: comma-separated percentages, each in (0, 50].
func parseLoss(s string) ([]float64, error) {
	var out []float64
	for _, f := range splitList(s) {
		p, err := strconv.ParseFloat(strings.TrimSuffix(f, "%"), 64)
		if err != nil || p <= 0 || p > 50 {
			return nil, fmt.Errorf("-loss %q: want percentages in (0, 50], e.g. -loss 1,3", f)
		}
		out = append(out, p)
	}
	return out, nil
}

// errNoLossWorkload: -loss without a workload that can take it.
var errNoLossWorkload = errors.New("-loss applies to bulk and download only; none is selected")

// tcpCounters are the nstat names each server and client reports for its
// own TCP: segments sent, retransmitted, retransmission timeouts.
var tcpCounters = map[string]string{"TcpOutSegs": "segs", "TcpRetransSegs": "retrans", "TcpExtTCPTimeouts": "rto"}

// readKernelTCPCounters reads this process's netns's Tcp and TcpExt
// counters (nstat names) from /proc/self/net.
func readKernelTCPCounters() map[string]uint64 {
	m := map[string]uint64{}
	for _, f := range []string{"/proc/self/net/snmp", "/proc/self/net/netstat"} {
		if b, err := os.ReadFile(f); err == nil {
			for k, v := range parseSNMP(string(b)) {
				m[k] = v
			}
		}
	}
	return m
}

// parseSNMP reads the /proc/net/snmp and /proc/net/netstat format: pairs
// of lines "Tcp: Name1 Name2 ..." and "Tcp: v1 v2 ...", named as nstat does
// (TcpRetransSegs, TcpExtTCPTimeouts). Negative values (Tcp MaxConn) are
// left out.
func parseSNMP(text string) map[string]uint64 {
	m := map[string]uint64{}
	lines := strings.Split(text, "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) < 2 || len(names) != len(values) || names[0] != values[0] {
			continue
		}
		if _, err := strconv.ParseInt(names[1], 10, 64); err == nil {
			continue // a value line followed by the next group's names
		}
		prefix := strings.TrimSuffix(names[0], ":")
		for j := 1; j < len(names); j++ {
			if v, err := strconv.ParseUint(values[j], 10, 64); err == nil {
				m[prefix+names[j]] = v
			}
		}
		i++
	}
	return m
}

// counterDelta returns the tcpCounters of after minus before, under their
// short names with a prefix (srv_retrans, cli_segs, ...).
func counterDelta(prefix string, before, after map[string]uint64) map[string]float64 {
	out := map[string]float64{}
	for name, short := range tcpCounters {
		a, ok := after[name]
		if !ok {
			continue
		}
		out[prefix+short] = float64(a - min(before[name], a))
	}
	return out
}
