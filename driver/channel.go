package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/tapstack/tapstack/internal/pkt"
)

// DefaultChannelQueueLen bounds each of a Channel's queues unless its
// config says otherwise: TUN_READQ_SIZE, the txqueuelen Linux gives a TUN,
// whose ring of packets waiting for the reading process is what the
// Channel's outbound queue plays.
const DefaultChannelQueueLen = 500

// ErrChannelFull is returned by Inject (and by the stack's writes) when the
// queue a packet is for is full; the packet is dropped and counted.
var ErrChannelFull = errors.New("driver: channel queue full")

// ChannelConfig configures a Channel.
type ChannelConfig struct {
	MTU    int // largest packet either way; 0 → 1500
	Queues int // receive queues, one netdev reader each; 0 → 1
	// InboundLen bounds each receive queue: injected packets the stack has
	// not read yet; 0 → DefaultChannelQueueLen.
	InboundLen int
	// OutboundLen bounds the packets the stack sent that the application
	// has not read yet; 0 → DefaultChannelQueueLen.
	OutboundLen int
}

// Channel is an in-memory L3Link between the stack and the application:
// the application injects raw IP packets for the stack to receive and
// reads the IP packets the stack sends, as a VPN (wireguard-go's
// tun/netstack over gVisor's channel endpoint) hands its decrypted packets
// to a userspace stack and encrypts what comes back. Both directions are
// bounded queues; a packet that finds its queue full is dropped and
// counted (ChannelStats), as tun_net_xmit drops when the reader falls
// behind (tx_dropped). Packets are copied in and out, into pooled buffers.
type Channel struct {
	mtu int
	in  []*packetQueue // what Inject fills and the stack reads, per queue
	out *packetQueue   // what the stack writes and the application reads

	done      chan struct{}
	closeOnce sync.Once
}

var _ L3Link = (*Channel)(nil)

// NewChannel makes a Channel; attach it to a stack (or netdev) as its link.
func NewChannel(cfg ChannelConfig) *Channel {
	c := &Channel{mtu: cfg.MTU, done: make(chan struct{})}
	if c.mtu <= 0 {
		c.mtu = 1500
	}
	inLen, outLen := cfg.InboundLen, cfg.OutboundLen
	if inLen <= 0 {
		inLen = DefaultChannelQueueLen
	}
	if outLen <= 0 {
		outLen = DefaultChannelQueueLen
	}
	for range max(cfg.Queues, 1) {
		c.in = append(c.in, newPacketQueue(inLen))
	}
	c.out = newPacketQueue(outLen)
	return c
}

// Inject hands the stack one IP packet on receive queue 0; see InjectQueue.
func (c *Channel) Inject(p []byte) error { return c.InjectQueue(0, p) }

// InjectQueue hands the stack one IP packet (IPv4 or IPv6, by its version
// nibble) on receive queue q: it copies p and returns at once. A full
// queue drops the packet, counted in InjectDrops, and returns
// ErrChannelFull. Each queue has its own reader in the stack, so a caller
// that spreads packets over queues keeps each flow on one of them (the
// stack's backlog keeps a flow in order only as it arrives). A packet
// larger than the MTU is refused, uncounted.
func (c *Channel) InjectQueue(q int, p []byte) error {
	if q < 0 || q >= len(c.in) {
		return fmt.Errorf("driver: channel: no queue %d", q)
	}
	if len(p) > c.mtu {
		return fmt.Errorf("%w: %d bytes", errFrameSize, len(p))
	}
	return c.in[q].push(p)
}

// Read blocks until the stack has sent a packet and copies it into b (a
// packet longer than b is truncated: give it MTU bytes). It returns
// ctx.Err() when ctx is done first and net.ErrClosed after Close.
func (c *Channel) Read(ctx context.Context, b []byte) (int, error) {
	return c.out.read(ctx, b, c.done)
}

// TryRead copies the oldest packet the stack sent into b, if there is one,
// without blocking; ok is false when there is none.
func (c *Channel) TryRead(b []byte) (n int, ok bool) {
	f := c.out.pop()
	if f == nil {
		return 0, false
	}
	n = copy(b, f.Bytes())
	f.Release()
	return n, true
}

// Ready is a doorbell that rings (is readable) when a packet the stack sent
// is waiting: a select loop waits on it, then calls TryRead until that
// reports none. The bell has one slot, so one ring may stand for several
// packets; a loop should not mix it with Read, which takes rings too.
func (c *Channel) Ready() <-chan struct{} { return c.out.ready }

// ChannelStats counts what crossed a Channel.
type ChannelStats struct {
	Injected    uint64 // packets Inject queued for the stack
	InjectDrops uint64 // packets Inject dropped: the receive queue was full
	Sent        uint64 // packets the stack sent, queued for Read
	SendDrops   uint64 // packets the stack sent that were dropped: nobody read fast enough
	Inbound     int    // packets waiting for the stack now (all queues)
	Outbound    int    // packets waiting for Read now
}

// Stats returns the Channel's counters.
func (c *Channel) Stats() ChannelStats {
	st := ChannelStats{Sent: c.out.queued.Load(), SendDrops: c.out.dropped.Load(), Outbound: c.out.len()}
	for _, q := range c.in {
		st.Injected += q.queued.Load()
		st.InjectDrops += q.dropped.Load()
		st.Inbound += q.len()
	}
	return st
}

// Queues is the number of receive queues.
func (c *Channel) Queues() int { return len(c.in) }

// MTU is the largest packet either way.
func (c *Channel) MTU() int { return c.mtu }

// MAC is nil: the channel has no link layer.
func (c *Channel) MAC() net.HardwareAddr { return nil }

// L3 is true: frames are bare IP packets.
func (c *Channel) L3() bool { return true }

// ReadFrame blocks until a packet is injected on queue q and copies it into
// b. After Close it returns net.ErrClosed.
func (c *Channel) ReadFrame(q int, b []byte) (int, error) {
	if q < 0 || q >= len(c.in) {
		return 0, fmt.Errorf("driver: channel: no queue %d", q)
	}
	return c.in[q].read(context.Background(), b, c.done)
}

// WriteFrame queues a copy of the IP packet b for the application (any
// valid q: the outbound queue is one). A full queue drops it, counted in
// SendDrops, and returns ErrChannelFull.
func (c *Channel) WriteFrame(q int, b []byte) error {
	if q < 0 || q >= len(c.in) {
		return fmt.Errorf("driver: channel: no queue %d", q)
	}
	if len(b) > c.mtu {
		return fmt.Errorf("%w: %d bytes", errFrameSize, len(b))
	}
	return c.out.push(b)
}

// Close unblocks every reader (net.ErrClosed), frees the queued packets
// and refuses new ones. It is idempotent.
func (c *Channel) Close() error {
	c.closeOnce.Do(func() {
		close(c.done)
		for _, q := range c.in {
			q.close()
		}
		c.out.close()
	})
	return nil
}

// packetQueue is one bounded FIFO of packet copies with a one-slot
// doorbell for its readers: an rxQueue (its pop passes the bell on) that
// counts and bounds what it takes.
type packetQueue struct {
	rxQueue
	limit  int
	closed bool

	queued, dropped atomic.Uint64
}

func newPacketQueue(limit int) *packetQueue {
	return &packetQueue{rxQueue: rxQueue{ready: make(chan struct{}, 1)}, limit: limit}
}

// push queues a copy of p, or drops it when the queue holds limit packets.
func (pq *packetQueue) push(p []byte) error {
	pq.mu.Lock()
	switch {
	case pq.closed:
		pq.mu.Unlock()
		return net.ErrClosed
	case pq.frames.Len() >= pq.limit:
		pq.mu.Unlock()
		pq.dropped.Add(1)
		return ErrChannelFull
	}
	b := pkt.Get(len(p))
	copy(b.Append(len(p)), p)
	pq.frames.PushBack(b)
	pq.mu.Unlock()
	pq.queued.Add(1)
	pq.ring()
	return nil
}

func (pq *packetQueue) ring() {
	select {
	case pq.ready <- struct{}{}:
	default:
	}
}

// read blocks until a packet is queued and copies it into b; ctx and
// closed end the wait.
func (pq *packetQueue) read(ctx context.Context, b []byte, closed <-chan struct{}) (int, error) {
	for {
		if f := pq.pop(); f != nil {
			n := copy(b, f.Bytes())
			f.Release()
			return n, nil
		}
		select {
		case <-pq.ready:
		case <-closed:
			return 0, net.ErrClosed
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

func (pq *packetQueue) len() int {
	pq.mu.Lock()
	defer pq.mu.Unlock()
	return pq.frames.Len()
}

// close frees the queued packets and refuses new ones.
func (pq *packetQueue) close() {
	pq.mu.Lock()
	defer pq.mu.Unlock()
	pq.closed = true
	for pq.frames.Len() > 0 {
		pq.frames.PopFront().Release()
	}
}
