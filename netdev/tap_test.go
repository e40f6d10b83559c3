package netdev_test

import (
	"context"
	"encoding/binary"
	"net"
	"runtime"
	"testing"

	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/internal/testenv/netnstest"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
	"github.com/tapstack/tapstack/netdev"
)

// TestDeviceOverTAPReceivesKernelARP runs the whole receive path over a real
// TAP: the kernel pings 10.0.0.2, its ARP request goes through the reader
// goroutines, a backlog and a worker to the ARP handler; Close then stops
// every goroutine.
func TestDeviceOverTAPReceivesKernelARP(t *testing.T) {
	netnstest.RequireTool(t, "ping")
	ns := netnstest.New(t)
	baseline := runtime.NumGoroutine()
	tap, err := ns.OpenTAP("tsd0", 2)
	if err != nil {
		t.Fatal(err)
	}
	ns.AddrAdd("tsd0", "10.0.0.1/24")
	ns.LinkUp("tsd0")
	d := netdev.New(tap, netdev.Config{Shards: 2})
	got := make(chan net.IP, 16)
	d.Handle(0x0806, func(b *pkt.Buffer) {
		p := b.Bytes()
		if len(p) >= 28 && binary.BigEndian.Uint16(p[6:]) == 1 { // request
			select {
			case got <- net.IP(append([]byte(nil), p[24:28]...)):
			default:
			}
		}
		if b.Shard != 0 {
			t.Errorf("ARP on shard %d", b.Shard)
		}
	})
	d.Start()
	ctx, cancel := context.WithCancel(context.Background())
	ping := ns.Command(ctx, "ping", "-c1", "-W1", "10.0.0.2")
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); ping.Wait() }()
	if ip := testwait.Recv(t, got, "an ARP request at the handler"); !ip.Equal(net.IP{10, 0, 0, 2}) {
		t.Fatalf("ARP request for %v", ip)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, "the device's goroutines to end", func() bool {
		return runtime.NumGoroutine() <= baseline+1 // +1: the ping waiter
	})
}
