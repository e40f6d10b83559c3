package udp

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/pkt"
)

// heldNet is a link that has not written anything yet: it keeps every
// datagram (and so the sender's charge) until release.
type heldNet struct {
	mu    sync.Mutex
	held  []*pkt.Buffer
	modes []PMTUDisc
	sent  chan struct{}
}

func (n *heldNet) OutputPMTU(_, _ netip.Addr, _ uint8, mode PMTUDisc, b *pkt.Buffer) error {
	n.mu.Lock()
	n.held = append(n.held, b)
	n.modes = append(n.modes, mode)
	n.mu.Unlock()
	select {
	case n.sent <- struct{}{}:
	default:
	}
	return nil
}

func (n *heldNet) Route(netip.Addr) (netip.Addr, int, error) {
	return netip.MustParseAddr("10.0.0.2"), 1500, nil
}

// release lets the link write the first k held datagrams.
func (n *heldNet) release(k int) {
	n.mu.Lock()
	out := n.held[:k]
	n.held = append([]*pkt.Buffer(nil), n.held[k:]...)
	n.mu.Unlock()
	for _, b := range out {
		b.Release()
	}
}

func (n *heldNet) count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.held)
}

// TestSendBufferBlocks: what the link has not written stays charged to
// SO_SNDBUF (Send-Q); a write that finds it full blocks until the link
// frees half of it, fails at its write deadline, and returns ErrClosed when
// the socket closes, as sock_alloc_send_pskb does.
func TestSendBufferBlocks(t *testing.T) {
	n := &heldNet{sent: make(chan struct{}, 1)}
	s := New(Config{Network: n})
	c, err := s.Dial(netip.AddrPort{}, netip.MustParseAddrPort("10.0.0.1:9"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetWriteBuffer(4096); err != nil { // SO_SNDBUF 8192
		t.Fatal(err)
	}
	msg := make([]byte, 1000)
	per := txTruesize(len(msg)) // 576 + 1088 = 1664
	// A write proceeds while sk_wmem_alloc < sk_sndbuf: 5 datagrams
	// (8320 bytes) fit, the fifth taking the buffer past its size.
	want := (8192 + per - 1) / per
	for i := range want {
		if _, err := c.Write(msg); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if got := s.Sockets()[0].SendQ; got != want*per {
		t.Fatalf("Send-Q %d, want %d (%d datagrams of truesize %d)", got, want*per, want, per)
	}
	// The next one blocks; the deadline ends it.
	c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := c.Write(msg); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write into a full send buffer: %v, want a timeout", err)
	}
	if n.count() != want {
		t.Fatalf("%d datagrams sent, want %d", n.count(), want)
	}
	c.SetWriteDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		done <- err
	}()
	// The buffer is full: the writer must not get through until the link
	// writes something.
	select {
	case err := <-done:
		t.Fatalf("a write got through a full send buffer (Send-Q %d of 8192): %v", s.Sockets()[0].SendQ, err)
	case <-time.After(20 * time.Millisecond):
	}
	n.release(3)
	if err := <-done; err != nil {
		t.Fatalf("blocked write after the link drained: %v", err)
	}
	if got := s.Sockets()[0].SendQ; got != (want-3+1)*per {
		t.Fatalf("Send-Q %d after 3 written and 1 more sent, want %d", got, (want-2)*per)
	}
	// Fill it again; Close wakes the blocked writer with ErrClosed.
	for s.Sockets()[0].SendQ < 8192 {
		c.Write(msg)
	}
	go func() {
		_, err := c.Write(msg)
		done <- err
	}()
	time.Sleep(5 * time.Millisecond) // let it block (the outcome is the same if it has not)
	c.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write blocked at Close: %v, want net.ErrClosed", err)
	}
	n.release(n.count())
	if c.wmem.Load() != 0 {
		t.Fatalf("sk_wmem_alloc %d after the link wrote everything", c.wmem.Load())
	}
}

// TestPMTUDiscoverModes: a new socket asks for PMTUDiscWant (or Dont under
// ip_no_pmtu_disc), SetPMTUDiscover's mode reaches the IP layer with each
// datagram, a mode past Probe is EINVAL, and IP_MTU needs a connected socket.
func TestPMTUDiscoverModes(t *testing.T) {
	n := &heldNet{sent: make(chan struct{}, 1)}
	s := New(Config{Network: n})
	c, _ := s.Listen(netip.MustParseAddrPort("0.0.0.0:0"))
	if c.PMTUDiscover() != PMTUDiscWant {
		t.Fatalf("default mode %d, want PMTUDiscWant", c.PMTUDiscover())
	}
	to := netip.MustParseAddrPort("10.0.0.1:9")
	for _, m := range []PMTUDisc{PMTUDiscWant, PMTUDiscDont, PMTUDiscDo, PMTUDiscProbe} {
		if err := c.SetPMTUDiscover(m); err != nil {
			t.Fatal(err)
		}
		c.WriteToUDPAddrPort([]byte("x"), to)
	}
	if err := c.SetPMTUDiscover(PMTUDiscProbe + 1); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("mode 4: %v, want EINVAL", err)
	}
	n.mu.Lock()
	got := append([]PMTUDisc(nil), n.modes...)
	n.mu.Unlock()
	if len(got) != 4 || got[0] != PMTUDiscWant || got[1] != PMTUDiscDont || got[2] != PMTUDiscDo || got[3] != PMTUDiscProbe {
		t.Fatalf("modes passed down %v", got)
	}
	if _, err := c.PathMTU(); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("IP_MTU on an unconnected socket: %v, want ENOTCONN", err)
	}
	d, _ := s.Dial(netip.AddrPort{}, to)
	if mtu, err := d.PathMTU(); err != nil || mtu != 1500 {
		t.Fatalf("IP_MTU %d %v", mtu, err)
	}
	s.sys.NoPMTUDisc.Store(1)
	e, _ := s.Listen(netip.MustParseAddrPort("0.0.0.0:0"))
	if e.PMTUDiscover() != PMTUDiscDont {
		t.Fatalf("ip_no_pmtu_disc=1: mode %d, want PMTUDiscDont", e.PMTUDiscover())
	}
	n.release(n.count())
}

// TestReadMsgTruncates: recvmsg reports MSG_TRUNC for a datagram longer
// than the buffer, and the rest of it is gone.
func TestReadMsgTruncates(t *testing.T) {
	s, c, dg := newLoop(t)
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	s.Deliver(src, dst, dg, false, false)
	s.Deliver(src, dst, dg, false, false)
	buf := make([]byte, 10)
	n, oobn, flags, from, err := c.ReadMsgUDPAddrPort(buf, make([]byte, 64))
	if err != nil || n != 10 || oobn != 0 || flags&syscall.MSG_TRUNC == 0 || from != netip.MustParseAddrPort("10.0.0.1:4000") {
		t.Fatalf("short read: n %d oobn %d flags %#x from %v err %v", n, oobn, flags, from, err)
	}
	big := make([]byte, 128)
	n, _, flags, addr, err := c.ReadMsgUDP(big, nil)
	if err != nil || n != 64 || flags != 0 || addr.Port != 4000 {
		t.Fatalf("whole read: n %d flags %#x addr %v err %v", n, flags, addr, err)
	}
}
