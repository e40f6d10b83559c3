package stack_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/testenv/netnstest"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
	"github.com/tapstack/tapstack/stack"
	"github.com/tapstack/tapstack/udp"
)

// TestInteropDNSThroughDnsmasq: Go's resolver (net.Resolver, PreferGo)
// resolves names through tapstack's UDP against dnsmasq, a real DNS server
// on the kernel side of the TAP; a name it does not know is NXDOMAIN.
func TestInteropDNSThroughDnsmasq(t *testing.T) {
	ns, st := tapStack(t, nil)
	// -k: stay in the foreground; -C /dev/null: no config file; no
	// upstream servers, no hosts file: only the names given here.
	dns := ns.Command(testwait.Context(t), "dnsmasq", "-k", "-C", "/dev/null", "--no-resolv", "--no-hosts", "--bind-interfaces",
		"--listen-address=10.0.0.1", "--port=53", "--user=root", "--pid-file=", "--log-facility=-",
		"--local=/lan.test/", "--host-record=a.lan.test,192.0.2.7", "--host-record=b.lan.test,198.51.100.9")
	var out strings.Builder
	dns.Stdout, dns.Stderr = &out, &out
	if err := dns.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Process.Kill(); dns.Wait() })
	testwait.Until(t, "dnsmasq to listen on 10.0.0.1:53", func() bool {
		ss, _ := ns.Run("ss", "-uln")
		return strings.Contains(ss, "10.0.0.1:53")
	})
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return st.DialContext(ctx, network, "10.0.0.1:53")
	}}
	ctx, cancel := context.WithDeadline(context.Background(), testwait.Deadline(t))
	defer cancel()
	for name, want := range map[string]string{"a.lan.test": "192.0.2.7", "b.lan.test": "198.51.100.9"} {
		addrs, err := r.LookupNetIP(ctx, "ip4", name)
		if err != nil || len(addrs) != 1 || addrs[0] != netip.MustParseAddr(want) {
			t.Fatalf("LookupNetIP(%s): %v %v\ndnsmasq: %s", name, addrs, err, out.String())
		}
	}
	// dnsmasq answers for lan.test alone (--local): an unknown name in it is
	// NXDOMAIN, which the resolver reports as not found.
	_, err := r.LookupNetIP(ctx, "ip4", "absent.lan.test")
	var de *net.DNSError
	if !errors.As(err, &de) || !de.IsNotFound {
		t.Fatalf("an unknown name: %v, want not found", err)
	}
	if n := counter(t, st, "UdpInDatagrams"); n < 3 || counter(t, st, "UdpInErrors") != 0 || counter(t, st, "UdpNoPorts") != 0 {
		t.Fatalf("UdpInDatagrams %d, UdpInErrors %d, UdpNoPorts %d", n, counter(t, st, "UdpInErrors"), counter(t, st, "UdpNoPorts"))
	}
}

// TestInteropUDPFloodOverrunsSocket: a kernel socket sends 3000 datagrams of
// 1000 bytes to a tapstack socket that never reads. The socket queue takes
// what SO_RCVBUF (net.core.rmem_default, 212992) allows — 134 datagrams at
// 576 + 1024 bytes each, the 134th taking it past — and refuses the rest,
// counted in UdpRcvbufErrors. Every datagram is accounted for hop by hop,
// the kernel's side of the TAP included.
func TestInteropUDPFloodOverrunsSocket(t *testing.T) {
	ns, st := tapStack(t, nil)
	sink, err := st.ListenUDP(netip.MustParseAddrPort("10.0.0.2:9000"))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	// Resolve ARP first, so that no datagram waits on it.
	if _, err := ns.Run("ping", "-c", "1", "-w", "10", "10.0.0.2"); err != nil {
		t.Fatal(err)
	}
	before, kBefore := drain(t, ns, st)
	const sent, fit = 3000, 134
	if err := ns.Do(func() error {
		c, err := net.Dial("udp", "10.0.0.2:9000")
		if err != nil {
			return err
		}
		defer c.Close()
		msg := make([]byte, 1000)
		for range sent {
			if _, err := c.Write(msg); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	after, kAfter := drain(t, ns, st)
	d, k := after.delta(before), kAfter.delta(kBefore)
	t.Logf("kernel: qdisc sent %d dropped %d, tap tx_packets %d tx_dropped %d; stack: RxFrames %d SoftnetDropped %d IpInReceives %d "+
		"UdpInDatagrams %d UdpRcvbufErrors %d UdpInErrors %d", k.QdiscSent, k.QdiscDrop, k.TxPackets, k.TxDropped,
		d["NetdevRxFrames"], d["SoftnetDropped"], d["IpInReceives"], d["UdpInDatagrams"], d["UdpRcvbufErrors"], d["UdpInErrors"])
	// The kernel may add frames of its own (ARP) on top of the datagrams.
	own := int64(k.QdiscSent+k.QdiscDrop) - sent
	nonIP := d["SoftnetProcessed"] - d["IpInReceives"]
	if own < 0 || own > 16 || nonIP > uint64(own) {
		t.Errorf("the qdisc saw %d frames for %d datagrams; %d non-IPv4 frames reached the stack", k.QdiscSent+k.QdiscDrop, sent, nonIP)
	}
	hopCheck(t, "qdisc sent = tap tx_packets + tx_dropped", k.QdiscSent, k.TxPackets+k.TxDropped)
	hopCheck(t, "tap tx_packets = NetdevRxFrames", k.TxPackets, d["NetdevRxFrames"])
	hopCheck(t, "NetdevRxFrames = SoftnetProcessed + SoftnetDropped", d["NetdevRxFrames"], d["SoftnetProcessed"]+d["SoftnetDropped"])
	hopCheck(t, "IpInReceives = UdpInDatagrams + UdpRcvbufErrors", d["IpInReceives"], d["UdpInDatagrams"]+d["UdpRcvbufErrors"])
	hopCheck(t, "sent + own = qdisc drops + tap drops + backlog drops + non-IPv4 + UDP", uint64(sent+own),
		k.QdiscDrop+k.TxDropped+d["SoftnetDropped"]+nonIP+d["UdpInDatagrams"]+d["UdpRcvbufErrors"])
	// The socket queue, not an earlier hop, is where a flood at a socket that
	// never reads is refused: it fills to its bound and drops every later one.
	if d["UdpInDatagrams"] != fit || d["UdpRcvbufErrors"] != d["UdpInErrors"] || d["UdpRcvbufErrors"] == 0 {
		t.Fatalf("UdpInDatagrams %d (want %d), UdpRcvbufErrors %d, UdpInErrors %d", d["UdpInDatagrams"], fit, d["UdpRcvbufErrors"], d["UdpInErrors"])
	}
	if ss := st.UDPSockets(); len(ss) != 1 || ss[0].RecvQ != fit*1600 || ss[0].Drops != int(d["UdpRcvbufErrors"]) {
		t.Fatalf("ss: %+v", ss)
	}
}

// TestInteropUDPPathMTUThroughKernelRouter: the kernel in the TAP's
// namespace routes to a second namespace over a veth of MTU 1000. A
// tapstack datagram of 1400 bytes leaves with DF (PMTUDiscWant), the kernel
// router refuses it with ICMP fragmentation needed (its IpFragFails), the
// path MTU drops to 1000, the connected socket reports EMSGSIZE once, and
// the same datagram sent again goes as fragments the kernel reassembles.
// PMTUDiscDo then refuses what does not fit and sends what does.
func TestInteropUDPPathMTUThroughKernelRouter(t *testing.T) {
	ns, st := tapStack(t, nil)
	peer := netnstest.New(t)
	ns.MustIP("link", "add", "vr0", "mtu", "1000", "type", "veth", "peer", "name", "vp0", "netns", peer.Name())
	ns.AddrAdd("vr0", "10.9.0.1/24")
	ns.LinkUp("vr0")
	peer.MustIP("link", "set", "vp0", "mtu", "1000")
	peer.AddrAdd("vp0", "10.9.0.2/24")
	peer.LinkUp("vp0")
	peer.MustIP("route", "add", "default", "via", "10.9.0.1")
	if out, err := ns.Run("sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
		t.Fatalf("ip_forward: %v %s", err, out)
	}
	if err := st.AddRoute(netip.MustParsePrefix("10.9.0.0/24"), netip.MustParseAddr("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	// The receiver prints each datagram's length and stops after three.
	rx := peer.Command(testwait.Context(t), "/usr/bin/python3", "-c", `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.9.0.2", 9000))
print("ready", flush=True)
for _ in range(3):
    print(len(s.recv(65535)), flush=True)
`)
	stdout, err := rx.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	rx.Stderr = &stderr
	if err := rx.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rx.Process.Kill(); rx.Wait() })
	lines := bufio.NewScanner(stdout)
	next := func() string {
		if !lines.Scan() {
			t.Fatalf("receiver ended: %v %s", lines.Err(), stderr.String())
		}
		return lines.Text()
	}
	if l := next(); l != "ready" {
		t.Fatalf("receiver: %q", l)
	}
	nc, err := st.Dial("udp", "10.9.0.2:9000")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := nc.(*stack.UDPConn)
	routerFails := func() uint64 { return kernelSnmp(t, ns, "Ip", "FragFails") }
	fails0 := routerFails()
	msg := make([]byte, 1400)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, "the kernel router's fragmentation needed to lower the path MTU", func() bool {
		mtu, _ := c.PathMTU()
		return mtu == 1000
	})
	if d := routerFails() - fails0; d != 1 {
		t.Fatalf("router IpFragFails +%d, want +1 (the DF datagram it could not forward)", d)
	}
	c.SetReadDeadline(time.Now().Add(time.Until(testwait.Deadline(t)) / 2))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatalf("after fragmentation needed: %v, want EMSGSIZE", err)
	}
	creates := counter(t, st, "IpFragCreates")
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	if d := counter(t, st, "IpFragCreates") - creates; d != 2 {
		t.Fatalf("1428 bytes at path MTU 1000: %d fragments, want 2", d)
	}
	if l := next(); l != "1400" {
		t.Fatalf("the kernel received %s bytes, want the 1400-byte datagram reassembled", l)
	}
	c.SetPMTUDiscover(udp.PMTUDiscDo)
	if _, err := c.Write(msg); !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatalf("PMTUDiscDo over the path MTU: %v, want EMSGSIZE", err)
	}
	if _, err := c.Write(msg[:972]); err != nil {
		t.Fatal(err)
	}
	if l := next(); l != "972" {
		t.Fatalf("the kernel received %s bytes, want 972", l)
	}
	// Unconnected sockets discover the path too; the next datagram to the
	// same destination is fragmented from the start and arrives.
	pc, err := st.ListenUDP(netip.AddrPort{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.WriteToUDPAddrPort(msg, netip.MustParseAddrPort("10.9.0.2:9000")); err != nil {
		t.Fatal(err)
	}
	if l := next(); l != "1400" {
		t.Fatalf("the kernel received %s bytes, want 1400", l)
	}
}

// kernelSnmp reads one counter of /proc/net/snmp in ns (proto "Ip", "Udp", …).
func kernelSnmp(t *testing.T, ns *netnstest.NS, proto, name string) uint64 {
	t.Helper()
	out, err := ns.Run("cat", "/proc/net/snmp")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != proto+":" {
			continue
		}
		if names == nil {
			names = f[1:]
			continue
		}
		for i, n := range names {
			if n == name && i+1 < len(f) {
				v, err := strconv.ParseUint(f[i+1], 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
	}
	t.Fatalf("no %s %s in /proc/net/snmp", proto, name)
	return 0
}
