package ipv4

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// route is one entry of the FIB: dst/len via gw (invalid gw = on-link).
type route struct {
	dst netip.Prefix
	gw  netip.Addr
}

// pmtuEntry is a learned path MTU (a fib_nh_exception in Linux).
type pmtuEntry struct {
	mtu     int
	expires time.Time
}

type routeTable struct {
	mu     sync.RWMutex
	addrs  []netip.Prefix // our addresses with their prefix length
	local  []netip.Prefix // local routes: every address in them is ours (AnyIP)
	routes []route        // most specific first
	pmtu   map[netip.Addr]pmtuEntry
}

func (t *routeTable) init() { t.pmtu = make(map[netip.Addr]pmtuEntry) }

func (t *routeTable) addresses() []netip.Prefix {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return append([]netip.Prefix(nil), t.addrs...)
}

// AddAddress assigns p's address to the interface and adds the on-link
// route for p's subnet (like `ip addr add 10.0.0.2/24`).
func (l *Layer) AddAddress(p netip.Prefix) error {
	if err := checkHostAddress(p); err != nil {
		return err
	}
	t := &l.rt
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, a := range t.addrs {
		if a.Addr() == p.Addr() {
			return nil
		}
	}
	t.addrs = append(t.addrs, p)
	t.insert(route{dst: p.Masked()})
	return nil
}

// AddLocalRoute makes every address of p ours, as `ip route add local p
// dev lo` does (an RTN_LOCAL route of the local table, Linux's "AnyIP"):
// packets to any of them are delivered to the transports instead of dropped
// as someone else's (IpInAddrErrors), so a forwarder (tcp.Forwarder) or a
// socket bound to one of them takes them, and replies leave from that
// address. Broadcast and multicast prefixes are refused.
func (l *Layer) AddLocalRoute(p netip.Prefix) error {
	if !p.IsValid() || !p.Addr().Is4() || p.Masked().Addr().IsMulticast() {
		return ErrAddress
	}
	p = p.Masked()
	t := &l.rt
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, x := range t.local {
		if x == p {
			return nil
		}
	}
	t.local = append(t.local, p)
	return nil
}

// AddRoute adds a route to dst via gw; 0.0.0.0/0 is the default route. An
// invalid gw makes dst on-link. The gateway must be on-link (fib_check_nh).
func (l *Layer) AddRoute(dst netip.Prefix, gw netip.Addr) error {
	if !dst.IsValid() || !dst.Addr().Is4() || (gw.IsValid() && !gw.Is4()) {
		return ErrAddress
	}
	t := &l.rt
	t.mu.Lock()
	defer t.mu.Unlock()
	if gw.IsValid() {
		if r, ok := t.lookup(gw); !ok || r.gw.IsValid() {
			return ErrNoRoute
		}
	}
	t.insert(route{dst: dst.Masked(), gw: gw})
	return nil
}

func (t *routeTable) insert(r route) {
	for i, x := range t.routes {
		if x.dst == r.dst {
			t.routes[i] = r
			return
		}
	}
	i := 0
	for i < len(t.routes) && t.routes[i].dst.Bits() >= r.dst.Bits() {
		i++
	}
	t.routes = append(t.routes, route{})
	copy(t.routes[i+1:], t.routes[i:])
	t.routes[i] = r
}

// lookup is the longest-prefix match (fib_table_lookup); caller holds mu.
func (t *routeTable) lookup(dst netip.Addr) (route, bool) {
	for _, r := range t.routes {
		if r.dst.Contains(dst) {
			return r, true
		}
	}
	return route{}, false
}

// addrKind classifies a destination address as seen by this host.
type addrKind uint8

const (
	kindUnicast   addrKind = iota // someone else's
	kindLocal                     // one of ours (RTN_LOCAL)
	kindBroadcast                 // limited or subnet-directed broadcast (RTN_BROADCAST)
	kindMulticast
)

func (t *routeTable) classify(a netip.Addr) addrKind {
	if a.IsMulticast() {
		return kindMulticast
	}
	if a == limitedBroadcast {
		return kindBroadcast
	}
	for _, p := range t.addrs {
		if p.Addr() == a {
			return kindLocal
		}
		if p.Bits() < 31 && a == subnetBroadcast(p) {
			return kindBroadcast
		}
	}
	for _, p := range t.local {
		if p.Contains(a) {
			return kindLocal
		}
	}
	return kindUnicast
}

var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

func subnetBroadcast(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// assigned reports whether a is one of the addresses on the interface
// (not merely inside a local route).
func (l *Layer) assigned(a netip.Addr) bool {
	l.rt.mu.RLock()
	defer l.rt.mu.RUnlock()
	for _, p := range l.rt.addrs {
		if p.Addr() == a {
			return true
		}
	}
	return false
}

// classify reports what a is to this host.
func (l *Layer) classify(a netip.Addr) addrKind {
	l.rt.mu.RLock()
	k := l.rt.classify(a)
	l.rt.mu.RUnlock()
	return k
}

// nextHop is the outcome of an output route lookup.
type nextHop struct {
	src  netip.Addr
	via  netip.Addr // neighbour to resolve (gateway or dst)
	kind addrKind
	mtu  int
}

// loopbackMTU is the MTU of the path to our own addresses (Linux lo: 65536).
const loopbackMTU = 65535

// resolve is ip_route_output: source selection, next hop and path MTU.
func (l *Layer) resolve(dst netip.Addr) (nextHop, error) {
	if !dst.Is4() {
		return nextHop{}, ErrNoRoute
	}
	t := &l.rt
	t.mu.RLock()
	defer t.mu.RUnlock()
	switch k := t.classify(dst); k {
	case kindLocal:
		return nextHop{src: dst, via: dst, kind: k, mtu: loopbackMTU}, nil
	case kindBroadcast, kindMulticast:
		if len(t.addrs) == 0 {
			return nextHop{}, ErrNoRoute
		}
		src := t.addrs[0].Addr()
		for _, p := range t.addrs {
			if dst == subnetBroadcast(p) {
				src = p.Addr()
			}
		}
		return nextHop{src: src, via: dst, kind: k, mtu: l.mtu}, nil
	}
	r, ok := t.lookup(dst)
	if !ok || len(t.addrs) == 0 {
		return nextHop{}, ErrNoRoute
	}
	via := dst
	if r.gw.IsValid() {
		via = r.gw
	}
	// inet_select_addr: an address on the next hop's subnet, else the first.
	src := t.addrs[0].Addr()
	for _, p := range t.addrs {
		if p.Contains(via) {
			src = p.Addr()
			break
		}
	}
	mtu := l.mtu
	if e, ok := t.pmtu[dst]; ok && e.mtu < mtu && l.clk.Now().Before(e.expires) {
		mtu = e.mtu
	}
	return nextHop{src: src, via: via, kind: kindUnicast, mtu: mtu}, nil
}

// Route returns the source address and path MTU for dst (ip_route_output_key).
func (l *Layer) Route(dst netip.Addr) (src netip.Addr, mtu int, err error) {
	nh, err := l.resolve(dst)
	if err != nil {
		l.ctr.inc(cOutNoRoutes)
		return netip.Addr{}, 0, err
	}
	return nh.src, nh.mtu, nil
}

// updatePMTU records a smaller path MTU for dst from a fragmentation-needed
// message (__ip_rt_update_pmtu): clamped to min_pmtu, expiring after
// mtu_expires, never raising the MTU.
func (l *Layer) updatePMTU(dst netip.Addr, mtu int) int {
	if mtu < minPMTU {
		mtu = minPMTU
	}
	if mtu >= l.mtu {
		return l.mtu
	}
	t := &l.rt
	now := l.clk.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.pmtu) >= pmtuCacheMax {
		for k, e := range t.pmtu { // reclaim expired entries, else an arbitrary one
			if now.After(e.expires) || len(t.pmtu) >= pmtuCacheMax {
				delete(t.pmtu, k)
			}
		}
	}
	t.pmtu[dst] = pmtuEntry{mtu: mtu, expires: now.Add(pmtuExpiresSec * time.Second)}
	return mtu
}

// checkHostAddress refuses prefixes that cannot name this host. Linux's
// `ip addr add` takes them all, then nothing works; refusing them up front
// is the clearer error.
func checkHostAddress(p netip.Prefix) error {
	bad := func(why string) error { return fmt.Errorf("%w: %v is %s", ErrAddress, p, why) }
	a := p.Addr()
	switch {
	case !p.IsValid():
		return bad("not a valid prefix")
	case !a.Is4():
		return bad("not an IPv4 address")
	case a.IsUnspecified() || a.As4()[0] == 0:
		return bad("in 0.0.0.0/8, \"this network\"")
	case a.IsLoopback():
		return bad("a loopback address")
	case a.IsMulticast():
		return bad("a multicast address")
	case a.As4()[0] >= 240:
		return bad("reserved (240.0.0.0/4) or the limited broadcast address")
	}
	if bits := p.Bits(); bits < 31 {
		host := binary.BigEndian.Uint32(a.AsSlice()) &^ (^uint32(0) << (32 - bits))
		switch host {
		case 0:
			return bad("the subnet's network address")
		case ^uint32(0) >> bits:
			return bad("the subnet's broadcast address")
		}
	}
	return nil
}
