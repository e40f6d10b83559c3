package netdev

import (
	"sync"
	"sync/atomic"

	"github.com/tapstack/tapstack/internal/pkt"
)

// DefaultTxQueueLen is the frames a transmit queue holds while another
// goroutine writes to the link: the txqueuelen Linux gives an Ethernet
// device (DEFAULT_TX_QUEUE_LEN).
const DefaultTxQueueLen = 1000

// devTxWeight is how many queued frames a goroutine that found its link
// queue idle writes for others before it hands the rest to a goroutine of
// the device (Linux dev_tx_weight = dev_weight · dev_weight_tx_bias = 64,
// the quota of __qdisc_run before __netif_schedule).
const devTxWeight = 64

// txQueue is one link queue's qdisc, a FIFO in the shape of Linux's
// pfifo_fast with the bypass of an idle queue. A sender that finds nobody
// writing writes its frame itself, as sch_direct_xmit does. One that finds
// another goroutine writing (__QDISC_STATE_RUNNING) queues its frame and
// returns at once, and the writer sends the queued frames, in order, before
// it goes (__qdisc_run). Without it every sender of a busy link waited on
// the link's write lock: with net/http on a TAP, a third of the responses
// parked behind another's write(2) and had to be woken.
//
// A sender that finds the queue full waits for room, where Linux's qdisc
// would drop (NET_XMIT_DROP). Linux's TCP takes such a local drop as "not
// sent" and sends the segment again later, and TCP Small Queues keeps each
// flow's share of the queue to a couple of packets; tapstack's TCP has
// neither, so a drop here would be a loss on a link that lost nothing (at
// 1000 connections it was thousands of needless retransmissions). Waiting
// is the backpressure the link's write lock gave before, paid only past
// TxQueueLen frames; it is counted in NetdevTxQueueFull.
type txQueue struct {
	mu      sync.Mutex
	room    sync.Cond // signalled as the writer takes frames off a full queue
	running bool      // a goroutine is writing; it drains frames before it clears this
	ring    []txFrame
	head, n int
	waiting int // senders waiting for room

	full atomic.Uint64
}

// txFrame is a queued frame, ready for the link: mss > 0 asks the link to
// segment it (TSO).
type txFrame struct {
	b   *pkt.Buffer
	mss int
}

func newTxQueue(limit int) *txQueue {
	t := &txQueue{ring: make([]txFrame, max(limit, 1))}
	t.room.L = &t.mu
	return t
}

// xmit writes b (an Ethernet frame) on link queue q, or queues it behind
// the goroutine writing there (waiting for room when the queue is full).
// It releases b. It returns the link's error for a frame written at once;
// the errors of frames written for others are counted in their shard's
// txErrors, as a qdisc's are in the device's.
func (d *Device) xmit(q int, b *pkt.Buffer, mss int) error {
	t := d.txqs[q]
	t.mu.Lock()
	if t.running && t.n == len(t.ring) {
		t.full.Add(1)
		for t.running && t.n == len(t.ring) {
			t.waiting++
			t.room.Wait()
			t.waiting--
		}
	}
	if t.running {
		t.ring[(t.head+t.n)%len(t.ring)] = txFrame{b, mss}
		t.n++
		t.mu.Unlock()
		return nil
	}
	t.running = true
	t.mu.Unlock()
	err := d.write(q, b, mss)
	d.drainTx(t, q, devTxWeight)
	return err
}

// drainTx writes the frames others queued while this goroutine wrote, at
// most quota of them (quota < 0: until the queue is empty), then hands the
// queue to a goroutine of its own, as net_tx_action takes over a qdisc
// whose quota ran out. Device.Close waits for that goroutine.
func (d *Device) drainTx(t *txQueue, q, quota int) {
	for ; ; quota-- {
		t.mu.Lock()
		if t.n == 0 {
			t.running = false
			if t.waiting > 0 {
				t.room.Broadcast() // one of them takes over as the writer
			}
			t.mu.Unlock()
			return
		}
		if quota == 0 {
			t.mu.Unlock()
			d.txGate.RLock()
			if d.closing.Load() {
				// Close waits for the drainers it knows: past it, this
				// goroutine drains the rest itself, on a closed link.
				d.txGate.RUnlock()
				quota = -1
				continue
			}
			d.txwg.Add(1)
			d.txGate.RUnlock()
			go func() {
				defer d.txwg.Done()
				d.drainTx(t, q, -1)
			}()
			return
		}
		f := t.ring[t.head]
		t.ring[t.head] = txFrame{}
		t.head = (t.head + 1) % len(t.ring)
		t.n--
		if t.waiting > 0 {
			t.room.Signal()
		}
		t.mu.Unlock()
		shard := f.b.Shard
		if err := d.write(q, f.b, f.mss); err != nil {
			d.shards[nonNegMod(shard, len(d.shards))].txErrors.Add(1)
		}
	}
}

// write hands one frame to the link and releases it.
func (d *Device) write(q int, b *pkt.Buffer, mss int) error {
	var err error
	if mss > 0 {
		err = d.gso.WriteGSO(q, b.Bytes(), mss)
	} else {
		err = d.link.WriteFrame(q, b.Bytes())
	}
	if err == nil {
		s := d.shards[nonNegMod(b.Shard, len(d.shards))]
		s.txFrames.Add(1)
		s.txBytes.Add(uint64(b.Len()))
	}
	b.Release()
	return err
}
