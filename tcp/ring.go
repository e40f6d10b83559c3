package tcp

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
	c := 1024
	for c < size {
		c <<= 1
	}
	nb := make([]byte, c)
	if keep > 0 {
		r.readAt(0, nb[:keep])
	}
	r.buf, r.head = nb, 0
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

// release frees the storage of an empty ring (idle connections keep none).
func (r *ring) release() {
	r.buf, r.head, r.n = nil, 0, 0
}
