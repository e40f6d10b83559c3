package tcp

import (
	"testing"
	"time"

	"github.com/tapstack/tapstack/wire"
)

// TestRcvBufGrowsWithOutOfOrder: an out-of-order arrival grows the receive
// buffer to twice the space plus the span of the out-of-order data
// (tcp_rcvbuf_grow from tcp_data_queue_ofo), so that a sender recovering
// a hole is not held back by the window; the next ACK offers it. A buffer
// locked with SO_RCVBUF does not grow.
func TestRcvBufGrowsWithOutOfOrder(t *testing.T) {
	ws := &wire.TCPOptions{MSS: 1460, HasMSS: true, WScale: 7, SACKPermitted: true}
	p := newRcvPeerWith(t, ws, func(s *Sysctls) { s.RmemDefault.Store(16384) })
	p.c.rtt.srtt = 0
	p.send(0, 1000)
	p.h.drain()
	space := p.c.rcv.space.space
	p.send(14000, 1000)
	if want := 2*space + 14000; p.c.rcv.bufMax < want {
		t.Fatalf("rcvbuf %d, want at least %d", p.c.rcv.bufMax, want)
	}
	e := p.h.expect().ACK().Ack(p.seq(1000))
	if w := int(e.seg.Window()) << 7; w < 2*space+14000-1000-128 {
		t.Fatalf("window %d after the buffer grew to %d", w, p.c.rcv.bufMax)
	}

	locked := newRcvPeerWith(t, ws, func(s *Sysctls) { s.RmemDefault.Store(16384) })
	locked.c.SetReadBuffer(8192)
	locked.send(0, 1000)
	locked.send(10000, 1000)
	if locked.c.rcv.bufMax != 16384 {
		t.Fatalf("locked rcvbuf became %d", locked.c.rcv.bufMax)
	}
}

// TestRcvRTTFromTimestamps: the receiver's RTT comes from the TSecr of
// full-sized data segments (tcp_rcv_rtt_measure_ts): once per distinct
// TSecr; a lower sample is taken at once, a higher one moves the estimate
// by an eighth.
func TestRcvRTTFromTimestamps(t *testing.T) {
	p := newRcvPeer(t, true, nil)
	echo := func(d time.Duration, off int) {
		p.send(off, 1000)
		e := p.h.expect()
		p.h.after(d)
		p.tsecr = e.opts.TSVal
		p.c.rcv.quickAcks = 16
	}
	p.c.rcv.quickAcks = 16
	echo(7*time.Millisecond, 0)
	p.send(1000, 1000) // echoes the ACK sent 7 ms ago
	p.h.drain()
	if got := p.c.rcvRTT(); got != 7*time.Millisecond {
		t.Fatalf("rcv RTT %v, want 7ms", got)
	}
	p.h.after(20 * time.Millisecond)
	p.send(2000, 1000) // the same TSecr again: no sample
	if got := p.c.rcvRTT(); got != 7*time.Millisecond {
		t.Fatalf("rcv RTT %v after a repeated TSecr", got)
	}
	echo(15*time.Millisecond, 3000)
	p.send(4000, 1000)
	if got := p.c.rcvRTT(); got != 8*time.Millisecond { // 7 + (15-7)/8
		t.Fatalf("rcv RTT %v, want 8ms", got)
	}
	p.h.drain()
	echo(3*time.Millisecond, 5000)
	p.send(6000, 1000)
	if got := p.c.rcvRTT(); got != 3*time.Millisecond {
		t.Fatalf("rcv RTT %v, want 3ms", got)
	}
}

// TestRcvRTTPerWindow: without timestamps the RTT is how long one window
// of data takes to arrive (tcp_rcv_rtt_measure); only a smaller such
// sample replaces the estimate (the sender may not fill the window).
func TestRcvRTTPerWindow(t *testing.T) {
	p := newRcvPeer(t, false, nil)
	p.send(0, 1000) // starts timing: done when rcv_nxt passes 1000+65535
	window := 0xffff
	p.h.after(5 * time.Millisecond)
	off := 1000
	for ; off < 2000+window; off += 1000 {
		p.send(off, 1000)
	}
	if got := p.c.rcvRTT(); got != 5*time.Millisecond {
		t.Fatalf("rcv RTT %v, want 5ms", got)
	}
	p.h.after(9 * time.Millisecond)
	for end := off + window + 2000; off < end; off += 1000 {
		p.send(off, 1000)
		p.c.Read(make([]byte, 4000))
	}
	if got := p.c.rcvRTT(); got != 5*time.Millisecond {
		t.Fatalf("rcv RTT %v after a slower window, want 5ms kept", got)
	}
}

// TestRcvSpaceAdjust: once per receiver RTT, reading more than the space
// grows rcvbuf to at least twice what was read in that RTT
// (tcp_rcv_space_adjust); without an RTT estimate nothing is tuned.
func TestRcvSpaceAdjust(t *testing.T) {
	p := newRcvPeerWith(t, &wire.TCPOptions{MSS: 1460, HasMSS: true, WScale: 7, SACKPermitted: true},
		func(s *Sysctls) { s.RmemDefault.Store(65536) })
	p.c.rcv.ofo.rtt.rtt8 = 10000 << 3 // 10 ms
	buf := make([]byte, 1<<16)
	off := 0
	for i := 0; i < 40; i++ { // 58 KB read within one RTT
		p.send(off, 1460)
		off += 1460
		p.c.Read(buf)
	}
	p.h.drain()
	p.h.after(10 * time.Millisecond)
	p.send(off, 1460)
	p.c.Read(buf)
	if copied := 41 * 1460; p.c.rcv.bufMax < 2*copied {
		t.Fatalf("rcvbuf %d after reading %d in an RTT", p.c.rcv.bufMax, copied)
	}
	if p.c.rcv.space.space != 41*1460 {
		t.Fatalf("space %d", p.c.rcv.space.space)
	}
}
