package driver_test

import (
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/internal/testenv/netnstest"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
	"github.com/tapstack/tapstack/stack"
)

var (
	l3StackIP = net.IPv4(10, 0, 0, 2)
	l3PeerIP  = net.IPv4(10, 0, 0, 1)
)

// ipPacket serializes bare IPv4 (no Ethernet) with correct checksums.
func ipPacket(t *testing.T, l4 gopacket.SerializableLayer, proto layers.IPProtocol, payload []byte) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: l3PeerIP, DstIP: l3StackIP}
	if tcp, ok := l4.(*layers.TCP); ok {
		tcp.SetNetworkLayerForChecksum(ip)
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ip, l4, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readIP reads the next packet the stack sends on ch, decoded from IPv4.
func readIP(t *testing.T, ch *driver.Channel) gopacket.Packet {
	t.Helper()
	ctx := testwait.Context(t)
	buf := make([]byte, 2048)
	n, err := ch.Read(ctx, buf)
	if err != nil {
		t.Fatalf("reading what the stack sent: %v", err)
	}
	if buf[0]>>4 != 4 {
		t.Fatalf("stack sent a non-IPv4 packet on an L3 link: % x", buf[:min(n, 16)])
	}
	return gopacket.NewPacket(buf[:n], layers.LayerTypeIPv4, gopacket.Default)
}

func newChannelStack(t *testing.T) (*stack.Stack, *driver.Channel) {
	return newChannelStackAt(t, "10.0.0.2/24")
}

func newChannelStackAt(t *testing.T, addr string) (*stack.Stack, *driver.Channel) {
	s, err := stack.New(stack.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ch := driver.NewChannel(driver.ChannelConfig{})
	if err := s.Attach(ch, netip.MustParsePrefix(addr)); err != nil {
		t.Fatal(err)
	}
	return s, ch
}

// TestStackOverChannel attaches a whole stack to a Channel: an injected
// ICMP echo request to its address is answered, and a bare IPv4 TCP SYN to
// a listener gets its SYN-ACK, both as bare IPv4 packets (no ARP first:
// the link is NOARP).
func TestStackOverChannel(t *testing.T) {
	s, ch := newChannelStack(t)
	ln, err := s.Listen("tcp", "10.0.0.2:80")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	echo := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: 3}
	if err := ch.Inject(ipPacket(t, echo, layers.IPProtocolICMPv4, []byte("ping"))); err != nil {
		t.Fatal(err)
	}
	p := readIP(t, ch)
	reply, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if !ok || reply.TypeCode.Type() != layers.ICMPv4TypeEchoReply || reply.Id != 7 || reply.Seq != 3 {
		t.Fatalf("reply to the echo: %v", p)
	}

	syn := &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 1000, SYN: true, Window: 65535,
		Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}}}}
	if err := ch.Inject(ipPacket(t, syn, layers.IPProtocolTCP, nil)); err != nil {
		t.Fatal(err)
	}
	p = readIP(t, ch)
	sa, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if !ok || !sa.SYN || !sa.ACK || sa.Ack != 1001 || sa.SrcPort != 80 || sa.DstPort != 40000 || !ip.DstIP.Equal(l3PeerIP) {
		t.Fatalf("answer to the SYN: %v", p)
	}
	st := s.Stats()
	if v, _ := st.Get("ArpCacheAllocs"); v != 0 {
		t.Fatalf("ArpCacheAllocs = %d on an L3 link", v)
	}
	if cs := ch.Stats(); cs.Injected != 2 || cs.Sent != 2 || cs.InjectDrops != 0 || cs.SendDrops != 0 {
		t.Fatalf("channel stats %+v", cs)
	}
}

// TestStackOverChannelMalformed: garbage injected into the channel is
// counted by netdev or IPv4, and the stack still answers afterwards.
func TestStackOverChannelMalformed(t *testing.T) {
	s, ch := newChannelStack(t)
	good := ipPacket(t, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 1, Seq: 1}, layers.IPProtocolICMPv4, nil)
	bad := [][]byte{{}, {0x45}, {0x60, 0, 0}, {0x00, 1, 2, 3}, good[:19], append([]byte{0x46}, good[1:]...)}
	for _, p := range bad {
		if err := ch.Inject(p); err != nil {
			t.Fatal(err)
		}
	}
	ch.Inject(good)
	if p := readIP(t, ch); p.Layer(layers.LayerTypeICMPv4) == nil {
		t.Fatalf("answer after the garbage: %v", p)
	}
	st := s.Stats()
	get := func(n string) uint64 { v, _ := st.Get(n); return v }
	if get("NetdevRxRunt") != 1 || get("NetdevRxUnknownEthertype") != 2 || get("IpInHdrErrors") < 2 {
		t.Fatalf("runt %d unknown %d IpInHdrErrors %d", get("NetdevRxRunt"), get("NetdevRxUnknownEthertype"), get("IpInHdrErrors"))
	}
}

// TestTUNKernelPingAndTCP puts a stack on a real kernel TUN inside a
// namespace (kernel side 10.0.0.1/24, no ARP either way): the kernel pings
// the stack's address, and a kernel TCP client connects to a stack listener
// over the TUN and gets its bytes echoed.
func TestTUNKernelPingAndTCP(t *testing.T) {
	netnstest.RequireTool(t, "ping")
	ns := netnstest.New(t)
	tun, err := ns.OpenTUN("tstun0", 1)
	if err != nil {
		t.Fatal(err)
	}
	if tun.Name() != "tstun0" || tun.MAC() != nil || !driver.IsL3(tun) || tun.MTU() != 1500 {
		t.Fatalf("tun %s mac %v mtu %d", tun.Name(), tun.MAC(), tun.MTU())
	}
	s, err := stack.New(stack.Config{Shards: 2})
	if err != nil {
		tun.Close()
		t.Fatal(err)
	}
	defer s.Close() // closes the TUN
	if err := s.Attach(tun, netip.MustParsePrefix("10.0.0.2/24")); err != nil {
		t.Fatal(err)
	}
	ns.AddrAdd("tstun0", "10.0.0.1/24")
	ns.LinkUp("tstun0")
	if link := ns.MustIP("link", "show", "tstun0"); !strings.Contains(link, "NOARP") || !strings.Contains(link, "POINTOPOINT") {
		t.Fatalf("kernel side: %s", link)
	}

	out, err := ns.Run("ping", "-c", "3", "-i", "0.2", "-w", strconv.Itoa(testwait.SecondsLeft(t)), "10.0.0.2")
	if err != nil || !strings.Contains(out, "3 received") {
		t.Fatalf("kernel ping: %v\n%s", err, out)
	}
	if v, _ := s.Stats().Get("IcmpOutEchoReps"); v != 3 {
		t.Fatalf("IcmpOutEchoReps = %d", v)
	}

	echoListener(t, s, "10.0.0.2:7")
	msg := strings.Repeat("tapstack over a tun ", 500) // 10 kB: several segments each way
	err = ns.Do(func() error {
		c, err := net.DialTimeout("tcp", "10.0.0.2:7", time.Until(testwait.Deadline(t)))
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(testwait.Deadline(t))
		errc := make(chan error, 1)
		go func() { _, err := io.WriteString(c, msg); errc <- err }()
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			return err
		}
		if string(got) != msg {
			return io.ErrUnexpectedEOF
		}
		return <-errc
	})
	if err != nil {
		t.Fatalf("kernel client echo: %v", err)
	}
	st := s.Stats()
	for _, name := range []string{"ArpCacheAllocs", "SoftnetDropped", "NetdevRxRunt"} {
		if v, _ := st.Get(name); v != 0 {
			t.Fatalf("%s = %d", name, v)
		}
	}
	if neigh, _ := ns.IP("neigh", "show", "dev", "tstun0"); strings.TrimSpace(neigh) != "" {
		t.Fatalf("kernel neighbours on the TUN: %s", neigh)
	}
}

// TestTUNMultiQueue opens a two-queue TUN (IFF_MULTI_QUEUE) in a namespace:
// a stack reads both queues, and the kernel's pings are still answered.
func TestTUNMultiQueue(t *testing.T) {
	netnstest.RequireTool(t, "ping")
	ns := netnstest.New(t)
	tun, err := ns.OpenTUN("tstun1", 2)
	if err != nil {
		t.Fatal(err)
	}
	if tun.Queues() != 2 {
		tun.Close()
		t.Fatalf("queues %d", tun.Queues())
	}
	s, err := stack.New(stack.Config{Shards: 2})
	if err != nil {
		tun.Close()
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Attach(tun, netip.MustParsePrefix("10.0.1.2/24")); err != nil {
		t.Fatal(err)
	}
	ns.AddrAdd("tstun1", "10.0.1.1/24")
	ns.LinkUp("tstun1")
	out, err := ns.Run("ping", "-c", "2", "-i", "0.2", "-w", strconv.Itoa(testwait.SecondsLeft(t)), "10.0.1.2")
	if err != nil || !strings.Contains(out, "2 received") {
		t.Fatalf("kernel ping: %v\n%s", err, out)
	}
}

// TestTwoStacksOverChannels bridges two stacks' Channels, as a VPN carries
// packets between two hosts: a Dial from one to a listener on the other
// echoes 64 kB both ways.
func TestTwoStacksOverChannels(t *testing.T) {
	a, cha := newChannelStackAt(t, "10.7.0.1/24")
	b, chb := newChannelStackAt(t, "10.7.0.2/24")
	ctx := testwait.Context(t)
	carry := func(from, to *driver.Channel) {
		buf := make([]byte, 2048)
		for {
			n, err := from.Read(ctx, buf)
			if err != nil {
				return
			}
			to.Inject(buf[:n])
		}
	}
	go carry(cha, chb)
	go carry(chb, cha)
	echoListener(t, b, "10.7.0.2:9")
	c, err := a.Dial("tcp", "10.7.0.2:9")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(testwait.Deadline(t))
	msg := strings.Repeat("x", 64<<10)
	go io.WriteString(c, msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("echo: %v", err)
	}
}

// echoListener listens on addr and echoes the first connection it
// accepts; the listener closes when the test ends.
func echoListener(t *testing.T, s *stack.Stack, addr string) {
	ln, err := s.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
}
