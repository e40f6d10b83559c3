package tcp

import (
	"bytes"
	"fmt"
	"math/rand"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/clock"
	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/wire"
)

var (
	addrA = netip.MustParseAddr("10.0.0.1")
	addrB = netip.MustParseAddr("10.0.0.2")
	t0    = time.Unix(1_700_000_000, 0)
)

// testLink is an in-memory IPv4 "wire" between stacks on a virtual clock:
// every packet is copied and delivered after delay (+jitter) through a
// clock timer, so nothing recurses and runs are replayable from the seed.
type testLink struct {
	clk    *clock.Virtual
	mu     sync.Mutex
	stacks map[netip.Addr]*Stack
	rng    *rand.Rand
	delay  time.Duration
	jitter time.Duration
	loss   float64 // fraction
	dup    float64
	mtu    int
	// drop, when set, decides per packet (after random loss).
	drop func(src netip.Addr, seg wire.TCP) bool
	sent int
	log  []string
}

type linkEnd struct {
	l    *testLink
	addr netip.Addr
}

func newTestLink(seed int64) *testLink {
	return &testLink{clk: clock.NewVirtual(t0), stacks: map[netip.Addr]*Stack{}, rng: rand.New(rand.NewSource(seed)),
		delay: time.Millisecond, mtu: 1500}
}

func (l *testLink) newStack(a netip.Addr, mod func(*Sysctls)) *Stack {
	sys := NewSysctls()
	if mod != nil {
		mod(sys)
	}
	s := New(Config{Network: &linkEnd{l, a}, Clock: l.clk, Sysctls: sys,
		Rand: rand.New(rand.NewSource(int64(a.As4()[3])))})
	l.stacks[a] = s
	return s
}

func (e *linkEnd) Route(dst netip.Addr) (netip.Addr, int, error) { return e.addr, e.l.mtu, nil }

func (e *linkEnd) Output(src, dst netip.Addr, proto uint8, b *pkt.Buffer) error {
	data := bytes.Clone(b.Bytes())
	b.Release()
	l := e.l
	if len(data)+20 > l.mtu {
		panic(fmt.Sprintf("segment of %d bytes exceeds the %d MTU", len(data), l.mtu))
	}
	l.mu.Lock()
	l.sent++
	lost := l.loss > 0 && l.rng.Float64() < l.loss
	if !lost && l.drop != nil && l.drop(src, wire.TCP(data)) {
		lost = true
	}
	d := l.delay
	if l.jitter > 0 {
		d += time.Duration(l.rng.Int63n(int64(l.jitter)))
	}
	copies := 1
	if l.dup > 0 && l.rng.Float64() < l.dup {
		copies = 2
	}
	to := l.stacks[dst]
	l.mu.Unlock()
	if lost || to == nil {
		return nil
	}
	for i := 0; i < copies; i++ {
		l.clk.AfterFunc(d, func() { to.Deliver(src, dst, data, 0, false) })
	}
	return nil
}

// run advances virtual time in small steps until cond holds or limit passes.
func (l *testLink) run(t testing.TB, limit time.Duration, cond func() bool) {
	t.Helper()
	end := l.clk.Now().Add(limit)
	for !cond() {
		if !l.clk.Now().Before(end) {
			t.Fatalf("condition not met within %v", limit)
		}
		l.clk.Advance(100 * time.Microsecond)
	}
}

// pair dials B from A over the link and returns both ends.
func (l *testLink) pair(t testing.TB, a, b *Stack) (client, server *Conn) {
	t.Helper()
	ln, err := b.Listen(netip.AddrPortFrom(addrB, 80), 128)
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.connect(netip.AddrPort{}, netip.AddrPortFrom(addrB, 80))
	if err != nil {
		t.Fatal(err)
	}
	l.run(t, 5*time.Second, func() bool { _, q := ln.QueueLens(); return q > 0 && c.State() == StateEstablished })
	srv, err := ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	return c, srv
}

// tryWrite and tryRead are the non-blocking halves of Write and Read that
// deterministic tests drive between clock steps.
func (c *Conn) tryWrite(p []byte) int {
	var out outBatch
	c.mu.Lock()
	n := 0
	if c.canSendData() && !c.wrShutdown {
		n = min(c.snd.bufMax-c.snd.buf.n, len(p))
		if n > 0 {
			c.snd.buf.reserve(c.snd.buf.n+n, c.snd.buf.n)
			c.snd.buf.writeAt(c.snd.buf.n, p[:n])
			c.snd.buf.n += n
			c.xmit(&out)
			c.armTimer()
		}
	}
	c.unlockSend(&out)
	return n
}

func (c *Conn) tryRead(p []byte) int {
	var out outBatch
	c.mu.Lock()
	n := c.read(p, &out)
	c.armTimer()
	c.unlockSend(&out)
	return n
}

func ctr(s *Stack, name string) uint64 { return s.Counter(name) }
