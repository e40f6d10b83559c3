package ipv4

import (
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/tapstack/tapstack/internal/clock"
	"github.com/tapstack/tapstack/internal/pkt"
)

// nudState is a neighbour's Neighbour Unreachability Detection state
// (include/net/neighbour.h NUD_*).
type nudState uint8

const (
	nudNone nudState = iota
	nudIncomplete
	nudReachable
	nudStale
	nudDelay
	nudProbe
	nudFailed
)

var nudNames = [...]string{"NONE", "INCOMPLETE", "REACHABLE", "STALE", "DELAY", "PROBE", "FAILED"}

func (s nudState) String() string { return nudNames[s] }

// valid reports NUD_VALID: the hardware address may be used.
func (s nudState) valid() bool { return s >= nudReachable && s <= nudProbe }

// ErrNeighTableFull is returned when a new neighbour cannot be created
// because the table holds gc_thresh3 entries none of which may be collected.
var ErrNeighTableFull = errors.New("ipv4: neighbour table overflow: " + syscall.ENOBUFS.Error())

type neighbour struct {
	addr   netip.Addr
	state  nudState
	mac    net.HardwareAddr // never modified in place: replaced on change, so it may be used unlocked
	queue  []pending        // packets awaiting resolution, ≤ unres_qlen
	probes int

	confirmed, updated, used time.Time
	reachable                time.Duration // randomised reachable_time
	timer                    clock.Timer
	due                      time.Time // when the armed timer should act; stale fires are ignored
	armed                    bool
}

// pending is a packet awaiting resolution. gsoMSS > 0 marks a TCP
// super-packet for the device to segment (skb_shinfo(skb)->gso_size).
type pending struct {
	b      *pkt.Buffer
	gsoMSS int
}

// releaseAll frees the packets of q.
func releaseAll(q []pending) {
	for _, p := range q {
		p.b.Release()
	}
}

type neighTable struct {
	l *Layer
	// noARP: the device has no link-layer header to fill in (an L3 device:
	// a TUN or a channel), so every neighbour is NUD_NOARP and packets go
	// straight to the device (arp_constructor, for a device without
	// header_ops or with IFF_NOARP: neigh_direct_output). No entry is
	// kept: it would hold nothing, and `ip neigh` does not list NOARP
	// entries either.
	noARP  bool
	mu     sync.Mutex
	m      map[netip.Addr]*neighbour
	closed bool
}

func (t *neighTable) init(l *Layer) {
	t.l = l
	t.m = make(map[netip.Addr]*neighbour)
	t.noARP = isL3Device(l.dev)
}

// isL3Device reports a device without a link layer (netdev.Device.L3).
func isL3Device(dev device) bool {
	l3, ok := dev.(interface{ L3() bool })
	return ok && l3.L3()
}

func (t *neighTable) ms(v int64) time.Duration { return time.Duration(v) * time.Millisecond }

// randomReachable is neigh_rand_reach_time: uniform in [base/2, 3*base/2).
func (t *neighTable) randomReachable() time.Duration {
	base := t.l.sys.NeighBaseReachableMs.Load()
	if base <= 0 {
		return 0
	}
	return t.ms(base/2 + rand.Int64N(base))
}

// armLocked arms n's timer to act after d; the caller holds mu.
func (t *neighTable) armLocked(n *neighbour, d time.Duration) {
	n.due = t.l.clk.Now().Add(d)
	n.armed = true
	if n.timer == nil {
		n.timer = t.l.clk.AfterFunc(d, func() { t.timerFired(n) })
		return
	}
	n.timer.Reset(d)
}

func (t *neighTable) disarmLocked(n *neighbour) {
	n.armed = false
	if n.timer != nil {
		n.timer.Stop()
	}
}

// createLocked is neigh_create/neigh_alloc with the gc_thresh3 bound.
func (t *neighTable) createLocked(a netip.Addr) *neighbour {
	if int64(len(t.m)) >= t.l.sys.NeighGcThresh3.Load() {
		t.forcedGCLocked()
		if int64(len(t.m)) >= t.l.sys.NeighGcThresh3.Load() {
			t.l.ctr.inc(cArpTableFulls)
			return nil
		}
	}
	n := &neighbour{addr: a, updated: t.l.clk.Now()}
	t.m[a] = n
	t.l.ctr.inc(cArpAllocs)
	return n
}

// forcedGCLocked is neigh_forced_gc: drop entries no timer holds that are
// FAILED or were not updated in the last 5 s.
func (t *neighTable) forcedGCLocked() {
	t.l.ctr.inc(cArpForcedGcRuns)
	tref := t.l.clk.Now().Add(-neighGcStaleMs * time.Millisecond)
	for a, n := range t.m {
		if n.armed || len(n.queue) > 0 {
			continue
		}
		if n.state == nudFailed || !n.updated.After(tref) {
			delete(t.m, a)
			t.l.ctr.inc(cArpDestroys)
		}
	}
}

// output sends b (an IPv4 packet; a super-packet to be cut at gsoMSS when
// that is > 0) to neighbour via, resolving it first if needed
// (neigh_resolve_output + __neigh_event_send). It always consumes b.
func (t *neighTable) output(via netip.Addr, b *pkt.Buffer, gsoMSS int) error {
	if t.noARP {
		return t.directOutput(b, gsoMSS)
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		b.Release()
		return ErrClosed
	}
	n := t.m[via]
	if n == nil {
		if n = t.createLocked(via); n == nil {
			t.mu.Unlock()
			b.Release()
			t.l.ctr.inc(cOutDiscards)
			return ErrNeighTableFull
		}
	}
	now := t.l.clk.Now()
	n.used = now
	switch n.state {
	case nudReachable, nudDelay, nudProbe:
		mac := n.mac
		t.mu.Unlock()
		return t.l.transmit(mac, b, gsoMSS)
	case nudStale:
		n.state = nudDelay
		t.armLocked(n, neighDelayFirstProbeMs*time.Millisecond)
		mac := n.mac
		t.mu.Unlock()
		return t.l.transmit(mac, b, gsoMSS)
	case nudIncomplete:
		t.enqueueLocked(n, pending{b, gsoMSS})
		t.mu.Unlock()
		return nil
	default: // NONE, FAILED: start resolution
		n.state = nudIncomplete
		n.probes = 1
		n.updated = now
		t.enqueueLocked(n, pending{b, gsoMSS})
		t.armLocked(n, t.ms(t.l.sys.NeighRetransMs.Load()))
		t.mu.Unlock()
		t.l.solicit(via, nil)
		return nil
	}
}

// directOutput is neigh_direct_output: no resolution, no hardware address.
func (t *neighTable) directOutput(b *pkt.Buffer, gsoMSS int) error {
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		b.Release()
		return ErrClosed
	}
	return t.l.transmit(nil, b, gsoMSS)
}

// enqueueLocked queues p on n, dropping the oldest packets beyond
// unres_qlen (the arp_queue loop of __neigh_event_send).
func (t *neighTable) enqueueLocked(n *neighbour, p pending) {
	limit := int(t.l.sys.NeighUnresQlen.Load())
	for len(n.queue) > 0 && len(n.queue) >= limit {
		n.queue[0].b.Release()
		n.queue[0] = pending{}
		n.queue = n.queue[1:]
		t.l.ctr.inc(cArpUnresolvedDiscards)
	}
	if limit <= 0 {
		p.b.Release()
		t.l.ctr.inc(cArpUnresolvedDiscards)
		return
	}
	n.queue = append(n.queue, p)
}

// update is neigh_update with override: learn mac for a in state st
// (REACHABLE for a reply to us, STALE otherwise). create says whether a
// missing entry is created (neigh_event_ns) or the update ignored.
func (t *neighTable) update(a netip.Addr, mac net.HardwareAddr, st nudState, create bool) {
	t.mu.Lock()
	if t.closed || t.noARP {
		t.mu.Unlock()
		return
	}
	n := t.m[a]
	if n == nil {
		if !create {
			t.mu.Unlock()
			return
		}
		if n = t.createLocked(a); n == nil {
			t.mu.Unlock()
			return
		}
	}
	now := t.l.clk.Now()
	sameMAC := n.state.valid() && string(n.mac) == string(mac)
	if !sameMAC {
		n.mac = append(net.HardwareAddr(nil), mac...)
	} else if st == nudStale {
		st = n.state // neigh_update: the same address as STALE does not demote a valid entry
	}
	n.updated = now
	switch st {
	case nudReachable:
		n.confirmed = now
		n.reachable = t.randomReachable()
		t.armLocked(n, n.reachable)
	case nudStale:
		t.disarmLocked(n)
	}
	n.state = st
	queue := n.queue
	n.queue = nil
	mac = n.mac
	t.mu.Unlock()
	for _, p := range queue {
		_ = t.l.transmit(mac, p.b, p.gsoMSS)
	}
}

// timerFired is neigh_timer_handler.
func (t *neighTable) timerFired(n *neighbour) {
	t.mu.Lock()
	now := t.l.clk.Now()
	if t.closed || !n.armed || now.Before(n.due) {
		t.mu.Unlock()
		return
	}
	n.armed = false
	var probeTo net.HardwareAddr
	probe := false
	var dropped []pending
	failed := false
	switch n.state {
	case nudReachable:
		switch {
		case now.Before(n.confirmed.Add(n.reachable)):
			t.armLocked(n, n.confirmed.Add(n.reachable).Sub(now))
		case now.Before(n.used.Add(neighDelayFirstProbeMs * time.Millisecond)):
			n.state = nudDelay
			t.armLocked(n, neighDelayFirstProbeMs*time.Millisecond)
		default:
			n.state = nudStale
		}
	case nudDelay:
		if now.Before(n.confirmed.Add(neighDelayFirstProbeMs * time.Millisecond)) {
			n.state = nudReachable
			t.armLocked(n, n.confirmed.Add(n.reachable).Sub(now))
		} else {
			n.state = nudProbe
			n.probes = 1
			probe, probeTo = true, n.mac
			t.armLocked(n, t.ms(t.l.sys.NeighRetransMs.Load()))
		}
	case nudProbe, nudIncomplete:
		max := neighUcastSolicit
		if n.state == nudIncomplete {
			max = int(t.l.sys.NeighMcastSolicit.Load())
		}
		if n.probes >= max {
			// neigh_invalidate: resolution failed, queued packets are dropped.
			n.state = nudFailed
			n.updated = now
			dropped = n.queue
			n.queue = nil
			failed = true
			t.l.ctr.inc(cArpResFailed)
		} else {
			n.probes++
			probe = true
			if n.state == nudProbe {
				probeTo = n.mac
			}
			t.armLocked(n, t.ms(t.l.sys.NeighRetransMs.Load()))
		}
	}
	a := n.addr
	t.mu.Unlock()
	if failed {
		t.l.evArpFailed.Log(slog.String("neighbour", a.String()), slog.Int("dropped_packets", len(dropped)))
	}
	releaseAll(dropped)
	if probe {
		t.l.solicit(a, probeTo)
	}
}

func (t *neighTable) close() {
	t.mu.Lock()
	t.closed = true
	var queued []pending
	for _, n := range t.m {
		t.disarmLocked(n)
		queued = append(queued, n.queue...)
		n.queue = nil
	}
	t.mu.Unlock()
	releaseAll(queued)
}

// NeighbourInfo is one row of the neighbour table (`ip neigh`).
type NeighbourInfo struct {
	Addr   netip.Addr
	MAC    net.HardwareAddr
	State  string
	Queued int
}

// Neighbours lists the neighbour table.
func (l *Layer) Neighbours() []NeighbourInfo {
	t := &l.neigh
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]NeighbourInfo, 0, len(t.m))
	for _, n := range t.m {
		out = append(out, NeighbourInfo{Addr: n.addr, MAC: n.mac, State: n.state.String(), Queued: len(n.queue)})
	}
	return out
}
