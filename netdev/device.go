// Package netdev is the device layer between a link driver and the network
// protocols: per-shard backlogs (the per-CPU softnet_data queues), workers
// that drain them under Linux's dev_weight / netdev_budget rules, ethertype
// demultiplexing, and the softnet counters that show where frames were lost.
//
// Over a link that carries bare IP packets (driver.L3Link: a TUN, a
// driver.Channel) the device is an L3 device: no Ethernet header is parsed
// or written, a packet goes to the ETH_P_IP or ETH_P_IPV6 handler by its
// version nibble, and MAC is nil; backlogs, shards, budgets and counters
// are the same.
package netdev

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapstack/tapstack/clock"
	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/internal/eventlog"
	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/wire"
)

// Config configures a Device.
type Config struct {
	Shards  int           // backlogs and workers; 0 → GOMAXPROCS
	Sysctls *Sysctls      // nil → NewSysctls()
	Clock   clock.Clock   // times netdev_budget_usecs; nil → clock.Real()
	Log     *eventlog.Log // notable events (backlog overflow); nil: silent
	// Threaded runs every poll on the shard's worker goroutine (Linux's
	// threaded NAPI). By default the reader that raises an idle shard's
	// poll runs it itself, as netif_rx runs NET_RX on the raising CPU, and
	// hands it to the worker only after a time squeeze: one goroutine
	// wake-up less per burst.
	Threaded bool
	// TxQueueLen bounds each link queue's transmit queue, the frames that
	// wait while another goroutine writes (txqueuelen; 0 →
	// DefaultTxQueueLen). A sender that finds it full waits for room,
	// counted in NetdevTxQueueFull.
	TxQueueLen int
}

// Handler receives an L3 packet: b.Bytes() starts after the Ethernet header
// (at the IP header on an L3 device) and b.Shard is set. b belongs to netdev and is valid only until return.
type Handler func(b *pkt.Buffer)

// SoftnetStat is one shard's line of /proc/net/softnet_stat.
type SoftnetStat struct {
	Processed   uint64 // frames taken off the backlog
	Dropped     uint64 // frames refused because the backlog was full
	TimeSqueeze uint64 // polls that ran out of budget with work left
	BacklogLen  int    // frames waiting now
}

// Device is an Ethernet device over a driver.Link, or an L3 device over a
// driver.L3Link.
type Device struct {
	link     driver.Link
	l3       bool              // frames are bare IP packets (driver.IsL3)
	rxInfo   driver.RxInfoLink // link, when it tells what it knows of a frame
	mac      net.HardwareAddr
	macKey   [6]byte
	mtu      int
	maxFrame int            // longest frame the link reads (driver.MaxFrameSize)
	gsoMax   int            // longest super-frame the link segments; 0: none
	gso      driver.GSOLink // link, when it segments
	txqs     []*txQueue     // one per link queue
	sysctls  *Sysctls
	clk      clock.Clock
	threaded bool
	shards   []*shard
	hashSeed uint32
	handlers []handlerEntry // written before Start only

	startOnce sync.Once
	closeOnce sync.Once
	closing   atomic.Bool
	quit      chan struct{}
	wg        sync.WaitGroup
	closeErr  error
	// txGate is held for reading while a transmit queue's drainer
	// goroutine is started (txwg.Add); Close takes it once closing is set,
	// so none starts after, and then waits for those running (txwg).
	txGate sync.RWMutex
	txwg   sync.WaitGroup

	rxRunt, rxOtherHost, rxBadBytes, rxUnknown, rxErrors atomic.Uint64

	evBacklogDrop *eventlog.Event
}

type handlerEntry struct {
	ethertype uint16
	h         Handler
}

// New makes a device over link. Call Handle for each protocol, then Start.
func New(link driver.Link, cfg Config) *Device {
	d := &Device{
		link:     link,
		mac:      link.MAC(),
		mtu:      link.MTU(),
		maxFrame: driver.MaxFrameSize(link),
		gsoMax:   driver.GSOMax(link),
		sysctls:  cfg.Sysctls,
		clk:      cfg.Clock,
		threaded: cfg.Threaded,
		hashSeed: rand.Uint32(),
		quit:     make(chan struct{}),
	}
	d.rxInfo, _ = link.(driver.RxInfoLink)
	d.gso, _ = link.(driver.GSOLink)
	if d.l3 = driver.IsL3(link); d.l3 {
		// No hardware address (a TUN's addr_len is 0), and no TSO until an
		// L3 link segments super-packets (GSOLink frames are Ethernet).
		d.mac, d.gso, d.gsoMax = nil, nil, 0
	}
	txqlen := cfg.TxQueueLen
	if txqlen <= 0 {
		txqlen = DefaultTxQueueLen
	}
	for range max(link.Queues(), 1) {
		d.txqs = append(d.txqs, newTxQueue(txqlen))
	}
	d.evBacklogDrop = cfg.Log.Event(slog.LevelWarn, "netdev backlog full, dropping frames (raise net.core.netdev_max_backlog?)")
	copy(d.macKey[:], d.mac)
	if d.sysctls == nil {
		d.sysctls = NewSysctls()
	}
	if d.clk == nil {
		d.clk = clock.Real()
	}
	n := cfg.Shards
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	for i := range n {
		d.shards = append(d.shards, newShard(d, i, d.sysctls.MaxBacklog.Load()))
	}
	return d
}

// Handle registers the handler for an ethertype (ETH_P_IP, ETH_P_ARP, ...).
// It must be called before Start and before any Receive.
func (d *Device) Handle(ethertype uint16, h Handler) {
	for i := range d.handlers {
		if d.handlers[i].ethertype == ethertype {
			d.handlers[i].h = h
			return
		}
	}
	d.handlers = append(d.handlers, handlerEntry{ethertype, h})
}

// Start launches one reader goroutine per link queue and one worker per
// shard. Frames received before Start wait in the backlogs.
func (d *Device) Start() {
	d.startOnce.Do(func() {
		if d.closing.Load() {
			return
		}
		for q := range d.link.Queues() {
			d.wg.Add(1)
			go d.reader(q)
		}
		for _, s := range d.shards {
			d.wg.Add(1)
			go s.worker()
		}
	})
}

// Close closes the link, stops and waits for every goroutine, and frees
// the frames still queued. It is idempotent and returns the link's error.
// A handler that never returns blocks Close.
func (d *Device) Close() error {
	d.closeOnce.Do(func() {
		d.startOnce.Do(func() {}) // a Start racing with Close starts nothing
		d.closing.Store(true)
		d.txGate.Lock() // no transmit drainer starts after this
		d.txGate.Unlock()
		d.closeErr = d.link.Close()
		close(d.quit)
		d.wg.Wait()
		d.txwg.Wait() // the link is closed: their writes fail fast
		for _, s := range d.shards {
			s.purge()
		}
	})
	return d.closeErr
}

// MAC is the device's hardware address, nil on an L3 device.
func (d *Device) MAC() net.HardwareAddr { return d.mac }

// L3 reports an L3 device: its link carries bare IP packets
// (driver.L3Link), so it has no link-layer header and no hardware address,
// and Linux would flag it IFF_POINTOPOINT|IFF_NOARP: neighbours need no
// resolution.
func (d *Device) L3() bool { return d.l3 }

// MTU is the largest L3 packet Transmit accepts.
func (d *Device) MTU() int { return d.mtu }

// GSOMax is the longest Ethernet super-frame TransmitGSO accepts (the
// link segments it, TSO), or 0 when the link cannot segment.
func (d *Device) GSOMax() int { return d.gsoMax }

// MaxFrameSize is the longest frame the device reads from its link: more
// than MTU()+14 on a driver.LargeFrameLink, whose super-frames (up to 64 KB
// of TCP, as GRO would build) are delivered whole.
func (d *Device) MaxFrameSize() int { return d.maxFrame }

// Shards is the number of backlogs.
func (d *Device) Shards() int { return len(d.shards) }

// reader feeds one link queue into Receive, one pooled buffer per frame.
// On a LargeFrameLink it reads into MaxFrameSize buffers and copies a frame
// that fits a small buffer into one, keeping the large buffer for the next
// read, so the backlogs do not pin 64 KB per ACK.
func (d *Device) reader(q int) {
	defer d.wg.Done()
	var spare *pkt.Buffer
	var frames int64
	defer func() {
		if spare != nil {
			spare.Release()
		}
	}()
	for {
		b := spare
		spare = nil
		if b == nil {
			b = pkt.GetRx(d.maxFrame)
		}
		n, info, err := d.readFrame(q, b.Store())
		if err != nil {
			b.Release()
			if d.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			d.rxErrors.Add(1)
			select { // a failing fd must not spin; this is not protocol time
			case <-d.quit:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		if d.maxFrame > d.mtu+wire.EthernetHeaderLen && n+pkt.Headroom <= pkt.SmallSize {
			small := pkt.GetRx(n)
			small.SetLen(copy(small.Store(), b.Store()[:n]))
			b, spare = small, b
		} else {
			b.SetLen(n)
		}
		b.ChecksumValid = info.ChecksumValid
		d.receive(b, !d.threaded)
		// After dev_weight frames the reader lets the goroutines its
		// frames woke run (a socket's reader, say) before it reads on. A
		// flood keeps this goroutine busy for as long as it lasts, like a
		// CPU in softirq; Linux bounds that time (netdev_budget, then
		// ksoftirqd, which the scheduler shares fairly with the tasks),
		// and without the yield a woken reader waited for the Go
		// scheduler's 10 ms preemption while its socket queue overflowed.
		if frames++; frames >= d.sysctls.DevWeight.Load() {
			frames = 0
			runtime.Gosched()
		}
	}
}

// readFrame reads one frame from link queue q, with what the link knows of
// it when it can tell (driver.RxInfoLink).
func (d *Device) readFrame(q int, b []byte) (int, driver.RxInfo, error) {
	if d.rxInfo != nil {
		return d.rxInfo.ReadFrameInfo(q, b)
	}
	n, err := d.link.ReadFrame(q, b)
	return n, driver.RxInfo{}, err
}

// Receive takes a whole Ethernet frame (and ownership of b), checks it is
// for us, and queues it on its flow's shard (enqueue_to_backlog) for the
// shard's worker: it never runs protocol code on the caller's goroutine
// (netif_rx from a context that must not recurse, as loopback_xmit). It
// returns false if the frame was dropped; every drop is counted.
//
// On an L3 device too the frame comes with an Ethernet header, the one the
// stack's loopback path builds (Linux loops local traffic through lo, an
// Ethernet-framed device); it is dropped, unchecked, before the packet is
// queued.
func (d *Device) Receive(b *pkt.Buffer) bool {
	if d.l3 {
		if b.Len() < wire.EthernetHeaderLen {
			return d.runt(b)
		}
		b.TrimFront(wire.EthernetHeaderLen)
	}
	return d.receive(b, false)
}

// runt counts and frees a frame too short for its link's header.
func (d *Device) runt(b *pkt.Buffer) bool {
	d.rxRunt.Add(1)
	d.rxBadBytes.Add(uint64(b.Len()))
	b.Release()
	return false
}

// receive is Receive of a frame in the link's format; with inline, a poll
// this frame raises runs on the caller's goroutine (see Config.Threaded).
func (d *Device) receive(b *pkt.Buffer, inline bool) bool {
	if d.l3 {
		return d.receiveL3(b, inline)
	}
	frame := b.Bytes()
	if len(frame) < wire.EthernetHeaderLen {
		return d.runt(b)
	}
	// eth_type_trans marks it PACKET_OTHERHOST; IP would drop it later.
	if dst := wire.Ethernet(frame).Dst(); !wire.IsMulticastMAC(dst) && !sameMAC(dst, d.macKey) {
		d.rxOtherHost.Add(1)
		d.rxBadBytes.Add(uint64(len(frame)))
		b.Release()
		return false
	}
	i := 0
	if len(d.shards) > 1 {
		if h, ok := flowHash(frame, d.hashSeed); ok {
			i = reciprocalScale(h, len(d.shards))
		}
	}
	return d.enqueue(b, i, inline)
}

// receiveL3 is receive of a bare IP packet: tun_get_user, which has no
// MAC to check and takes the protocol from the version nibble, then
// netif_rx. An empty packet is a runt; one of another IP version is
// queued and counted at delivery, as an unknown ethertype is.
func (d *Device) receiveL3(b *pkt.Buffer, inline bool) bool {
	if b.Len() == 0 {
		return d.runt(b)
	}
	i := 0
	if len(d.shards) > 1 {
		if h, ok := flowHashL3(b.Bytes(), d.hashSeed); ok {
			i = reciprocalScale(h, len(d.shards))
		}
	}
	return d.enqueue(b, i, inline)
}

// enqueue queues a received frame on shard i and runs or raises its poll.
func (d *Device) enqueue(b *pkt.Buffer, i int, inline bool) bool {
	s := d.shards[i]
	s.rxFrames.Add(1)
	s.rxBytes.Add(uint64(b.Len()))
	b.Shard = i
	queued, raise := s.enqueueToBacklog(b)
	switch {
	case !raise:
	case inline:
		s.softirq()
	default:
		s.wakeWorker()
	}
	return queued
}

// deliver demultiplexes one frame by ethertype (__netif_receive_skb_core);
// on an L3 device, by the ethertype its version nibble names.
func (d *Device) deliver(b *pkt.Buffer) {
	var et uint16
	hdr := wire.EthernetHeaderLen
	if d.l3 {
		et, hdr = l3EtherType(b.Bytes()), 0
	} else {
		et = wire.Ethernet(b.Bytes()).EtherType()
	}
	for i := range d.handlers {
		if et != 0 && d.handlers[i].ethertype == et {
			b.TrimFront(hdr)
			d.handlers[i].h(b)
			return
		}
	}
	d.rxUnknown.Add(1)
}

// l3EtherType is the protocol of a bare IP packet from its version nibble,
// as tun_get_user sets skb->protocol with IFF_NO_PI; 0 for neither version.
func l3EtherType(p []byte) uint16 {
	switch p[0] >> 4 {
	case 4:
		return wire.EtherTypeIPv4
	case 6:
		return wire.EtherTypeIPv6
	}
	return 0
}

var (
	errNoHeadroom = errors.New("netdev: no headroom for the Ethernet header")
	errTooBig     = errors.New("netdev: packet larger than MTU")
	errBadMAC     = errors.New("netdev: destination is not a 6-byte MAC")
	errNotIP      = errors.New("netdev: an L3 device carries IPv4 and IPv6 only")
)

// Transmit prepends an Ethernet header to the L3 packet in b and writes the
// frame on queue b.Shard % Queues(). On an L3 device it writes the packet
// as it is and ignores dst (no header_ops: dev_hard_header adds nothing),
// refusing any ethertype but IPv4's and IPv6's. It always releases b.
func (d *Device) Transmit(dst net.HardwareAddr, ethertype uint16, b *pkt.Buffer) error {
	s := d.shards[nonNegMod(b.Shard, len(d.shards))]
	if err := d.frame(dst, ethertype, b); err != nil {
		b.Release()
		s.txErrors.Add(1)
		return err
	}
	return d.countTxErr(s, d.xmit(nonNegMod(b.Shard, len(d.txqs)), b, 0))
}

// countTxErr counts a failed write in the shard's txErrors.
func (d *Device) countTxErr(s *shard, err error) error {
	if err != nil {
		s.txErrors.Add(1)
	}
	return err
}

// frame checks an L3 packet and prepends its Ethernet header.
func (d *Device) frame(dst net.HardwareAddr, ethertype uint16, b *pkt.Buffer) error {
	if d.l3 {
		switch {
		case ethertype != wire.EtherTypeIPv4 && ethertype != wire.EtherTypeIPv6:
			return fmt.Errorf("%w (ethertype %#04x)", errNotIP, ethertype)
		case b.Len() > d.mtu:
			return fmt.Errorf("%w: %d > %d", errTooBig, b.Len(), d.mtu)
		}
		return nil
	}
	switch {
	case len(dst) != 6:
		return errBadMAC
	case b.Len() > d.mtu:
		return fmt.Errorf("%w: %d > %d", errTooBig, b.Len(), d.mtu)
	case b.Headroom() < wire.EthernetHeaderLen:
		return errNoHeadroom
	}
	wire.PrependEthernet(b, dst, d.macKey[:], ethertype)
	return nil
}

// ErrNoGSO is returned by TransmitGSO when the link cannot segment.
var ErrNoGSO = driver.ErrNoGSO

// TransmitGSO prepends an Ethernet header to b, a TCP/IPv4 packet longer
// than the MTU (valid IPv4 header and total length; its TCP checksum need
// not be computed), and hands it to the link to cut into segments of mss
// payload bytes (TSO). It fails with ErrNoGSO when GSOMax() is 0. It
// always releases b.
func (d *Device) TransmitGSO(dst net.HardwareAddr, ethertype uint16, b *pkt.Buffer, mss int) error {
	s := d.shards[nonNegMod(b.Shard, len(d.shards))]
	if err := d.frameGSO(dst, ethertype, b, mss); err != nil {
		b.Release()
		s.txErrors.Add(1)
		return err
	}
	return d.countTxErr(s, d.xmit(nonNegMod(b.Shard, len(d.txqs)), b, mss))
}

// frameGSO checks a TCP/IPv4 super-packet and prepends its Ethernet header.
func (d *Device) frameGSO(dst net.HardwareAddr, ethertype uint16, b *pkt.Buffer, mss int) error {
	switch {
	case d.gso == nil || d.gsoMax == 0:
		return ErrNoGSO
	case len(dst) != 6:
		return errBadMAC
	case ethertype != wire.EtherTypeIPv4 || mss <= 0:
		return fmt.Errorf("netdev: GSO needs TCP/IPv4 and an MSS (ethertype %#04x, mss %d)", ethertype, mss)
	case b.Len()+wire.EthernetHeaderLen > d.gsoMax:
		return fmt.Errorf("%w: %d > %d", errTooBig, b.Len()+wire.EthernetHeaderLen, d.gsoMax)
	case b.Headroom() < wire.EthernetHeaderLen:
		return errNoHeadroom
	}
	wire.PrependEthernet(b, dst, d.macKey[:], ethertype)
	return nil
}

func nonNegMod(i, n int) int {
	i %= n
	if i < 0 {
		i += n
	}
	return i
}

// Softnet returns each shard's counters and backlog length.
func (d *Device) Softnet() []SoftnetStat {
	st := make([]SoftnetStat, len(d.shards))
	for i, s := range d.shards {
		st[i] = SoftnetStat{
			Processed:   s.processed.Load(),
			Dropped:     s.dropped.Load(),
			TimeSqueeze: s.timeSqueeze.Load(),
			BacklogLen:  s.backlogLen(),
		}
	}
	return st
}

// Counters visits the device counters, then the softnet totals, always in
// this order. NetdevRxFrames counts every frame handed to Receive,
// including those later dropped.
func (d *Device) Counters(visit func(name string, value uint64)) {
	var rxF, rxB, txF, txB, txE, proc, drop, squeeze uint64
	for _, s := range d.shards {
		rxF += s.rxFrames.Load()
		rxB += s.rxBytes.Load()
		txF += s.txFrames.Load()
		txB += s.txBytes.Load()
		txE += s.txErrors.Load()
		proc += s.processed.Load()
		drop += s.dropped.Load()
		squeeze += s.timeSqueeze.Load()
	}
	runt, other := d.rxRunt.Load(), d.rxOtherHost.Load()
	visit("NetdevRxFrames", rxF+runt+other)
	visit("NetdevRxBytes", rxB+d.rxBadBytes.Load())
	visit("NetdevRxRunt", runt)
	visit("NetdevRxOtherHost", other)
	visit("NetdevRxUnknownEthertype", d.rxUnknown.Load())
	visit("NetdevRxErrors", d.rxErrors.Load())
	visit("NetdevTxFrames", txF)
	visit("NetdevTxBytes", txB)
	visit("NetdevTxErrors", txE)
	var txFull uint64
	for _, t := range d.txqs {
		txFull += t.full.Load()
	}
	visit("NetdevTxQueueFull", txFull)
	visit("SoftnetProcessed", proc)
	visit("SoftnetDropped", drop)
	visit("SoftnetTimeSqueeze", squeeze)
}
