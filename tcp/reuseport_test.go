package tcp

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/tapstack/tapstack/wire"
)

var reuseAddr = netip.AddrPortFrom(netip.IPv4Unspecified(), 80)

func (h *harness) reuseGroup(n, backlog int) []*Listener {
	h.t.Helper()
	var g []*Listener
	for range n {
		l, err := h.s.ListenOpts(reuseAddr, backlog, ListenOptions{ReusePort: true})
		if err != nil {
			h.t.Fatal(err)
		}
		g = append(g, l)
	}
	return g
}

// owner is the member of g the flow hash picks for a connection from port p.
func (h *harness) owner(g []*Listener, p uint16) *Listener {
	return g[h.s.reuseportIndex(netip.AddrPortFrom(hLocal, 80), netip.AddrPortFrom(hPeer, p), len(g))]
}

// handshake sends a SYN from port p and the ACK of its SYN-ACK.
func (h *harness) handshake(p uint16) {
	h.t.Helper()
	h.inject(seg{src: p, dst: 80, seq: 1000, flags: fS, opts: &wire.TCPOptions{MSS: 1460, HasMSS: true, WScale: -1}})
	e := h.expect().SYNACK().Ack(1001)
	h.inject(seg{src: p, dst: 80, seq: 1001, ack: e.seg.Seq() + 1, flags: fA})
}

// TestReusePortBindRules: SO_REUSEPORT listeners share a port only with
// others that set it; the rest is EADDRINUSE, as bind(2) says.
func TestReusePortBindRules(t *testing.T) {
	h := newHarness(t, nil)
	g := h.reuseGroup(2, 8)
	if _, err := h.s.Listen(reuseAddr, 8); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("a plain listener on a reuseport group's port: %v, want EADDRINUSE", err)
	}
	plain, err := h.s.Listen(netip.AddrPortFrom(netip.IPv4Unspecified(), 81), 8)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.ListenOpts(plain.AddrPort(), 8, ListenOptions{ReusePort: true}); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("a reuseport listener on a plain listener's port: %v, want EADDRINUSE", err)
	}
	g[0].Close()
	g[1].Close()
	if l, err := h.s.Listen(reuseAddr, 8); err != nil {
		t.Fatalf("the port after the group closed: %v", err)
	} else {
		l.Close()
	}
}

// TestReusePortSpreadsByFlowHash: each SYN goes to the member its flow hash
// picks, with its own SYN queue; the handshake completes on that member's
// accept queue and nowhere else; each listener shows its own queues in ss.
func TestReusePortSpreadsByFlowHash(t *testing.T) {
	h := newHarness(t, nil)
	g := h.reuseGroup(3, 64)
	want := map[*Listener]int{}
	for p := uint16(5000); p < 5048; p++ {
		h.inject(seg{src: p, dst: 80, seq: 1000, flags: fS, opts: &wire.TCPOptions{MSS: 1460, HasMSS: true, WScale: -1}})
		want[h.owner(g, p)]++
	}
	h.drain()
	for i, l := range g {
		if syn, _ := l.QueueLens(); syn != want[l] || syn == 0 {
			t.Errorf("listener %d: SYN queue %d, want %d (and some)", i, syn, want[l])
		}
	}
	rows := 0
	for _, si := range h.s.Sockets() {
		if si.State == "LISTEN" {
			rows++
		}
	}
	if rows != 3 {
		t.Fatalf("ss lists %d listeners, want each of the 3", rows)
	}
	for p := uint16(6000); p < 6016; p++ {
		h.handshake(p)
		o := h.owner(g, p)
		for _, l := range g {
			_, acc := l.QueueLens()
			if l == o && acc == 0 {
				t.Fatalf("port %d: not in its listener's accept queue", p)
			}
		}
		c, err := o.AcceptTCP()
		if err != nil || c.RemoteAddrPort().Port() != p {
			t.Fatalf("port %d: accepted %v %v", p, c, err)
		}
		for _, l := range g {
			if _, acc := l.QueueLens(); acc != 0 {
				t.Fatalf("port %d: a child left in another listener's accept queue", p)
			}
		}
	}
}

// TestReusePortOverflowIsPerListener: one member's full accept queue
// overflows (ListenOverflows) while its sibling still takes connections.
func TestReusePortOverflowIsPerListener(t *testing.T) {
	h := newHarness(t, nil)
	small, _ := h.s.ListenOpts(reuseAddr, 0, ListenOptions{ReusePort: true})  // holds 1
	large, _ := h.s.ListenOpts(reuseAddr, 64, ListenOptions{ReusePort: true}) // holds 65
	g := []*Listener{small, large}
	var toSmall, toLarge int
	for p := uint16(7000); toSmall < 3 && p < 7200; p++ {
		h.inject(seg{src: p, dst: 80, seq: 1000, flags: fS, opts: &wire.TCPOptions{MSS: 1460, HasMSS: true, WScale: -1}})
		if h.owner(g, p) == small {
			toSmall++
		} else {
			toLarge++
		}
		if h.pending() == 0 {
			if h.owner(g, p) != small || toSmall < 2 {
				t.Fatalf("port %d: SYN dropped by a listener with room", p)
			}
			continue // tcp_conn_request: the small listener's accept queue is full
		}
		e := h.expect().SYNACK()
		h.inject(seg{src: p, dst: 80, seq: 1001, ack: e.seg.Seq() + 1, flags: fA})
	}
	h.drain()
	if toSmall < 3 {
		t.Fatal("the flow hash never picked the small listener")
	}
	_, accSmall := small.QueueLens()
	_, accLarge := large.QueueLens()
	if accSmall != 1 || accLarge != toLarge {
		t.Fatalf("accept queues: small %d (want 1, full), large %d (want all %d of its own)", accSmall, accLarge, toLarge)
	}
	// The SYNs after the first that picked the full listener overflowed.
	if got := h.s.Counter("TcpExtListenOverflows"); got != uint64(toSmall-1) {
		t.Fatalf("ListenOverflows %d, want %d (the small listener's beyond its one)", got, toSmall-1)
	}
}

// TestReusePortSyncookieAckReturns: with syncookies always on, no request
// is kept; the ACK carrying the cookie is brought back by the same flow
// hash to the listener that sent it.
func TestReusePortSyncookieAckReturns(t *testing.T) {
	h := newHarness(t, func(s *Sysctls) { s.Syncookies.Store(2) })
	g := h.reuseGroup(4, 64)
	for p := uint16(8000); p < 8012; p++ {
		h.handshake(p)
		o := h.owner(g, p)
		if syn, acc := o.QueueLens(); syn != 0 || acc != 1 {
			t.Fatalf("port %d: its listener holds SYN %d accept %d, want a cookie child only", p, syn, acc)
		}
		if c, err := o.AcceptTCP(); err != nil || c.RemoteAddrPort().Port() != p {
			t.Fatalf("port %d: %v %v", p, c, err)
		}
	}
	if h.s.Counter("TcpExtSyncookiesRecv") != 12 {
		t.Fatalf("SyncookiesRecv %d, want 12", h.s.Counter("TcpExtSyncookiesRecv"))
	}
}

// TestReusePortCloseMigrates: a member that closes resets its unaccepted
// children and forgets its requests; with tcp_migrate_req it hands both to
// the siblings, where the children are accepted and the handshakes end.
func TestReusePortCloseMigrates(t *testing.T) {
	for _, migrate := range []bool{false, true} {
		h := newHarness(t, func(s *Sysctls) {
			if migrate {
				s.MigrateReq.Store(1)
			}
		})
		g := h.reuseGroup(2, 64)
		victim, sibling := g[0], g[1]
		var children, pending []uint16
		for p := uint16(9000); len(children) < 3 || len(pending) < 3; p++ {
			if h.owner(g, p) != victim {
				continue
			}
			if len(children) < 3 {
				h.handshake(p)
				children = append(children, p)
			} else {
				h.inject(seg{src: p, dst: 80, seq: 1000, flags: fS, opts: &wire.TCPOptions{MSS: 1460, HasMSS: true, WScale: -1}})
				pending = append(pending, p)
			}
		}
		h.drain()
		victim.Close()
		if !migrate {
			rsts := 0
			for h.pending() > 0 {
				if h.expect().seg.Flags()&fR != 0 {
					rsts++
				}
			}
			if rsts != 3 {
				t.Fatalf("no migration: %d resets, want one per unaccepted child", rsts)
			}
			if syn, acc := sibling.QueueLens(); syn != 0 || acc != 0 {
				t.Fatalf("no migration: the sibling got SYN %d accept %d", syn, acc)
			}
			continue
		}
		h.expectNone()
		if syn, acc := sibling.QueueLens(); syn != 3 || acc != 3 {
			t.Fatalf("migration: sibling holds SYN %d accept %d, want 3 and 3", syn, acc)
		}
		for range children {
			if _, err := sibling.AcceptTCP(); err != nil {
				t.Fatal(err)
			}
		}
		// The migrated requests complete on the sibling: the ACK of the
		// SYN-ACK the victim sent finds them there.
		h.after(initRTO) // the sibling's timer resends the SYN-ACKs
		for range pending {
			e := h.expect().SYNACK()
			h.inject(seg{src: e.seg.DstPort(), dst: 80, seq: 1001, ack: e.seg.Seq() + 1, flags: fA})
		}
		if _, acc := sibling.QueueLens(); acc != 3 {
			t.Fatalf("the migrated handshakes: accept queue %d, want 3", acc)
		}
		if got := h.s.Counter("TcpExtTCPMigrateReqSuccess"); got != 6 {
			t.Fatalf("TCPMigrateReqSuccess %d, want 6", got)
		}
	}
}

// TestReusePortIncomingCPU: members that set SO_INCOMING_CPU take every
// connection their shard receives (reuseport_select_sock_by_hash), the
// handshake's ACK and a syncookie's ACK included; a shard no member names
// keeps the flow hash's choice; unsetting restores the hash.
func TestReusePortIncomingCPU(t *testing.T) {
	for _, cookies := range []int64{1, 2} {
		h := newHarness(t, func(s *Sysctls) { s.Syncookies.Store(cookies) })
		g := h.reuseGroup(3, 128)
		g[0].SetIncomingCPU(1)
		g[1].SetIncomingCPU(0)
		if g[0].IncomingCPU() != 1 || g[2].IncomingCPU() != -1 {
			t.Fatalf("IncomingCPU %d, %d; want 1 and -1 (unset)", g[0].IncomingCPU(), g[2].IncomingCPU())
		}
		want := map[int]*Listener{0: g[1], 1: g[0]}
		hashed := map[*Listener]bool{}
		for p := uint16(9000); p < 9048; p++ {
			shard := int(p % 3)
			o, ok := want[shard]
			if !ok {
				o = h.owner(g, p) // shard 2: nobody's, the hash decides
				hashed[o] = true
			}
			h.inject(seg{src: p, dst: 80, seq: 1000, flags: fS, shard: shard, opts: &wire.TCPOptions{MSS: 1460, HasMSS: true, WScale: -1}})
			e := h.expect().SYNACK().Ack(1001)
			h.inject(seg{src: p, dst: 80, seq: 1001, ack: e.seg.Seq() + 1, flags: fA, shard: shard})
			for _, l := range g {
				syn, acc := l.QueueLens()
				if l == o && acc != 1 || l != o && acc != 0 || syn != 0 {
					t.Fatalf("cookies=%d port %d shard %d: listener %p holds SYN %d accept %d; want the child on %p only",
						cookies, p, shard, l, syn, acc, o)
				}
			}
			c, err := o.AcceptTCP()
			if err != nil || c.RemoteAddrPort().Port() != p {
				t.Fatalf("port %d: accepted %v %v", p, c, err)
			}
			if c.IncomingCPU() != shard {
				t.Fatalf("port %d: the child's SO_INCOMING_CPU is %d, want its shard %d", p, c.IncomingCPU(), shard)
			}
		}
		if len(hashed) < 2 {
			t.Fatal("shard 2's flows all hashed to one member: the test shows nothing for them")
		}
		// Unset: shard 0's SYNs spread by hash again, each in its member's
		// SYN queue (with cookies always on, none is queued).
		g[1].SetIncomingCPU(-1)
		g[0].SetIncomingCPU(-1)
		per := map[*Listener]int{}
		for p := uint16(9100); p < 9130; p++ {
			h.inject(seg{src: p, dst: 80, seq: 1000, flags: fS, shard: 0, opts: &wire.TCPOptions{MSS: 1460, HasMSS: true, WScale: -1}})
			h.expect().SYNACK()
			per[h.owner(g, p)]++
		}
		if len(per) < 2 {
			t.Fatal("the hash put 30 flows on one member: the test shows nothing")
		}
		for i, l := range g {
			syn, _ := l.QueueLens()
			if cookies == 1 && syn != per[l] || cookies == 2 && syn != 0 {
				t.Fatalf("cookies=%d, unset: listener %d SYN queue %d, want %d", cookies, i, syn, per[l])
			}
		}
	}
}
