package tcp

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/clock"
	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
	"github.com/tapstack/tapstack/wire"
)

// gateNet holds the first Output call until released, so a test can make
// a second goroutine build and send a segment meanwhile.
type gateNet struct {
	h       *harness
	first   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func newGateNet(h *harness) *gateNet {
	return &gateNet{h: h, entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gateNet) Route(dst netip.Addr) (netip.Addr, int, error) { return g.h.Route(dst) }

func (g *gateNet) Output(src, dst netip.Addr, proto uint8, b *pkt.Buffer) error {
	if g.first.CompareAndSwap(false, true) {
		close(g.entered)
		<-g.release
	}
	return g.h.Output(src, dst, proto, b)
}

// TestSegmentsLeaveInBuildOrder: while one goroutine is inside
// Network.Output with a segment of a connection, a segment another
// goroutine builds later must not overtake it (Linux sends under the
// socket lock). Before the transmit queue, the second segment left first:
// an ACK with an older TSval after a FIN with the same sequence number.
func TestSegmentsLeaveInBuildOrder(t *testing.T) {
	for _, tc := range []struct {
		name   string
		first  func(h *harness, c *Conn, irs uint32, tsv uint32) // blocks in Output
		second func(h *harness, c *Conn, irs uint32, tsv uint32) // builds later
	}{
		{
			name: "receive path first",
			first: func(h *harness, c *Conn, irs, tsv uint32) {
				// The peer's first data: quickack mode ACKs it at once.
				h.inject(seg{src: 5000, dst: 80, seq: irs + 1, ack: uint32(c.snd.iss) + 1, flags: fA | fP, data: []byte("y"),
					opts: &wire.TCPOptions{WScale: -1, HasTS: true, TSVal: tsv}})
			},
			second: func(h *harness, c *Conn, irs, tsv uint32) { c.Close() },
		},
		{
			name:  "application path first",
			first: func(h *harness, c *Conn, irs, tsv uint32) { c.Write([]byte("x")) },
			second: func(h *harness, c *Conn, irs, tsv uint32) {
				h.inject(seg{src: 5000, dst: 80, seq: irs + 1, ack: uint32(c.snd.iss) + 1, flags: fA | fP, data: []byte("y"),
					opts: &wire.TCPOptions{WScale: -1, HasTS: true, TSVal: tsv}})
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			l := h.listen(16)
			c, _, irs := h.estab(l, 5000, synOpts(100))
			h.drain()
			g := newGateNet(h)
			h.s.net = g
			done := make(chan struct{})
			go func() {
				tc.first(h, c, irs, 200)
				close(done)
			}()
			<-g.entered
			h.after(5 * time.Millisecond) // the second segment gets a newer TSval
			tc.second(h, c, irs, 201)
			close(g.release)
			<-done
			a, b := h.expect(), h.expect()
			if int32(b.seg.Seq()-a.seg.Seq()) < 0 || int32(b.opts.TSVal-a.opts.TSVal) <= 0 {
				t.Fatalf("segments left out of order: seq %d TSval %d, then seq %d TSval %d",
					a.seg.Seq(), a.opts.TSVal, b.seg.Seq(), b.opts.TSVal)
			}
		})
	}
}

// orderLink connects two stacks on the real clock through one delivery
// goroutine per stack (like a device shard), and checks that every
// connection's segments leave in the order they were built: TSval and the
// ACK field never go backwards on the wire.
type orderLink struct {
	mu      sync.Mutex
	to      map[netip.Addr]chan []byte
	stacks  map[netip.Addr]*Stack
	last    map[[2]uint16][2]uint32 // per (src, dst) port: last TSval, ACK
	bad     []string
	dropped int
	closed  bool
	wg      sync.WaitGroup
}

type orderEnd struct {
	l    *orderLink
	addr netip.Addr
}

func (e *orderEnd) Route(netip.Addr) (netip.Addr, int, error) { return e.addr, 1500, nil }

func (e *orderEnd) Output(src, dst netip.Addr, _ uint8, b *pkt.Buffer) error {
	data := bytes.Clone(b.Bytes())
	b.Release()
	l := e.l
	t := wire.TCP(data)
	var o wire.TCPOptions
	wire.ParseTCPOptions(t.Options(), &o)
	l.mu.Lock()
	key := [2]uint16{t.SrcPort(), t.DstPort()}
	ackd := t.Flags()&wire.TCPFlagACK != 0 && t.Flags()&wire.TCPFlagRST == 0 && o.HasTS
	if prev, ok := l.last[key]; ok && ackd {
		if int32(o.TSVal-prev[0]) < 0 || int32(t.Ack()-prev[1]) < 0 {
			l.bad = append(l.bad, fmt.Sprintf("%v: TSval %d ack %d after TSval %d ack %d",
				key, o.TSVal, t.Ack(), prev[0], prev[1]))
		}
	}
	if ackd {
		l.last[key] = [2]uint32{o.TSVal, t.Ack()}
	}
	if !l.closed {
		select {
		case l.to[dst] <- data:
		default:
			l.dropped++ // a full queue is a loss, like a device backlog
		}
	}
	l.mu.Unlock()
	return nil
}

func (l *orderLink) start(a netip.Addr, s *Stack) {
	ch := make(chan []byte, 512)
	l.to[a] = ch
	l.stacks[a] = s
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for p := range ch {
			s.Deliver(l.other(a), a, p, 0, false)
		}
	}()
}

func (l *orderLink) other(a netip.Addr) netip.Addr {
	if a == addrA {
		return addrB
	}
	return addrA
}

// TestConcurrentWriteReadCloseOrder runs writers, readers and closers of
// several connections concurrently on both stacks (run it with -race): the
// data arrives intact and no connection's segments leave out of order.
func TestConcurrentWriteReadCloseOrder(t *testing.T) {
	l := &orderLink{to: map[netip.Addr]chan []byte{}, stacks: map[netip.Addr]*Stack{}, last: map[[2]uint16][2]uint32{}}
	mk := func(a netip.Addr) *Stack {
		sys := NewSysctls()
		sys.MinRTOMs.Store(20)
		return New(Config{Network: &orderEnd{l, a}, Clock: clock.Real(), Sysctls: sys,
			Rand: rand.New(rand.NewSource(int64(a.As4()[3])))})
	}
	a, b := mk(addrA), mk(addrB)
	l.start(addrA, a)
	l.start(addrB, b)
	ln, err := b.Listen(netip.AddrPortFrom(addrB, 80), 64)
	if err != nil {
		t.Fatal(err)
	}
	const conns, size = 4, 256 << 10
	var wg sync.WaitGroup
	errs := make(chan error, 4*conns)
	payload := make([]byte, size)
	rand.New(rand.NewSource(3)).Read(payload)
	want := sha256.Sum256(payload)
	// Each side writes size bytes and reads the other's, then closes while
	// its peer may still be sending ACKs or its own FIN.
	run := func(c *Conn) {
		defer wg.Done()
		var inner sync.WaitGroup
		inner.Add(1)
		go func() {
			defer inner.Done()
			for off := 0; off < size; {
				n := min(1+rand.Intn(9000), size-off)
				if _, err := c.Write(payload[off : off+n]); err != nil {
					errs <- err
					return
				}
				off += n
			}
			c.CloseWrite()
		}()
		h := sha256.New()
		n, err := io.Copy(h, c)
		if err != nil || n != size || [32]byte(h.Sum(nil)) != want {
			errs <- fmt.Errorf("read %d bytes, err %v, hash ok %v", n, err, [32]byte(h.Sum(nil)) == want)
		}
		inner.Wait()
		c.Close()
	}
	wg.Add(2 * conns)
	for i := 0; i < conns; i++ {
		go func() {
			c, err := a.Dial(t.Context(), netip.AddrPort{}, netip.AddrPortFrom(addrB, 80))
			if err != nil {
				errs <- err
				wg.Done()
				return
			}
			run(c)
		}()
		go func() {
			c, err := ln.AcceptTCP()
			if err != nil {
				errs <- err
				wg.Done()
				return
			}
			run(c)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	testwait.Until(t, "the last ACKs to be delivered", func() bool { // checked for order on the way
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.to[addrA]) == 0 && len(l.to[addrB]) == 0
	})
	a.Close()
	b.Close()
	ln.Close()
	l.mu.Lock()
	l.closed = true
	for _, ch := range l.to {
		close(ch)
	}
	bad := l.bad
	l.mu.Unlock()
	l.wg.Wait()
	for _, s := range bad {
		t.Error("out of order:", s)
	}
}
