// Package tcp is tapstack's TCP: connections with Linux's state machine,
// timers, loss recovery and congestion control, and Linux's listen path
// (SYN queue of request socks, accept queue, syncookies) with the same
// sysctls, limits and MIB counters. It sits on a Network (the IPv4 layer)
// and is driven by Deliver from the device layer's shard goroutines.
package tcp

import (
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapstack/tapstack/clock"
	"github.com/tapstack/tapstack/internal/eventlog"
	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/internal/siphash"
	"github.com/tapstack/tapstack/tcp/congestion"
	"github.com/tapstack/tapstack/tcp/syncookie"
	"github.com/tapstack/tapstack/wire"
)

// Network is the layer below TCP: it routes and sends IPv4 packets.
type Network interface {
	// Output sends b (TCP header + payload) from src to dst; it always
	// takes ownership of b.
	Output(src, dst netip.Addr, proto uint8, b *pkt.Buffer) error
	// Route returns the source address and path MTU towards dst.
	Route(dst netip.Addr) (src netip.Addr, mtu int, err error)
}

// GSONetwork is a Network that can also send a TCP super-segment for the
// device to cut into mss-sized segments (TSO). TCP uses it when GSOMax()
// is above 0, read at every transmit since a link may come later.
type GSONetwork interface {
	Network
	// OutputGSO sends b (TCP header + up to GSOMax()-20-header payload
	// bytes, checksum not computed) to be cut at mss payload bytes. It
	// takes ownership of b, except when it fails with an error matching
	// ErrNoGSO: then nothing was sent and b is left to the caller.
	OutputGSO(src, dst netip.Addr, proto uint8, b *pkt.Buffer, mss int) error
	// GSOMax is the longest IPv4 packet OutputGSO accepts; 0: no TSO.
	GSOMax() int
}

// ErrNoGSO is the error a GSONetwork's OutputGSO returns (or wraps) when it
// cannot segment after all; TCP then segments in software. It wraps the
// link's ErrNoGSO (driver.ErrNoGSO) but is a value of its own: it also
// says that b was handed back unsent.
var ErrNoGSO = fmt.Errorf("tcp: network cannot segment: %w", pkt.ErrNoGSO)

// Config configures a Stack.
type Config struct {
	Network Network
	Clock   clock.Clock // nil: real clock
	Sysctls *Sysctls    // nil: Linux defaults
	Rand    io.Reader   // nil: crypto/rand; seeds the ISN, timestamp and cookie keys
	// MaxConnections caps established-hash entries (0: unlimited); beyond
	// it new connections are refused and TCPMaxConnDrop counted.
	MaxConnections int
	// Log receives notable events (SYN flood, accept-queue overflow); nil: silent.
	Log *eventlog.Log
}

// events are the listen path's notable events, worded after Linux's
// tcp_syn_flood_action messages.
type events struct {
	synFloodCookies, synFloodDrop, acceptOverflow *eventlog.Event
}

// ProtoTCP is the IP protocol number of TCP.
const ProtoTCP = wire.IPProtocolTCP

// Stack is one TCP instance.
type Stack struct {
	ev       events
	net      Network
	gsoNet   GSONetwork // net, if it can send super-segments
	clock    clock.Clock
	sys      *Sysctls
	maxConns int
	mib      mib
	hystart  congestion.HyStartCounters
	epoch    time.Time

	isnKey, tsKey siphash.Key // Linux's net_secret and ts_secret
	ehashKey      siphash.Key // inet_ehashfn's secret: the flow hash that spreads SYNs over a reuseport group
	jar           *syncookie.Jar

	mu  sync.RWMutex
	est map[tuple]*Conn
	// listeners maps a bound address to its listener, or to the group of
	// SO_REUSEPORT listeners sharing it (the slice is replaced, never
	// changed in place, so a reader may keep one after s.mu).
	listeners map[netip.AddrPort][]*Listener
	nextPort  uint32
	tw        int
	closed    bool

	provenMu sync.Mutex
	proven   map[netip.Addr]struct{}

	orphans atomic.Int64 // connections closed by the user but not yet finished

	challengeMu    sync.Mutex
	challengeStart time.Time
	challengeCount int64
}

// New returns a Stack.
func New(cfg Config) *Stack {
	s := &Stack{net: cfg.Network, clock: cfg.Clock, sys: cfg.Sysctls, maxConns: cfg.MaxConnections}
	s.gsoNet, _ = cfg.Network.(GSONetwork)
	s.ev = events{
		synFloodCookies: cfg.Log.Event(slog.LevelWarn, "possible SYN flooding: SYN queue full, sending cookies"),
		synFloodDrop:    cfg.Log.Event(slog.LevelWarn, "possible SYN flooding: SYN queue full, dropping requests (net.ipv4.tcp_syncookies=0)"),
		acceptOverflow:  cfg.Log.Event(slog.LevelWarn, "accept queue overflow: the application does not accept fast enough (ListenOverflows)"),
	}
	if s.clock == nil {
		s.clock = clock.Real()
	}
	if s.sys == nil {
		s.sys = NewSysctls()
	}
	r := cfg.Rand
	if r == nil {
		r = rand.Reader
	}
	var keys [32 + 16 + 16 + 4 + 16]byte
	if _, err := io.ReadFull(r, keys[:]); err != nil {
		panic("tcp: cannot read random keys: " + err.Error())
	}
	var cookieSecret [32]byte
	copy(cookieSecret[:], keys[:32])
	s.jar = syncookie.NewJar(cookieSecret)
	s.isnKey = siphash.KeyFrom(keys[32:48])
	s.tsKey = siphash.KeyFrom(keys[48:64])
	s.ehashKey = siphash.KeyFrom(keys[68:84])
	s.nextPort = uint32(keys[64]) | uint32(keys[65])<<8
	s.epoch = s.clock.Now().Add(-time.Second) // timestamps never start at 0
	s.est = make(map[tuple]*Conn)
	s.listeners = make(map[netip.AddrPort][]*Listener)
	s.proven = make(map[netip.Addr]struct{})
	return s
}

// Sysctls returns the live knobs.
func (s *Stack) Sysctls() *Sysctls { return s.sys }

// Close aborts every connection and listener.
func (s *Stack) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conns := make([]*Conn, 0, len(s.est))
	for _, c := range s.est {
		conns = append(conns, c)
	}
	var ls []*Listener
	for _, g := range s.listeners {
		ls = append(ls, g...)
	}
	s.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	for _, c := range conns {
		c.destroy(errClosedStack)
	}
	return nil
}

// outSeg is one built segment waiting to be handed to the Network; a
// super-segment when gso (its MSS) is above 0.
type outSeg struct {
	src, dst netip.Addr
	b        *pkt.Buffer
	gso      int
}

// outBatch collects segments built under a lock so they are sent after
// the lock is released. It lives on the caller's stack.
type outBatch struct {
	n    int
	a    [8]outSeg
	more *[]outSeg // overflow, from morePool
}

var morePool = sync.Pool{New: func() any { s := make([]outSeg, 0, 64); return &s }}

func (o *outBatch) push(src, dst netip.Addr, b *pkt.Buffer, gso int) {
	if o.n < len(o.a) {
		o.a[o.n] = outSeg{src, dst, b, gso}
		o.n++
		return
	}
	if o.more == nil {
		o.more = morePool.Get().(*[]outSeg)
	}
	*o.more = append(*o.more, outSeg{src, dst, b, gso})
}

// flush hands every collected segment to the Network, in order.
func (s *Stack) flush(o *outBatch) {
	for i := 0; i < o.n; i++ {
		seg := o.a[i]
		o.a[i] = outSeg{}
		s.transmit(&seg)
	}
	o.n = 0
	if o.more == nil {
		return
	}
	m := *o.more
	for i := range m {
		s.transmit(&m[i])
		m[i] = outSeg{}
	}
	*o.more = m[:0]
	morePool.Put(o.more)
	o.more = nil
}

// challengeAllowed mirrors the global tcp_challenge_ack_limit budget of
// tcp_send_challenge_ack: at most limit challenge ACKs per second.
func (s *Stack) challengeAllowed() bool {
	now := s.clock.Now()
	s.challengeMu.Lock()
	defer s.challengeMu.Unlock()
	if now.Sub(s.challengeStart) >= time.Second {
		s.challengeStart = now
		s.challengeCount = 0
	}
	if s.challengeCount >= s.sys.ChallengeAckLimit.Load() {
		return false
	}
	s.challengeCount++
	return true
}

// markProven records that addr completed a handshake (Linux keeps this in
// tcp_metrics; tcp_peer_is_proven consults it). Bounded.
func (s *Stack) markProven(a netip.Addr) {
	s.provenMu.Lock()
	if len(s.proven) < 4096 {
		s.proven[a] = struct{}{}
	}
	s.provenMu.Unlock()
}

func (s *Stack) peerIsProven(a netip.Addr) bool {
	s.provenMu.Lock()
	_, ok := s.proven[a]
	s.provenMu.Unlock()
	return ok
}
