package netdev

import (
	"encoding/binary"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
	"github.com/tapstack/tapstack/wire"
)

// gateLink is a one-queue link whose writes of chosen frames block until
// the test opens their gate; it records every frame written, in order.
type gateLink struct {
	mu      sync.Mutex
	written []uint32 // each frame's tag (the 4 bytes after the Ethernet header)
	gates   map[uint32]chan struct{}
	entered map[uint32]chan struct{} // closed when the write of that tag begins
	fail    map[uint32]bool
	closed  chan struct{}

	afterClose  int           // writes refused after Close
	closedDelay time.Duration // how long each of those takes
}

func newGateLink() *gateLink {
	return &gateLink{gates: map[uint32]chan struct{}{}, entered: map[uint32]chan struct{}{},
		fail: map[uint32]bool{}, closed: make(chan struct{})}
}

// gate makes the write of tag block until open is called.
func (l *gateLink) gate(tag uint32) (entered <-chan struct{}, open func()) {
	g, e := make(chan struct{}), make(chan struct{})
	l.mu.Lock()
	l.gates[tag], l.entered[tag] = g, e
	l.mu.Unlock()
	return e, func() { close(g) }
}

func (l *gateLink) Queues() int           { return 1 }
func (l *gateLink) MTU() int              { return 1500 }
func (l *gateLink) MAC() net.HardwareAddr { return ourMAC }
func (l *gateLink) Close() error          { close(l.closed); return nil }
func (l *gateLink) ReadFrame(int, []byte) (int, error) {
	<-l.closed
	return 0, net.ErrClosed
}

func (l *gateLink) WriteFrame(_ int, b []byte) error {
	tag := binary.BigEndian.Uint32(b[14:])
	l.mu.Lock()
	g, e, fail := l.gates[tag], l.entered[tag], l.fail[tag]
	l.mu.Unlock()
	if g != nil {
		close(e)
		select {
		case <-g:
		case <-l.closed: // closing the link ends a blocked write
			return net.ErrClosed
		}
	}
	select {
	case <-l.closed:
		l.mu.Lock()
		l.afterClose++
		l.mu.Unlock()
		time.Sleep(l.closedDelay) // a closed link still takes a moment per write
		return net.ErrClosed
	default:
	}
	if fail {
		return syscall.EIO
	}
	l.mu.Lock()
	l.written = append(l.written, tag)
	l.mu.Unlock()
	return nil
}

func (l *gateLink) tags() []uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]uint32(nil), l.written...)
}

func tagged(tag uint32) *pkt.Buffer {
	b := pkt.Get(64)
	binary.BigEndian.PutUint32(b.Append(64), tag)
	return b
}

// TestTxQueueSendersDoNotWaitForABusyLink: while one goroutine is inside
// the link's write, other senders queue their frames and return at once;
// the writer sends them, in the order they came, before it returns.
func TestTxQueueSendersDoNotWaitForABusyLink(t *testing.T) {
	l := newGateLink()
	d := New(l, Config{Shards: 1})
	defer d.Close()
	entered, open := l.gate(0)
	first := make(chan error, 1)
	go func() { first <- d.Transmit(peerMAC, wire.EtherTypeIPv4, tagged(0)) }()
	testwait.Recv(t, entered, "the first frame's write to begin")
	for tag := uint32(1); tag <= 10; tag++ {
		// The link is blocked: a sender that waited for it would hang here.
		if err := d.Transmit(peerMAC, wire.EtherTypeIPv4, tagged(tag)); err != nil {
			t.Fatalf("frame %d: %v", tag, err)
		}
	}
	if got := l.tags(); len(got) != 0 {
		t.Fatalf("written %v while the link was blocked", got)
	}
	open()
	if err := testwait.Recv(t, first, "the writer to return"); err != nil {
		t.Fatal(err)
	}
	// The writer returned only after it had sent everything queued.
	got := l.tags()
	if len(got) != 11 {
		t.Fatalf("written %v, want 0..10", got)
	}
	for i, tag := range got {
		if tag != uint32(i) {
			t.Fatalf("written %v, want 0..10 in order", got)
		}
	}
	if c := counters(d); c["NetdevTxFrames"] != 11 || c["NetdevTxErrors"] != 0 || c["NetdevTxQueueDrops"] != 0 {
		t.Fatalf("counters %v", c)
	}
}

// TestTxQueueBoundAndErrors: the queue holds TxQueueLen frames; a sender
// past it waits for room (counted in NetdevTxQueueFull) instead of losing
// its frame, and is sent in turn. A queued frame whose write fails is
// counted in NetdevTxErrors.
func TestTxQueueBoundAndErrors(t *testing.T) {
	l := newGateLink()
	l.fail[2] = true
	d := New(l, Config{Shards: 1, TxQueueLen: 4})
	defer d.Close()
	entered, open := l.gate(0)
	first := make(chan error, 1)
	go func() { first <- d.Transmit(peerMAC, wire.EtherTypeIPv4, tagged(0)) }()
	testwait.Recv(t, entered, "the first frame's write to begin")
	for tag := uint32(1); tag <= 4; tag++ {
		if err := d.Transmit(peerMAC, wire.EtherTypeIPv4, tagged(tag)); err != nil {
			t.Fatalf("frame %d into a queue of 4: %v", tag, err)
		}
	}
	fifth := make(chan error, 1)
	go func() { fifth <- d.Transmit(peerMAC, wire.EtherTypeIPv4, tagged(5)) }()
	// Both senders block in xmit: the first in the gated write, the fifth
	// waiting for room (not dropped).
	testwait.ParkedN(t, "netdev.(*Device).xmit", 2)
	if c := counters(d); c["NetdevTxQueueFull"] != 1 {
		t.Fatalf("counters %v, want NetdevTxQueueFull 1", c)
	}
	open()
	for _, ch := range []chan error{first, fifth} {
		if err := testwait.Recv(t, ch, "the senders to return"); err != nil {
			t.Fatal(err)
		}
	}
	testwait.Until(t, "every frame to be written", func() bool { return len(l.tags()) == 5 })
	if got := l.tags(); got[0] != 0 || got[1] != 1 || got[2] != 3 || got[3] != 4 || got[4] != 5 {
		t.Fatalf("written %v, want [0 1 3 4 5] (2 failed)", got)
	}
	if c := counters(d); c["NetdevTxFrames"] != 5 || c["NetdevTxErrors"] != 1 || c["NetdevTxQueueFull"] != 1 {
		t.Fatalf("counters %v", c)
	}
}

// TestTxQueueWriterQuota: a sender that found the link idle writes at most
// dev_tx_weight (64) frames of others' before a goroutine of the device
// takes over, so an application goroutine is not held by other senders'
// traffic; nothing is lost or reordered at the hand-over.
func TestTxQueueWriterQuota(t *testing.T) {
	l := newGateLink()
	d := New(l, Config{Shards: 1})
	defer d.Close()
	const queued = 200
	entered, open := l.gate(0)
	// The device's goroutine will block on the write after the quota.
	_, openLate := l.gate(devTxWeight + 10)
	first := make(chan error, 1)
	go func() { first <- d.Transmit(peerMAC, wire.EtherTypeIPv4, tagged(0)) }()
	testwait.Recv(t, entered, "the first frame's write to begin")
	for tag := uint32(1); tag <= queued; tag++ {
		if err := d.Transmit(peerMAC, wire.EtherTypeIPv4, tagged(tag)); err != nil {
			t.Fatalf("frame %d: %v", tag, err)
		}
	}
	open()
	// The first sender returns with the hand-over, although the frames
	// after its quota are still blocked behind the gated write.
	if err := testwait.Recv(t, first, "the first sender to return after its quota"); err != nil {
		t.Fatal(err)
	}
	if n := len(l.tags()); n < devTxWeight+1 || n > devTxWeight+10 {
		t.Fatalf("%d frames written when the first sender returned, want its own and its quota of %d", n, devTxWeight)
	}
	openLate()
	testwait.Until(t, "every queued frame to be written", func() bool { return len(l.tags()) == queued+1 })
	for i, tag := range l.tags() {
		if tag != uint32(i) {
			t.Fatalf("frame %d written as %d: reordered at the hand-over", i, tag)
		}
	}
}

// TestCloseWaitsForTheTxDrainer: the goroutine a writer hands its queue to
// when its quota runs out (net_tx_action's) belongs to the device: Close
// returns only after it has ended, every frame it held written or refused
// by the closed link and counted, none left behind.
func TestCloseWaitsForTheTxDrainer(t *testing.T) {
	l := newGateLink()
	l.closedDelay = 200 * time.Microsecond
	d := New(l, Config{Shards: 1})
	const queued = 200
	entered, open := l.gate(0)
	lateEntered, _ := l.gate(devTxWeight + 10) // never opened: Close ends it
	first := make(chan error, 1)
	go func() { first <- d.Transmit(peerMAC, wire.EtherTypeIPv4, tagged(0)) }()
	testwait.Recv(t, entered, "the first frame's write to begin")
	for tag := uint32(1); tag <= queued; tag++ {
		if err := d.Transmit(peerMAC, wire.EtherTypeIPv4, tagged(tag)); err != nil {
			t.Fatalf("frame %d: %v", tag, err)
		}
	}
	open()
	if err := testwait.Recv(t, first, "the first sender to hand over its queue"); err != nil {
		t.Fatal(err)
	}
	testwait.Recv(t, lateEntered, "the device's drainer to block in a write")
	d.Close()
	l.mu.Lock()
	written, refused := len(l.written), l.afterClose
	l.mu.Unlock()
	errs := d.shards[0].txErrors.Load()
	// The blocked write and every frame after it failed on the closed link.
	if written != devTxWeight+10 || uint64(refused+1) != errs || written+int(errs) != queued+1 {
		t.Fatalf("after Close: %d written, %d refused by the closed link, %d tx errors; want %d written and the other %d counted as errors",
			written, refused, errs, devTxWeight+10, queued+1-(devTxWeight+10))
	}
	buf := make([]byte, 1<<20)
	if st := string(buf[:runtime.Stack(buf, true)]); strings.Contains(st, "drainTx") {
		t.Fatalf("a transmit drainer outlived Close:\n%s", st)
	}
}
