// Package pkt holds the pooled packet buffers that travel through the stack.
// A Buffer keeps headroom in front of its data so that each layer on the
// transmit path prepends its header in place (TCP → IPv4 → Ethernet →
// virtio-net header) without copying, and a receive buffer is returned to
// its pool once the frame has been processed: no allocation per packet.
package pkt

import "sync"

// Headroom is the space reserved in front of the data of a transmit buffer:
// enough for a virtio-net header (12), Ethernet (14), IPv4 with options (60)
// and a TCP header with options (60).
const Headroom = 160

// Size classes. Small holds any frame of a 1500-byte MTU link with headroom;
// Large holds a 64 KB GSO/TSO super-frame.
const (
	SmallSize = 2048
	LargeSize = 65536 + Headroom + 256
)

var (
	smallPool = sync.Pool{New: func() any { return &Buffer{store: make([]byte, SmallSize)} }}
	largePool = sync.Pool{New: func() any { return &Buffer{store: make([]byte, LargeSize)} }}
)

// Buffer is a pooled byte buffer with a movable window [start, end).
type Buffer struct {
	store      []byte
	start, end int
	// Shard is the netdev shard (per-CPU backlog) the buffer was received on;
	// transmit paths leave it 0.
	Shard int
	// Loopback marks a packet the stack sent to one of its own addresses
	// (Linux's lo): it may carry a local source address, which on a frame
	// from the wire is a martian.
	Loopback bool
	// ChecksumValid marks a received frame whose transport checksum the
	// link vouches for (Linux CHECKSUM_UNNECESSARY): TCP skips verifying it.
	ChecksumValid bool

	owner  Owner // charged for the buffer until it is released (skb->sk with sock_wfree)
	charge int
}

// Owner is a socket charged for the buffers it sent until each is released
// (written to the link or dropped): Linux's skb_set_owner_w and the
// sock_wfree destructor, which is what bounds SO_SNDBUF.
type Owner interface {
	Uncharge(n int)
}

// SetOwner charges n bytes of o's send buffer to b until b is released.
// The caller has already added n to what o holds.
func (b *Buffer) SetOwner(o Owner, n int) { b.owner, b.charge = o, n }

// Orphan uncharges b's owner now (skb_orphan): for a buffer that stays in
// the stack, as a looped-back packet does, rather than leaving it.
func (b *Buffer) Orphan() {
	if b.owner != nil {
		b.owner.Uncharge(b.charge)
		b.owner, b.charge = nil, 0
	}
}

// MoveOwner hands b's charge to to (which must have none): the fragments
// of a datagram leave in order, so the last one carries the charge.
func (b *Buffer) MoveOwner(to *Buffer) {
	to.owner, to.charge = b.owner, b.charge
	b.owner, b.charge = nil, 0
}

// Get returns an empty buffer able to hold Headroom+n bytes, with its window
// placed after the headroom, ready for Append and Prepend.
func Get(n int) *Buffer {
	var b *Buffer
	if n+Headroom <= SmallSize {
		b = smallPool.Get().(*Buffer)
	} else if n+Headroom <= LargeSize {
		b = largePool.Get().(*Buffer)
	} else {
		b = &Buffer{store: make([]byte, n+Headroom)}
	}
	b.start, b.end, b.Shard, b.Loopback, b.ChecksumValid = Headroom, Headroom, 0, false, false
	return b
}

// GetRx returns a buffer whose whole store is the window, for a driver to
// read a frame of at most n bytes into; call SetLen with the length read.
func GetRx(n int) *Buffer {
	b := Get(n)
	b.start, b.end = 0, len(b.store)
	return b
}

// Release returns the buffer to its pool. The buffer must not be used after.
func (b *Buffer) Release() {
	if b.owner != nil {
		b.Orphan()
	}
	switch len(b.store) {
	case SmallSize:
		smallPool.Put(b)
	case LargeSize:
		largePool.Put(b)
	}
}

// Bytes is the current window.
func (b *Buffer) Bytes() []byte { return b.store[b.start:b.end] }

// Len is the length of the window.
func (b *Buffer) Len() int { return b.end - b.start }

// Headroom is the free space in front of the window.
func (b *Buffer) Headroom() int { return b.start }

// Tailroom is the free space after the window.
func (b *Buffer) Tailroom() int { return len(b.store) - b.end }

// Prepend grows the window by n bytes at the front and returns them. It
// panics if the headroom is short: that is a programming error, not input.
func (b *Buffer) Prepend(n int) []byte {
	if n > b.start {
		panic("pkt: Prepend beyond headroom")
	}
	b.start -= n
	return b.store[b.start : b.start+n]
}

// Append grows the window by n bytes at the back and returns them.
func (b *Buffer) Append(n int) []byte {
	if n > len(b.store)-b.end {
		panic("pkt: Append beyond tailroom")
	}
	b.end += n
	return b.store[b.end-n : b.end]
}

// TrimFront drops n bytes from the front of the window (n ≤ Len()).
func (b *Buffer) TrimFront(n int) { b.start += n }

// SetLen sets the window length to n, keeping its start.
func (b *Buffer) SetLen(n int) { b.end = b.start + n }

// Store exposes the window's whole backing array from the window start, for
// a driver reading into it: b.SetLen(read(b.Store())).
func (b *Buffer) Store() []byte { return b.store[b.start:] }
