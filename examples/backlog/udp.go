package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/internal/testenv/netns"
	"github.com/tapstack/tapstack/stack"
)

// udpSent is what the UDP sender process reports: the datagrams write(2)
// accepted, and the namespace's Udp counters (/proc/net/snmp) that moved
// while it sent. With IP_RECVERR off (Go's default) a datagram the qdisc
// refuses still returns success from write(2), counted in SndbufErrors
// (udp_send_skb), so the qdisc's drops must be read on tap1 too.
type udpSent struct {
	Written, Failed            int
	FirstErr                   string `json:",omitempty"`
	OutDatagrams, SndbufErrors uint64
}

// runUDPSender is the client process in UDP mode: Count datagrams of Size
// bytes to Addr from one connected kernel socket, as fast as the kernel
// takes them. It prints one udpSent line.
func runUDPSender(o clientOrders) int {
	before, err := kernelUDPCounters()
	if err != nil {
		fmt.Fprintln(os.Stderr, "backlog udp sender:", err)
		return 2
	}
	c, err := net.Dial("udp", o.Addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "backlog udp sender:", err)
		return 2
	}
	var r udpSent
	msg := make([]byte, o.Size)
	for range o.Count {
		if _, err := c.Write(msg); err != nil {
			r.Failed++
			if r.FirstErr == "" {
				r.FirstErr = err.Error()
			}
			continue
		}
		r.Written++
	}
	c.Close()
	after, err := kernelUDPCounters()
	if err != nil {
		fmt.Fprintln(os.Stderr, "backlog udp sender:", err)
		return 2
	}
	r.OutDatagrams = after["OutDatagrams"] - before["OutDatagrams"]
	r.SndbufErrors = after["SndbufErrors"] - before["SndbufErrors"]
	json.NewEncoder(os.Stdout).Encode(r)
	return 0
}

// kernelUDPCounters reads the Udp rows of /proc/net/snmp, which show the
// network namespace of the reading process.
func kernelUDPCounters() (map[string]uint64, error) {
	f, err := os.Open("/proc/net/snmp")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rows [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 0 && fields[0] == "Udp:" {
			rows = append(rows, fields[1:])
		}
	}
	if len(rows) != 2 || len(rows[0]) != len(rows[1]) {
		return nil, fmt.Errorf("/proc/net/snmp: no Udp rows")
	}
	m := map[string]uint64{}
	for i, name := range rows[0] {
		m[name], _ = strconv.ParseUint(rows[1][i], 10, 64)
	}
	return m, nil
}

// sendUDP runs the UDP sender inside the namespace and waits for it.
func (d *demo) sendUDP(addr netip.AddrPort, count, size int) (udpSent, error) {
	var r udpSent
	raw, err := json.Marshal(clientOrders{Addr: addr.String(), Count: count, Size: size, UDP: true})
	if err != nil {
		return r, err
	}
	self, err := os.Executable()
	if err != nil {
		return r, err
	}
	cmd := exec.CommandContext(d.ctx, "ip", "netns", "exec", d.ns, self)
	cmd.Env = append(os.Environ(), clientEnv+"="+string(raw))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if d.ctx.Err() != nil {
		return r, errInterrupted
	}
	if err != nil {
		return r, fmt.Errorf("udp sender in netns %s: %w", d.ns, err)
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("udp sender: %w: %q", err, out)
	}
	return r, nil
}

// tapStats is the kernel's view of a TAP device: what its root qdisc
// passed and dropped (tc -s qdisc), and what the TAP handed to the stack's
// reads (tx_packets, counted as each frame is read) or dropped because its
// ring was full (tx_dropped, tun_net_xmit).
type tapStats struct {
	QdiscSent, QdiscDrop, QdiscQlen uint64
	TxPackets, TxDropped            uint64
}

func (d *demo) tapStats(dev string) (tapStats, error) {
	var st tapStats
	var link []struct {
		Stats64 struct {
			Tx struct{ Packets, Dropped uint64 } `json:"tx"`
		} `json:"stats64"`
	}
	out, err := exec.Command("ip", "-n", d.ns, "-s", "-j", "link", "show", dev).Output()
	if err != nil {
		return st, fmt.Errorf("ip -n %s -s -j link show %s: %w", d.ns, dev, err)
	}
	if err := json.Unmarshal(out, &link); err != nil || len(link) != 1 {
		return st, fmt.Errorf("ip -s -j link show %s: %v: %q", dev, err, out)
	}
	var qd []struct {
		Root    bool   `json:"root"`
		Packets uint64 `json:"packets"`
		Drops   uint64 `json:"drops"`
		Qlen    uint64 `json:"qlen"`
	}
	out, err = exec.Command("tc", "-n", d.ns, "-s", "-j", "qdisc", "show", "dev", dev).Output()
	if err != nil {
		return st, fmt.Errorf("tc -n %s -s -j qdisc show dev %s: %w", d.ns, dev, err)
	}
	if err := json.Unmarshal(out, &qd); err != nil {
		return st, fmt.Errorf("tc -s -j qdisc show dev %s: %v: %q", dev, err, out)
	}
	st.TxPackets, st.TxDropped = link[0].Stats64.Tx.Packets, link[0].Stats64.Tx.Dropped
	for _, q := range qd {
		if q.Root {
			st.QdiscSent, st.QdiscDrop, st.QdiscQlen = q.Packets, q.Drops, q.Qlen
		}
	}
	return st, nil
}

func (k tapStats) delta(b tapStats) tapStats {
	return tapStats{QdiscSent: k.QdiscSent - b.QdiscSent, QdiscDrop: k.QdiscDrop - b.QdiscDrop,
		TxPackets: k.TxPackets - b.TxPackets, TxDropped: k.TxDropped - b.TxDropped}
}

// udpLink is one variant's world: a TAP of its own in the demo's
// namespace, a stack on it built from cfg, and the socket the flood aims
// at, which nobody reads until the flood has been accounted for.
type udpLink struct {
	dev    string
	tap    *driver.TAP
	st     *stack.Stack
	sock   *stack.UDPConn
	target netip.AddrPort
	once   sync.Once
}

// openUDPLink makes dev with the kernel at .1 and the stack at .2 of
// subnet. The kernel knows the stack's MAC from the start (a permanent
// neighbour entry) and has no IPv6 on dev, so it sends nothing on dev but
// the flood: no ARP, no neighbour discovery to tell apart from it. The
// TAP's ring holds txqueuelen frames (tun resizes it to the device's
// txqueuelen).
func (d *demo) openUDPLink(dev string, subnet netip.Prefix, txqueuelen int, cfg stack.Config) (*udpLink, error) {
	kernel := subnet.Addr().Next()
	local := kernel.Next()
	l := &udpLink{dev: dev, target: netip.AddrPortFrom(local, 9000)}
	if err := netns.Do(d.ns, func() (err error) { l.tap, err = driver.OpenTAP(dev, 1); return err }); err != nil {
		return nil, err
	}
	st, err := stack.New(cfg)
	if err != nil {
		l.close()
		return nil, err
	}
	l.st = st
	if err := st.Attach(l.tap, netip.PrefixFrom(local, subnet.Bits())); err != nil {
		l.close()
		return nil, err
	}
	for _, args := range [][]string{
		{"link", "set", dev, "addrgenmode", "none", "txqueuelen", strconv.Itoa(txqueuelen)},
		{"addr", "add", netip.PrefixFrom(kernel, subnet.Bits()).String(), "dev", dev},
		{"link", "set", dev, "up"},
		{"neigh", "replace", local.String(), "lladdr", l.tap.MAC().String(), "dev", dev, "nud", "permanent"},
	} {
		if err := d.ip(args...); err != nil {
			l.close()
			return nil, err
		}
	}
	if l.sock, err = st.ListenUDP(l.target); err != nil {
		l.close()
		return nil, err
	}
	// Published whole, for the teardown of an interrupted demo.
	d.linksMu.Lock()
	d.udpLinks = append(d.udpLinks, l)
	d.linksMu.Unlock()
	return l, nil
}

func (l *udpLink) close() {
	l.once.Do(func() {
		if l.sock != nil {
			l.sock.Close()
		}
		if l.st != nil {
			l.st.Close()
		}
		l.tap.Close() // idempotent; closing it removes dev

	})
}

// udpHops is one flood accounted for hop by hop, from the sender's write
// to the socket's queue.
type udpHops struct {
	sender udpSent
	k      tapStats    // tap's kernel counters over the flood
	c      counterSnap // the stack's counters over the flood
	sock   stack.UDPSocketInfo
	ss     string // the stack's ss listing once the flood was dealt with
	asked  int    // datagrams the sender was told to send
	read   int    // datagrams the application read afterwards
}

// own is the frames the kernel sent on the TAP besides the datagrams
// (none are expected: see openUDPLink).
func (h udpHops) own() int64 {
	return int64(h.k.QdiscSent+h.k.QdiscDrop) - int64(h.sender.Written)
}

// stackOther is what the stack took in that is neither dropped by the
// backlog nor a datagram for the socket: non-IPv4 frames, IP-level drops,
// UDP errors other than a full receive queue, datagrams for closed ports.
func (h udpHops) stackOther() uint64 {
	c := h.c
	nonIP := c["SoftnetProcessed"] - c["IpInReceives"]
	ipDrops := c["IpInHdrErrors"] + c["IpInAddrErrors"] + c["IpInUnknownProtos"] + c["IpInDiscards"] +
		c["IpExtInCsumErrors"] + c["IpExtInTruncatedPkts"]
	return nonIP + ipDrops + c["NetdevRxRunt"] + c["NetdevRxOtherHost"] + c["UdpNoPorts"] + (c["UdpInErrors"] - c["UdpRcvbufErrors"])
}

// accounted is where every frame the kernel put on the TAP ended.
func (h udpHops) accounted() uint64 {
	return h.k.QdiscDrop + h.k.TxDropped + h.c["SoftnetDropped"] + h.c["UdpRcvbufErrors"] + h.c["UdpInDatagrams"] + h.stackOther()
}

// floodUDP sends count datagrams at l's socket, waits until the stack has
// dealt with every frame the kernel queued on l's TAP, then reads the
// socket's queue out, and returns the counts of each hop.
func (d *demo) floodUDP(l *udpLink, count, size int) (udpHops, error) {
	h := udpHops{asked: count}
	c0 := snap(l.st)
	k0, err := d.tapStats(l.dev)
	if err != nil {
		return h, err
	}
	if h.sender, err = d.sendUDP(l.target, count, size); err != nil {
		return h, err
	}
	c1, k1, err := d.drainTAP(l)
	if err != nil {
		return h, err
	}
	h.c, h.k = c1.delta(c0), k1.delta(k0)
	for _, s := range l.st.UDPSockets() {
		if s.Local == l.target {
			h.sock = s
		}
	}
	var ss strings.Builder
	l.st.WriteSockets(&ss)
	h.ss = ss.String()
	// The application reads now, exactly what is queued: each read
	// returns at once.
	buf := make([]byte, size+1)
	for range h.sock.Datagrams {
		if _, _, err := l.sock.ReadFromUDPAddrPort(buf); err != nil {
			return h, err
		}
		h.read++
	}
	return h, nil
}

// drainTAP waits until every frame the kernel queued on l's TAP has been
// dealt with: none waits in the qdisc or the TAP's ring, and the stack has
// finished with each one it read (handled to the end, or dropped and
// counted). The stack's counters are read first: they only grow, never
// past the kernel's, so when the two agree nothing was between them. The
// wait has no bound of its own: it ends when the counts agree (or on
// Ctrl-C, or when a test's deadline kills the demo).
func (d *demo) drainTAP(l *udpLink) (counterSnap, tapStats, error) {
	pause := time.Millisecond
	for {
		c := snap(l.st)
		k, err := d.tapStats(l.dev)
		if err != nil {
			return nil, k, err
		}
		sink := c["SoftnetProcessed"] + c["SoftnetDropped"] + c["NetdevRxRunt"] + c["NetdevRxOtherHost"]
		if k.QdiscQlen == 0 && k.QdiscSent == k.TxPackets+k.TxDropped && sink == k.TxPackets {
			return c, k, nil
		}
		if err := d.wait(pause); err != nil {
			return nil, k, err
		}
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// step5 floods a UDP socket that does not read, twice: on a stack with
// Linux's defaults the socket's receive queue drops and the netdev backlog
// does not; with a tiny netdev_max_backlog, a large SO_RCVBUF and threaded
// NAPI, the backlog drops and the socket does not.
func (d *demo) step5() error {
	d.begin(5, "UDP flood: which queue drops first")
	count, size := d.tm.udpCount, 1000
	d.say("A kernel UDP socket in the namespace writes %d datagrams of %d bytes, as fast as the kernel takes them,", count, size)
	d.say("to a tapstack UDP socket that reads nothing until the flood has been counted. Each variant has a TAP")
	d.say("and a stack of its own, and the kernel sends nothing else on that TAP (its neighbour entry for the")
	d.say("stack is permanent, it has no IPv6 there), so every frame on it is a datagram of the flood. The TAP's")
	d.say("txqueuelen is %d, not 1000: its ring, where tun_net_xmit drops (TX dropped) when the stack's reader", count)
	d.say("falls behind the sender, then holds the whole flood, so what is lost is lost in the stack's queues.")

	// 5a: what stack.New gives.
	a, err := d.openUDPLink("tap1", netip.MustParsePrefix("10.0.1.0/24"), count, stack.Config{})
	if err != nil {
		return err
	}
	defer a.close()
	d.say("\n  -- 5a: Linux defaults: net.core.netdev_max_backlog=%s, SO_RCVBUF = net.core.rmem_default = %s --",
		sysctl(a.st, "net.core.netdev_max_backlog"), sysctl(a.st, "net.core.rmem_default"))
	d.say("  %s on %s, one TAP queue; the goroutine reading it runs the softirq itself (netif_rx).", a.target, a.dev)
	ha, err := d.floodUDP(a, count, size)
	if err != nil {
		return err
	}
	d.printHops(ha, a)
	d.tapRingNote(ha, a)
	truesize := 0
	if ha.sock.Datagrams > 0 {
		truesize = ha.sock.RecvQ / ha.sock.Datagrams
	}
	d.say("  The socket queue is the one that overflows. __udp_enqueue_schedule_skb refuses a datagram once")
	d.say("  sk_rmem_alloc > sk_rcvbuf, charging each its truesize (%d bytes here for %d of data), so", truesize, size)
	d.say("  %d/%d+1 = %d fit — the last one takes the queue past its bound — and every later one is refused:",
		ha.sock.RcvBuf, max(truesize, 1), ha.sock.RcvBuf/max(truesize, 1)+1)
	d.say("  UdpRcvbufErrors (and UdpInErrors) +%d, ss skmem d%d. The netdev backlog drops nothing: with one",
		ha.c["UdpRcvbufErrors"], ha.sock.Drops)
	d.say("  queue whose reader runs the softirq inline, a frame is handled before the next one is read, so")
	d.say("  the backlog never holds more than one frame, whatever netdev_max_backlog says.")
	d.result("5a", ha, a, "truesize="+strconv.Itoa(truesize))
	a.close()

	// 5b: a backlog too small for the burst, a socket large enough for all.
	const tinyBacklog = 8
	rcvbuf := count * (size + 1024) // doubled, over twice the truesize of the flood
	b, err := d.openUDPLink("tap2", netip.MustParsePrefix("10.0.2.0/24"), count, stack.Config{ThreadedNAPI: true, Shards: 1,
		Sysctls: map[string]string{"net.core.netdev_max_backlog": strconv.Itoa(tinyBacklog), "net.core.rmem_max": strconv.Itoa(rcvbuf)}})
	if err != nil {
		return err
	}
	defer b.close()
	if err := b.sock.SetReadBuffer(rcvbuf); err != nil {
		return err
	}
	d.say("\n  -- 5b: net.core.netdev_max_backlog=%d, SO_RCVBUF %d, threaded NAPI --", tinyBacklog, 2*rcvbuf)
	d.say("  %s on %s. SO_RCVBUF: setsockopt(%d) after raising net.core.rmem_max, doubled as Linux does:", b.target, b.dev, rcvbuf)
	d.say("  room for the whole flood. Threaded NAPI (stack.Config.ThreadedNAPI): the reader only queues frames on")
	d.say("  the backlog and a worker goroutine handles them, as when RPS steers packets to another CPU's backlog.")
	hb, err := d.floodUDP(b, count, size)
	if err != nil {
		return err
	}
	d.printHops(hb, b)
	d.tapRingNote(hb, b)
	d.say("  Now the backlog is the queue that overflows: enqueue_to_backlog drops a frame when the backlog holds")
	d.say("  more than netdev_max_backlog = %d frames, and the reader queues them faster than the worker takes", tinyBacklog)
	d.say("  them whenever the worker waits to be scheduled: softnet_stat dropped +%d of %d frames read.",
		hb.c["SoftnetDropped"], hb.k.TxPackets)
	d.say("  The socket, with room for every datagram, refuses none: UdpRcvbufErrors +%d.", hb.c["UdpRcvbufErrors"])
	d.result("5b", hb, b, "threaded=1")
	b.close()
	return d.wait(d.tm.lingerAt)
}

// tapRingNote explains drops at the TAP's ring (none while it holds the
// whole flood): they are the kernel's, before the stack sees the frame.
func (d *demo) tapRingNote(h udpHops, l *udpLink) {
	if h.k.TxDropped == 0 {
		return
	}
	d.say("  (%s's ring dropped %d: the stack's reader fell behind the sender by more than txqueuelen frames;", l.dev, h.k.TxDropped)
	d.say("  tun_net_xmit drops there, before the stack, counted in TX dropped on the kernel's side.)")
}

func sysctl(st *stack.Stack, name string) string {
	v, err := st.Sysctl(name)
	if err != nil {
		return "?"
	}
	return v
}

// printHops prints a flood's hops in path order.
func (d *demo) printHops(h udpHops, l *udpLink) {
	c, k := h.c, h.k
	d.say("  %-58s %8s", "hop (where counted)", "datagrams")
	d.say("  %-58s %8d  (kernel Udp OutDatagrams +%d, SndbufErrors +%d)", "sent: write(2) returned success", h.sender.Written,
		h.sender.OutDatagrams, h.sender.SndbufErrors)
	if h.sender.Failed > 0 {
		d.say("  %-58s %8d  (%s)", "not sent: write(2) failed", h.sender.Failed, h.sender.FirstErr)
	}
	d.say("  %-58s %8d", "dropped by "+l.dev+"'s qdisc (tc -s qdisc: dropped)", k.QdiscDrop)
	d.say("  %-58s %8d  (the stack read %d)", "dropped by "+l.dev+"'s ring (ip -s link: TX dropped)", k.TxDropped, k.TxPackets)
	d.say("  %-58s %8d  (processed %d)", "dropped by the netdev backlog (softnet_stat dropped)", c["SoftnetDropped"], c["SoftnetProcessed"])
	d.say("  %-58s %8d  (ss skmem d%d)", "dropped by the socket queue (UdpRcvbufErrors)", c["UdpRcvbufErrors"], h.sock.Drops)
	if o := h.stackOther(); o != 0 {
		d.say("  %-58s %8d", "other (non-IPv4, IP drops, UdpNoPorts, other UdpInErrors)", o)
	}
	d.say("  %-58s %8d  (UdpInDatagrams; the application read %d)", "delivered to the socket queue", c["UdpInDatagrams"], h.read)
	sum := fmt.Sprintf("%d + %d + %d + %d + %d", k.QdiscDrop, k.TxDropped, c["SoftnetDropped"], c["UdpRcvbufErrors"], c["UdpInDatagrams"])
	if o := h.stackOther(); o != 0 {
		sum += fmt.Sprintf(" + %d", o)
	}
	own := h.own()
	verdict := "every datagram accounted for"
	switch {
	case int64(h.accounted()) != int64(h.sender.Written)+own:
		verdict = fmt.Sprintf("MISMATCH: %d frames on %s are not accounted for", int64(h.sender.Written)+own-int64(h.accounted()), l.dev)
	case own != 0:
		verdict = fmt.Sprintf("every frame accounted for, %d of them the kernel's own (not the flood's)", own)
	}
	d.say("  %-58s %8d  = %s: %s", "accounted", h.accounted(), sum, verdict)
	d.say("  ss -uanm on the stack before the application reads (Recv-Q = truesize charged against SO_RCVBUF):")
	for _, line := range strings.Split(strings.TrimRight(h.ss, "\n"), "\n") {
		d.say("    %s", line)
	}
}

// result prints a variant's result line.
func (d *demo) result(name string, h udpHops, l *udpLink, extra string) {
	backlog, _ := l.st.Sysctl("net.core.netdev_max_backlog")
	d.say("result step=%s asked=%d sent=%d write_failed=%d own=%d qdisc_drops=%d tap_drops=%d netdev_drops=%d socket_drops=%d ss_drops=%d "+
		"other=%d delivered=%d read=%d queued_bytes=%d rcvbuf=%d netdev_max_backlog=%s %s",
		name, h.asked, h.sender.Written, h.sender.Failed, h.own(), h.k.QdiscDrop, h.k.TxDropped, h.c["SoftnetDropped"], h.c["UdpRcvbufErrors"],
		h.sock.Drops, h.stackOther(), h.c["UdpInDatagrams"], h.read, h.sock.RecvQ, h.sock.RcvBuf, backlog, extra)
}
