package stack

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/tapstack/tapstack/clock"
	"github.com/tapstack/tapstack/internal/eventlog"
	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/ipv4"
	"github.com/tapstack/tapstack/netdev"
	"github.com/tapstack/tapstack/tcp"
	"github.com/tapstack/tapstack/udp"
	"github.com/tapstack/tapstack/wire"
)

// Config configures a Stack. The zero value is a stack with Linux defaults
// on the wall clock.
type Config struct {
	// Clock drives every timer and deadline; nil means the wall clock
	// (clock.Real). Tests pass a [*clock.Virtual], shared with the link
	// (see ExampleConfig_clock).
	Clock Clock
	// Shards is the number of per-CPU input backlogs; 0 means GOMAXPROCS.
	Shards int
	// ThreadedNAPI processes every backlog on its shard's worker goroutine
	// (Linux's threaded NAPI). By default the goroutine reading a link queue
	// processes an idle backlog itself, as netif_rx runs the softirq on the
	// raising CPU, and hands over to the worker only after a time squeeze.
	ThreadedNAPI bool
	// Sysctls sets knobs by their Linux names before the stack starts, e.g.
	// {"net.core.somaxconn": "128"}.
	Sysctls map[string]string
	// Rand seeds the ISN and syncookie secrets; nil means crypto/rand.
	Rand io.Reader
	// Logger receives one structured line per notable event (a backlog
	// starting to drop, an accept queue overflowing, syncookies engaging, an
	// ARP failure), each kind at most once per 5 s with a count of what it
	// stands for. Nil keeps the stack silent.
	Logger *slog.Logger
	// MaxConnections caps the TCP sockets (established, closing and
	// request socks alike); 0 means no cap beyond memory. At the cap Dial
	// fails and SYNs are dropped, counted in TcpExtTCPMaxConnDrop.
	MaxConnections int
	// TxQueueLen bounds the frames waiting to be written to each link queue
	// while another goroutine writes there (the device's txqueuelen); 0
	// means 1000, Linux's default. A sender that finds it full waits for
	// room, counted in NetdevTxQueueFull.
	TxQueueLen int
}

// Stack is one userspace TCP/IP stack with (at most) one attached link.
// Its methods are safe for concurrent use.
type Stack struct {
	cfg           Config
	clk           clock.Clock
	log           *eventlog.Log
	netdevSysctls *netdev.Sysctls
	ipSysctls     *ipv4.Sysctls
	tcpSysctls    *tcp.Sysctls
	udpSysctls    *udp.Sysctls
	sysctls       map[string]*sysctl

	tcp *tcp.Stack
	udp *udp.Stack

	mu     sync.Mutex
	dev    *netdev.Device
	closed bool
	// ip is read on every transmitted segment, so it is an atomic pointer
	// rather than a field under mu.
	ip atomic.Pointer[ipv4.Layer]
}

// maxTxQueueLen bounds Config.TxQueueLen (each queue's ring is allocated
// at Attach).
const maxTxQueueLen = 1 << 20

// ErrNoLink is returned by operations that need an attached link.
var ErrNoLink = errors.New("tapstack: no link attached")

// New returns a stack with Linux defaults, overridden by cfg.Sysctls; an
// unknown sysctl or a value out of range is an error. The stack sends and
// receives nothing until Attach gives it a link.
func New(cfg Config) (*Stack, error) {
	if cfg.TxQueueLen < 0 || cfg.TxQueueLen > maxTxQueueLen {
		return nil, fmt.Errorf("tapstack: Config.TxQueueLen %d: want 0 (the default, %d) to %d", cfg.TxQueueLen, netdev.DefaultTxQueueLen, maxTxQueueLen)
	}
	s := &Stack{
		cfg:           cfg,
		clk:           cfg.Clock,
		netdevSysctls: netdev.NewSysctls(),
		ipSysctls:     ipv4.NewSysctls(),
		tcpSysctls:    tcp.NewSysctls(),
	}
	// UDP reads the net.core buffer ceilings and the port range where TCP
	// does: one knob each, as in Linux.
	s.udpSysctls = udp.NewSysctls()
	s.udpSysctls.RmemMax, s.udpSysctls.WmemMax = &s.tcpSysctls.CoreRmemMax, &s.tcpSysctls.CoreWmemMax
	s.udpSysctls.PortLow, s.udpSysctls.PortHigh = &s.tcpSysctls.LocalPortLow, &s.tcpSysctls.LocalPortHigh
	if s.clk == nil {
		s.clk = clock.Real()
	}
	s.log = eventlog.New(cfg.Logger, s.clk, eventlog.DefaultInterval)
	s.sysctls = s.registry()
	for name, value := range cfg.Sysctls {
		if err := s.SetSysctl(name, value); err != nil {
			return nil, err
		}
	}
	s.tcp = tcp.New(tcp.Config{
		Network: (*network)(s),
		Clock:   s.clk,
		Sysctls: s.tcpSysctls,
		Rand:    cfg.Rand,

		MaxConnections: cfg.MaxConnections,
		Log:            s.log,
	})
	s.udp = udp.New(udp.Config{Network: (*network)(s), Clock: s.clk, Sysctls: s.udpSysctls})
	return s, nil
}

// Attach brings up link with address addr (e.g. 10.0.0.2/24, which also
// installs the on-link route) and starts receiving. A stack has one link,
// and only IPv4 addresses. The link is usually a TAP (driver.OpenTAP) or
// one end of driver.NewPipe; Close closes it.
func (s *Stack) Attach(link Link, addr netip.Prefix) error {
	if !addr.Addr().Is4() {
		return fmt.Errorf("tapstack: attach %s: only IPv4 addresses are supported", addr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("tapstack: attach: %w", net.ErrClosed)
	}
	if s.dev != nil {
		return errors.New("tapstack: attach: a link is already attached")
	}
	dev := netdev.New(link, netdev.Config{Shards: s.cfg.Shards, Threaded: s.cfg.ThreadedNAPI, TxQueueLen: s.cfg.TxQueueLen, Sysctls: s.netdevSysctls, Clock: s.clk, Log: s.log})
	ip := ipv4.New(dev, ipv4.Config{Sysctls: s.ipSysctls, Clock: s.clk, Log: s.log})
	if err := ip.AddAddress(addr); err != nil {
		ip.Close()
		dev.Close()
		return fmt.Errorf("tapstack: attach: %w", err)
	}
	ip.RegisterProtocol(wire.IPProtocolTCP, func(p ipv4.Packet) {
		s.tcp.Deliver(p.Src, p.Dst, p.Payload, p.Shard, p.ChecksumValid)
	})
	ip.RegisterControl(wire.IPProtocolTCP, func(m ipv4.ControlMessage) {
		s.tcp.Control(m.Type, m.Code, m.MTU, m.Src, m.Dst, m.Quoted)
	})
	ip.RegisterProtocol(wire.IPProtocolUDP, func(p ipv4.Packet) {
		if s.udp.Deliver(p.Src, p.Dst, p.Payload, p.ChecksumValid, p.Broadcast) == udp.NoPort {
			ip.SendUnreachable(p, wire.ICMPv4PortUnreach)
		}
	})
	ip.RegisterControl(wire.IPProtocolUDP, func(m ipv4.ControlMessage) {
		s.udp.Control(m.Type, m.Code, m.Src, m.Dst, m.Quoted)
	})
	dev.Start()
	ip.Start()
	s.dev = dev
	s.ip.Store(ip)
	return nil
}

// Shards is the number of the device's input backlogs (the per-CPU softnet
// queues, Config.Shards), numbered from 0 as Stats().Softnet lists them and
// as Listener.SetIncomingCPU names them; 0 without a link.
func (s *Stack) Shards() int {
	s.mu.Lock()
	dev := s.dev
	s.mu.Unlock()
	if dev == nil {
		return 0
	}
	return dev.Shards()
}

// AddRoute adds a route to dst through gw, as `ip route add` does; a
// zero-length dst prefix (0.0.0.0/0) sets the default gateway. The gateway
// must be on-link; a zero gw makes dst itself on-link. It needs an
// attached link (ErrNoLink otherwise).
func (s *Stack) AddRoute(dst netip.Prefix, gw netip.Addr) error {
	ip := s.ipLayer()
	if ip == nil {
		return ErrNoLink
	}
	return ip.AddRoute(dst, gw)
}

// Close resets every connection, stops every goroutine the stack started and
// closes the link. It is safe to call more than once.
func (s *Stack) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	dev, ip := s.dev, s.ip.Load()
	s.mu.Unlock()
	err := s.tcp.Close()
	s.udp.Close()
	if ip != nil {
		ip.Close()
	}
	if dev != nil {
		if derr := dev.Close(); err == nil {
			err = derr
		}
	}
	return err
}

func (s *Stack) ipLayer() *ipv4.Layer { return s.ip.Load() }

// network adapts the IPv4 layer to tcp.Network; it exists from New on, so
// TCP can be created before a link is attached.
type network Stack

func (n *network) Output(src, dst netip.Addr, proto uint8, b *pkt.Buffer) error {
	ip := (*Stack)(n).ipLayer()
	if ip == nil {
		b.Release()
		return ErrNoLink
	}
	return ip.Output(src, dst, proto, b)
}

// OutputPMTU is Output with a UDP socket's path MTU discovery mode.
func (n *network) OutputPMTU(src, dst netip.Addr, proto uint8, mode udp.PMTUDisc, b *pkt.Buffer) error {
	ip := (*Stack)(n).ipLayer()
	if ip == nil {
		b.Release()
		return ErrNoLink
	}
	return ip.OutputPMTU(src, dst, proto, ipv4.PMTUDisc(mode), b)
}

// OutputGSO sends a TCP super-segment for the device to cut at mss. Without
// TSO the IPv4 layer hands b back, and TCP gets tcp.ErrNoGSO to segment it
// in software.
func (n *network) OutputGSO(src, dst netip.Addr, proto uint8, b *pkt.Buffer, mss int) error {
	ip := (*Stack)(n).ipLayer()
	if ip == nil {
		b.Release()
		return ErrNoLink
	}
	err := ip.OutputGSO(src, dst, proto, b, mss)
	if errors.Is(err, ipv4.ErrNoGSO) {
		return fmt.Errorf("%w: %w", tcp.ErrNoGSO, err)
	}
	return err
}

// GSOMax is the IPv4 layer's super-packet limit, 0 without a link or TSO.
func (n *network) GSOMax() int {
	if ip := (*Stack)(n).ipLayer(); ip != nil {
		return ip.GSOMax()
	}
	return 0
}

func (n *network) Route(dst netip.Addr) (netip.Addr, int, error) {
	ip := (*Stack)(n).ipLayer()
	if ip == nil {
		return netip.Addr{}, 0, ErrNoLink
	}
	return ip.Route(dst)
}
