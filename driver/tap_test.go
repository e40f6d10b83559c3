package driver_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/internal/testenv/netnstest"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
)

// readAll reads every queue of link in its own goroutine and sends copies of
// the frames on the returned channel until the link is closed.
func readAll(link driver.Link) <-chan []byte {
	frames := make(chan []byte, 64)
	var wg sync.WaitGroup
	for q := range link.Queues() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 2048)
			for {
				n, err := link.ReadFrame(q, buf)
				if err != nil {
					return
				}
				frames <- slices.Clone(buf[:n])
			}
		}()
	}
	go func() { wg.Wait(); close(frames) }()
	return frames
}

// waitARP returns the first ARP packet matching op and target address.
func waitARP(t *testing.T, frames <-chan []byte, op uint16, target net.IP) *layers.ARP {
	t.Helper()
	for {
		f, ok := testwait.RecvOK(t, frames, fmt.Sprintf("ARP op %d for %v", op, target))
		if !ok {
			t.Fatal("link closed")
		}
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		if arp, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP); ok && arp.Operation == op &&
			net.IP(arp.DstProtAddress).Equal(target) {
			return arp
		}
	}
}

func openKernelPeer(t *testing.T, queues int) (*netnstest.NS, *driver.TAP) {
	ns := netnstest.New(t)
	tap, err := ns.OpenTAP("tst0", queues)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tap.Close() })
	ns.AddrAdd("tst0", "10.0.0.1/24")
	ns.LinkUp("tst0")
	return ns, tap
}

// TestTAPKernelPingSendsARP: the kernel, pinging 10.0.0.2 through the TAP
// in its namespace, asks who has 10.0.0.2, and we read that request.
func TestTAPKernelPingSendsARP(t *testing.T) {
	netnstest.RequireTool(t, "ping")
	ns, tap := openKernelPeer(t, 1)
	if tap.Name() != "tst0" || tap.Queues() != 1 || tap.MTU() != 1500 {
		t.Fatalf("tap %s queues %d mtu %d", tap.Name(), tap.Queues(), tap.MTU())
	}
	if err := exec.Command("ip", "link", "show", "tst0").Run(); err == nil {
		t.Fatal("tst0 visible in the host namespace")
	}
	frames := readAll(tap)
	ctx, cancel := context.WithCancel(context.Background())
	ping := ns.Command(ctx, "ping", "-c1", "-W1", "10.0.0.2") // fails: nobody answers
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); ping.Wait() }()
	arp := waitARP(t, frames, layers.ARPRequest, net.IP{10, 0, 0, 2})
	if !net.IP(arp.SourceProtAddress).Equal(net.IP{10, 0, 0, 1}) {
		t.Fatalf("ARP from %v", net.IP(arp.SourceProtAddress))
	}
}

// TestTAPMultiQueueWriteAndRead writes an ARP request into a 4-queue TAP;
// the kernel answers (read on whichever queue it picks) and learns our MAC.
func TestTAPMultiQueueWriteAndRead(t *testing.T) {
	ns, tap := openKernelPeer(t, 4)
	if tap.Queues() != 4 {
		t.Fatalf("%d queues", tap.Queues())
	}
	if out := ns.MustIP("-d", "link", "show", "tst0"); !strings.Contains(out, "multi_queue") {
		t.Fatalf("not multi-queue:\n%s", out)
	}
	mac := tap.MAC()
	if mac[0]&0x03 != 0x02 {
		t.Fatalf("MAC %v is not locally administered unicast", mac)
	}
	if out := ns.MustIP("link", "show", "tst0"); strings.Contains(out, mac.String()) {
		t.Fatal("stack MAC equals the kernel's")
	}
	frames := readAll(tap)
	eth := &layers.Ethernet{SrcMAC: mac, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP}
	req := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6,
		ProtAddressSize: 4, Operation: layers.ARPRequest, SourceHwAddress: mac, SourceProtAddress: []byte{10, 0, 0, 2},
		DstHwAddress: make([]byte, 6), DstProtAddress: []byte{10, 0, 0, 1}}
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true}, eth, req); err != nil {
		t.Fatal(err)
	}
	if err := tap.WriteFrame(3, sb.Bytes()); err != nil {
		t.Fatal(err)
	}
	reply := waitARP(t, frames, layers.ARPReply, net.IP{10, 0, 0, 2})
	if !bytes.Equal(reply.DstHwAddress, mac) {
		t.Fatalf("reply to %v", net.HardwareAddr(reply.DstHwAddress))
	}
	if out := ns.MustIP("neigh", "show", "10.0.0.2"); !strings.Contains(out, mac.String()) {
		t.Fatalf("kernel did not learn our MAC: %q", out)
	}
}

// TestTAPCloseUnblocksReaders: Close returns net.ErrClosed to blocked
// readers and removes the device.
func TestTAPCloseUnblocksReaders(t *testing.T) {
	ns, tap := openKernelPeer(t, 2)
	checkCloseUnblocksReaders(t, tap, 2, 2048)
	if _, err := ns.IP("link", "show", "tst0"); err == nil {
		t.Fatal("device still exists after Close")
	}
	if err := tap.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}

// checkCloseUnblocksReaders blocks a reader on each of link's queues, closes
// link and checks that every reader and a later write get net.ErrClosed.
func checkCloseUnblocksReaders(t *testing.T, link driver.Link, queues, bufSize int) {
	t.Helper()
	errc := make(chan error, queues)
	for q := range queues {
		go func() { // the kernel may send IPv6 chatter first
			buf := make([]byte, bufSize)
			for {
				if _, err := link.ReadFrame(q, buf); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	testwait.ParkedN(t, "driver_test.checkCloseUnblocksReaders", queues)
	if err := link.Close(); err != nil {
		t.Fatal(err)
	}
	for range queues {
		if err := testwait.Recv(t, errc, "Close to unblock a reader"); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("reader got %v", err)
		}
	}
	if err := link.WriteFrame(0, make([]byte, 60)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after Close: %v", err)
	}
}
