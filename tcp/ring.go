package tcp

import (
	"sync"
	"unsafe"
)

// ring is a byte ring buffer that grows on demand (capacity a power of two)
// up to a limit the caller enforces. Send buffers hold [snd_una, end of
// written data); receive buffers hold unread in-order data at [0, n) and
// out-of-order data written at offsets beyond n.
type ring struct {
	buf  []byte
	head int // index of logical offset 0
	n    int // committed length
}

func (r *ring) cap() int { return len(r.buf) }

// reserve makes room for logical offsets [0, size), preserving the first
// keep bytes (which may include out-of-order data beyond n).
func (r *ring) reserve(size, keep int) {
	if size <= len(r.buf) {
		return
	}
	c := minRing
	for c < size {
		c <<= 1
	}
	nb := getRingBuf(c)
	if keep > 0 {
		r.readAt(0, nb[:keep])
	}
	putRingBuf(r.buf)
	r.buf, r.head = nb, 0
}

// Ring storage is pooled by size class (minRing << i): a connection gives
// its small rings back when they empty — the send ring once everything is
// acknowledged, the receive ring once everything is read — as Linux frees
// an skb once it is acknowledged or read (sk_mem_reclaim), so an idle
// connection, a proxy's many above all, holds no buffer (see idleRing). A pooled buffer
// travels as an unsafe.Pointer to its first byte, which boxes into the
// pool's interface without an allocation.
const (
	minRing     = 1024
	ringClasses = 7 // pooled up to 64 KB; larger rings are made and dropped
)

var ringPools [ringClasses]sync.Pool

func ringClass(c int) int {
	i := 0
	for minRing<<i < c {
		i++
	}
	if minRing<<i != c {
		return -1
	}
	return i
}

func getRingBuf(c int) []byte {
	if i := ringClass(c); i >= 0 && i < ringClasses {
		if p, ok := ringPools[i].Get().(unsafe.Pointer); ok {
			b := unsafe.Slice((*byte)(p), c)
			clear(b) // no byte of another connection's stream may show
			return b
		}
	}
	return make([]byte, c)
}

func putRingBuf(b []byte) {
	if len(b) == 0 {
		return
	}
	if i := ringClass(len(b)); i >= 0 && i < ringClasses {
		ringPools[i].Put(unsafe.Pointer(unsafe.SliceData(b)))
	}
}

// writeAt copies p to logical offset off (off+len(p) ≤ cap).
func (r *ring) writeAt(off int, p []byte) {
	c := len(r.buf)
	i := (r.head + off) & (c - 1)
	k := copy(r.buf[i:], p)
	if k < len(p) {
		copy(r.buf, p[k:])
	}
}

// readAt copies len(p) bytes from logical offset off into p.
func (r *ring) readAt(off int, p []byte) {
	c := len(r.buf)
	if c == 0 {
		return
	}
	i := (r.head + off) & (c - 1)
	k := copy(p, r.buf[i:])
	if k < len(p) {
		copy(p[k:], r.buf)
	}
}

// consume drops k committed bytes from the front.
func (r *ring) consume(k int) {
	r.n -= k
	if len(r.buf) > 0 {
		r.head = (r.head + k) & (len(r.buf) - 1)
	}
}

// idleRing is the largest ring given back whenever it empties: a
// request-and-reply connection's. A ring that grew past it belongs to a
// bulk flow, which would only take it again at once (a megabyte's worth of
// allocation and clearing each time the reader catches up); it is kept
// until the connection closes.
const idleRing = 4 * minRing

// releaseSmall is release for a ring no larger than idleRing.
func (r *ring) releaseSmall() {
	if len(r.buf) <= idleRing {
		r.release()
	}
}

// release gives the storage of an empty ring back to the pool (idle
// connections keep none).
func (r *ring) release() {
	putRingBuf(r.buf)
	r.buf, r.head, r.n = nil, 0, 0
}
