// Package ipv4 is the network layer: IPv4 input and output, fragmentation
// and reassembly, routing, the ARP neighbour table and ICMP, with Linux's
// drop points, sysctls and counters.
package ipv4

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/tapstack/tapstack/clock"
	"github.com/tapstack/tapstack/internal/eventlog"
	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/wire"
)

// Errors returned by Route and Output. They wrap the errno Linux returns so
// that callers can test with errors.Is(err, syscall.ENETUNREACH).
var (
	ErrNoRoute = fmt.Errorf("ipv4: no route to host: %w", syscall.ENETUNREACH)
	ErrMsgSize = fmt.Errorf("ipv4: packet larger than path MTU with DF set: %w", syscall.EMSGSIZE)
	ErrClosed  = errors.New("ipv4: layer closed")
	ErrAddress = errors.New("ipv4: not a usable IPv4 host address")
)

// Config configures a Layer.
type Config struct {
	Sysctls *Sysctls      // nil → NewSysctls()
	Clock   clock.Clock   // nil → clock.Real()
	Log     *eventlog.Log // notable events (ARP failures, reassembly memory full); nil: silent
}

// Packet is a datagram delivered to a protocol handler. Payload and Header
// are views into the receive buffer, valid until the handler returns.
type Packet struct {
	Src, Dst netip.Addr
	TOS, TTL uint8
	Payload  []byte // transport header and data
	Header   []byte // the IPv4 header, options included
	Shard    int    // netdev shard the packet was received on
	// ChecksumValid: the link vouched for the transport checksum
	// (CHECKSUM_UNNECESSARY); never set on a reassembled packet.
	ChecksumValid bool
	// Broadcast: Dst is a broadcast address (RTCF_BROADCAST).
	Broadcast bool
}

// ControlMessage is an ICMP error that quotes a packet we sent.
type ControlMessage struct {
	Type, Code uint8
	MTU        int        // next-hop MTU of a fragmentation-needed message, else 0
	Src, Dst   netip.Addr // of the quoted original
	Proto      uint8
	Quoted     []byte // the quoted transport header (≥ 8 bytes); valid until the handler returns
}

// device is what the layer needs from netdev; tests substitute a fake.
type device interface {
	MAC() net.HardwareAddr
	MTU() int
	Transmit(dst net.HardwareAddr, ethertype uint16, b *pkt.Buffer) error
	Receive(b *pkt.Buffer) bool
	// GSOMax is the longest Ethernet super-frame TransmitGSO takes, 0: none.
	GSOMax() int
	TransmitGSO(dst net.HardwareAddr, ethertype uint16, b *pkt.Buffer, mss int) error
}

// Layer is the IPv4 layer of one device.
type Layer struct {
	dev device
	mac net.HardwareAddr
	mtu int
	// gsoMax is the longest IPv4 super-packet the device segments, 0: none.
	gsoMax int
	sys    *Sysctls
	clk    clock.Clock

	evArpFailed, evReasmFull *eventlog.Event

	rt     routeTable
	neigh  neighTable
	reasm  reassembler
	icmpRL icmpLimiter
	ident  identGen

	protos   [256]atomic.Pointer[func(Packet)]
	controls [256]atomic.Pointer[func(ControlMessage)]

	closed atomic.Bool
	ctr    counters

	startOnce sync.Once
}

func newLayer(dev device, cfg Config) *Layer {
	l := &Layer{dev: dev, mac: dev.MAC(), mtu: dev.MTU(), gsoMax: gsoMaxOf(dev.GSOMax()), sys: cfg.Sysctls, clk: cfg.Clock}
	if l.sys == nil {
		l.sys = NewSysctls()
	}
	if l.clk == nil {
		l.clk = clock.Real()
	}
	l.evArpFailed = cfg.Log.Event(slog.LevelWarn, "ARP resolution failed, dropping queued packets")
	l.evReasmFull = cfg.Log.Event(slog.LevelWarn, "IPv4 reassembly memory full (net.ipv4.ipfrag_high_thresh), dropping fragments")
	l.neigh.init(l)
	l.reasm.init(l)
	l.icmpRL.init(l.clk.Now())
	l.ident.init()
	l.rt.init()
	return l
}

// RegisterProtocol sets the handler for an IP protocol number. The handler
// runs on a netdev shard goroutine, concurrently with other shards.
// A nil h removes the handler.
func (l *Layer) RegisterProtocol(proto uint8, h func(p Packet)) {
	if h == nil {
		l.protos[proto].Store(nil)
		return
	}
	l.protos[proto].Store(&h)
}

// RegisterControl sets the handler for ICMP errors quoting packets of an IP
// protocol we sent (icmp_err_convert / err_handler).
// A nil h removes the handler.
func (l *Layer) RegisterControl(proto uint8, h func(m ControlMessage)) {
	if h == nil {
		l.controls[proto].Store(nil)
		return
	}
	l.controls[proto].Store(&h)
}

// Start announces each address with a gratuitous ARP (inetdev_send_gratuitous_arp).
// Call it after the device has started.
func (l *Layer) Start() {
	l.startOnce.Do(func() {
		for _, p := range l.rt.addresses() {
			l.sendARP(wire.ARPRequest, p.Addr(), nil, p.Addr(), nil)
		}
	})
}

// Close stops every timer and frees queued packets. Packets arriving after
// Close are counted as IpInDiscards.
func (l *Layer) Close() {
	if l.closed.Swap(true) {
		return
	}
	l.neigh.close()
	l.reasm.close()
}
