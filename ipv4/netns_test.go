package ipv4

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/tapstack/tapstack/internal/testenv/netnstest"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
	"github.com/tapstack/tapstack/netdev"
)

// TestNetnsKernelPing puts the stack on a TAP inside a namespace whose
// kernel side is 10.0.0.1/24: the kernel pings the stack (the kernel
// resolves our MAC by ARP), and the stack pings the kernel (we resolve its).
func TestNetnsKernelPing(t *testing.T) {
	ns := netnstest.New(t)
	tap, err := ns.OpenTAP("tsip0", 1)
	if err != nil {
		t.Fatal(err)
	}
	dev := netdev.New(tap, netdev.Config{})
	l := New(dev, Config{})
	defer func() { l.Close(); dev.Close() }()
	if err := l.AddAddress(netip.MustParsePrefix("10.0.0.2/24")); err != nil {
		t.Fatal(err)
	}
	replies := echoReplies(l)
	dev.Start()
	ns.AddrAdd("tsip0", "10.0.0.1/24")
	ns.LinkUp("tsip0")
	l.Start()

	// -w: wait for all three replies however long they take.
	out, err := ns.Run("ping", "-c", "3", "-i", "0.2", "-w", strconv.Itoa(testwait.SecondsLeft(t)), "10.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "3 received") {
		t.Fatalf("kernel ping:\n%s", out)
	}
	if got := l.Counter("IcmpOutEchoReps"); got != 3 {
		t.Fatalf("IcmpOutEchoReps = %d", got)
	}

	kernel := netip.MustParseAddr("10.0.0.1")
	for seq := range uint16(2) {
		sendEcho(t, l, kernel, seq)
		if got := testwait.Recv(t, replies, fmt.Sprintf("the kernel's reply to echo %d", seq)); got != seq {
			t.Fatalf("reply seq %d, want %d", got, seq)
		}
	}
	neigh, err := ns.IP("neigh", "show", "dev", "tsip0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(neigh, "10.0.0.2 lladdr "+dev.MAC().String()) {
		t.Fatalf("kernel neighbour table: %s (our MAC %v)", neigh, dev.MAC())
	}
	found := false
	for _, n := range l.Neighbours() {
		found = found || (n.Addr == kernel && n.MAC != nil && (n.State == "REACHABLE" || n.State == "STALE" || n.State == "DELAY"))
	}
	if !found {
		t.Fatalf("stack did not resolve the kernel: %+v", l.Neighbours())
	}
}
