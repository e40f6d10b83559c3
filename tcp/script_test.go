package tcp

import (
	"bytes"
	"math/rand"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/clock"
	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/wire"
)

// harness is a packet-script test: the test plays the peer, injecting
// segments built with seg{} and checking what the stack sends with
// sentences like h.expect().SYNACK().Ack(isn+1).
type harness struct {
	t    *testing.T
	clk  *clock.Virtual
	s    *Stack
	mu   sync.Mutex
	out  [][]byte
	src  []netip.Addr // each emitted segment's source address
	peer netip.Addr
}

var (
	hLocal = netip.MustParseAddr("192.0.2.1")
	hPeer  = netip.MustParseAddr("192.0.2.2")
)

func newHarness(t *testing.T, mod func(*Sysctls)) *harness {
	h := &harness{t: t, clk: clock.NewVirtual(t0), peer: hPeer}
	sys := NewSysctls()
	if mod != nil {
		mod(sys)
	}
	h.s = New(Config{Network: h, Clock: h.clk, Sysctls: sys, Rand: rand.New(rand.NewSource(1))})
	return h
}

func (h *harness) Route(dst netip.Addr) (netip.Addr, int, error) { return hLocal, 1500, nil }

func (h *harness) Output(src, dst netip.Addr, proto uint8, b *pkt.Buffer) error {
	data := bytes.Clone(b.Bytes())
	b.Release()
	if len(data)+20 > 1500 {
		h.t.Errorf("segment of %d bytes exceeds the MTU", len(data))
	}
	if !wire.TCP(data).VerifyChecksum(src, dst) {
		h.t.Errorf("stack sent a segment with a bad checksum")
	}
	h.mu.Lock()
	h.out = append(h.out, data)
	h.src = append(h.src, src)
	h.mu.Unlock()
	return nil
}

// seg describes a segment the peer sends.
type seg struct {
	src, dst uint16 // peer port, our port
	seq, ack uint32
	flags    uint8
	wnd      uint16 // 0 means 65535 unless zwnd
	zwnd     bool   // advertise a zero window
	opts     *wire.TCPOptions
	data     []byte
	shard    int        // the device shard that delivers it
	to       netip.Addr // destination address; zero: hLocal
}

const (
	fS = wire.TCPFlagSYN
	fA = wire.TCPFlagACK
	fF = wire.TCPFlagFIN
	fR = wire.TCPFlagRST
	fP = wire.TCPFlagPSH
)

func (h *harness) inject(sg seg) {
	h.injectFrom(h.peer, sg)
}

func (h *harness) injectFrom(src netip.Addr, sg seg) {
	ol := 0
	if sg.opts != nil {
		ol = wire.TCPOptionsLen(sg.opts)
	}
	hl := 20 + ol
	b := make([]byte, hl+len(sg.data))
	f := wire.TCPFields{SrcPort: sg.src, DstPort: sg.dst, Seq: sg.seq, Ack: sg.ack, Flags: sg.flags, Window: sg.wnd}
	if f.Window == 0 && sg.flags&fR == 0 && !sg.zwnd {
		f.Window = 65535
	}
	f.Encode(b[:hl])
	if sg.opts != nil {
		wire.EncodeTCPOptions(b[20:hl], sg.opts)
	}
	copy(b[hl:], sg.data)
	dst := hLocal
	if sg.to.IsValid() {
		dst = sg.to
	}
	wire.TCP(b).SetChecksum(wire.TCPChecksum(src, dst, b))
	h.s.Deliver(src, dst, b, sg.shard, false)
}

// synOpts are the options of a Linux SYN.
func synOpts(tsval uint32) *wire.TCPOptions {
	return &wire.TCPOptions{MSS: 1460, HasMSS: true, WScale: 7, SACKPermitted: true, HasTS: true, TSVal: tsval}
}

func noOpts() *wire.TCPOptions { return &wire.TCPOptions{WScale: -1} }

// expectation is one emitted segment under test.
type expectation struct {
	h    *harness
	seg  wire.TCP
	opts wire.TCPOptions
	src  netip.Addr
}

// From checks the segment's source address.
func (e *expectation) From(a netip.Addr) *expectation {
	e.h.t.Helper()
	if e.src != a {
		e.fail("from %v, want %v", e.src, a)
	}
	return e
}

// pending returns how many segments wait to be checked.
func (h *harness) pending() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.out)
}

func (h *harness) expect() *expectation {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.out) == 0 {
		h.t.Fatalf("expected a segment, none sent")
	}
	s := wire.TCP(h.out[0])
	e := &expectation{h: h, seg: s, src: h.src[0]}
	h.out, h.src = h.out[1:], h.src[1:]
	if err := wire.ParseTCPOptions(s.Options(), &e.opts); err != nil {
		h.t.Fatalf("stack sent bad options: %v", err)
	}
	return e
}

func (h *harness) expectNone() {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.out) != 0 {
		s := wire.TCP(h.out[0])
		h.t.Fatalf("expected no segment, got flags %#x seq %d ack %d len %d", s.Flags(), s.Seq(), s.Ack(), len(s.Payload()))
	}
}

func (h *harness) drain() { h.mu.Lock(); h.out, h.src = nil, nil; h.mu.Unlock() }

func (e *expectation) fail(format string, args ...any) {
	e.h.t.Helper()
	e.h.t.Fatalf("segment flags %#x seq %d ack %d win %d len %d: "+format,
		append([]any{e.seg.Flags(), e.seg.Seq(), e.seg.Ack(), e.seg.Window(), len(e.seg.Payload())}, args...)...)
}

func (e *expectation) Flags(f uint8) *expectation {
	e.h.t.Helper()
	if e.seg.Flags()&^fP != f&^fP {
		e.fail("want flags %#x", f)
	}
	return e
}

func (e *expectation) SYN() *expectation    { e.h.t.Helper(); return e.Flags(fS) }
func (e *expectation) SYNACK() *expectation { e.h.t.Helper(); return e.Flags(fS | fA) }
func (e *expectation) ACK() *expectation    { e.h.t.Helper(); return e.Flags(fA) }
func (e *expectation) RST() *expectation {
	e.h.t.Helper()
	if e.seg.Flags()&fR == 0 {
		e.fail("want RST")
	}
	return e
}

func (e *expectation) Seq(s uint32) *expectation {
	e.h.t.Helper()
	if e.seg.Seq() != s {
		e.fail("want seq %d", s)
	}
	return e
}

func (e *expectation) Ack(a uint32) *expectation {
	e.h.t.Helper()
	if e.seg.Ack() != a {
		e.fail("want ack %d", a)
	}
	return e
}

func (e *expectation) Window(w uint16) *expectation {
	e.h.t.Helper()
	if e.seg.Window() != w {
		e.fail("want window %d", w)
	}
	return e
}

func (e *expectation) Len(n int) *expectation {
	e.h.t.Helper()
	if len(e.seg.Payload()) != n {
		e.fail("want payload length %d", n)
	}
	return e
}

func (e *expectation) Payload(p string) *expectation {
	e.h.t.Helper()
	if string(e.seg.Payload()) != p {
		e.fail("want payload %q, got %q", p, e.seg.Payload())
	}
	return e
}

func (e *expectation) MSS(m uint16) *expectation {
	e.h.t.Helper()
	if !e.opts.HasMSS || e.opts.MSS != m {
		e.fail("want MSS %d, options %+v", m, e.opts)
	}
	return e
}

func (e *expectation) WScale(ws int8) *expectation {
	e.h.t.Helper()
	if e.opts.WScale != ws {
		e.fail("want wscale %d, options %+v", ws, e.opts)
	}
	return e
}

func (e *expectation) SACKOK(on bool) *expectation {
	e.h.t.Helper()
	if e.opts.SACKPermitted != on {
		e.fail("want SACK-permitted %v", on)
	}
	return e
}

func (e *expectation) TSEcr(v uint32) *expectation {
	e.h.t.Helper()
	if !e.opts.HasTS || e.opts.TSEcr != v {
		e.fail("want TSecr %d, options %+v", v, e.opts)
	}
	return e
}

func (e *expectation) NoTS() *expectation {
	e.h.t.Helper()
	if e.opts.HasTS {
		e.fail("want no timestamps")
	}
	return e
}

func (e *expectation) SACK(blocks ...wire.SACKBlock) *expectation {
	e.h.t.Helper()
	if e.opts.NumSACK != len(blocks) {
		e.fail("want %d SACK blocks, got %+v", len(blocks), e.opts.SACK[:e.opts.NumSACK])
	}
	for i, b := range blocks {
		if e.opts.SACK[i] != b {
			e.fail("SACK block %d = %+v, want %+v", i, e.opts.SACK[i], b)
		}
	}
	return e
}

// after advances the clock by d.
func (h *harness) after(d time.Duration) { h.clk.Advance(d) }

// estab drives a passive open on port 80 from peer port p with plain
// options (no timestamps, SACK or wscale unless opts given) and returns
// the accepted connection and the ISNs.
func (h *harness) estab(l *Listener, p uint16, opts *wire.TCPOptions) (c *Conn, iss, irs uint32) {
	h.t.Helper()
	irs = 1000
	if opts == nil {
		opts = &wire.TCPOptions{MSS: 1460, HasMSS: true, WScale: -1}
	}
	h.inject(seg{src: p, dst: 80, seq: irs, flags: fS, opts: opts})
	e := h.expect().SYNACK().Ack(irs + 1)
	iss = e.seg.Seq()
	var o *wire.TCPOptions
	if opts.HasTS {
		o = &wire.TCPOptions{WScale: -1, HasTS: true, TSVal: opts.TSVal + 1, TSEcr: e.opts.TSVal}
	}
	h.inject(seg{src: p, dst: 80, seq: irs + 1, ack: iss + 1, flags: fA, opts: o})
	c, err := l.AcceptTCP()
	if err != nil {
		h.t.Fatal(err)
	}
	return c, iss, irs
}
