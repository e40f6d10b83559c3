package ipv4

import (
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/tapstack/tapstack/internal/clock"
	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/wire"
)

// fragKey identifies a datagram being reassembled (struct frag_v4_compare_key).
type fragKey struct {
	src, dst netip.Addr
	id       uint16
	proto    uint8
}

// fragment is one received fragment: buf holds its IPv4 header and the
// payload bytes [off, end) of the datagram.
type fragment struct {
	off, end int
	hl       int
	buf      *pkt.Buffer
}

func (f *fragment) data() []byte { return f.buf.Bytes()[f.hl:] }

type fragQueue struct {
	key             fragKey
	frags           []fragment // sorted by off, non-overlapping
	length          int        // datagram payload length: final once lastIn
	meat            int        // payload bytes received
	firstIn, lastIn bool
	df              bool
	mem             int
	timer           clock.Timer
	dead            bool
}

// fragQueueOverhead is charged per queue on top of the fragment buffers,
// as Linux charges sizeof(struct ipq).
const fragQueueOverhead = 256

type reassembler struct {
	l      *Layer
	mu     sync.Mutex
	m      map[fragKey]*fragQueue
	mem    int // bytes charged: fragment buffers' truesize + queue overhead
	closed bool
}

func (r *reassembler) init(l *Layer) {
	r.l = l
	r.m = make(map[fragKey]*fragQueue)
}

func truesize(b *pkt.Buffer) int { return b.Headroom() + b.Len() + b.Tailroom() }

// defrag is ip_defrag: it queues fragment h and returns the whole datagram
// in a new buffer once complete, else nil. h is a validated, trimmed view.
func (r *reassembler) defrag(h wire.IPv4, shard int) *pkt.Buffer {
	l := r.l
	l.ctr.inc(cReasmReqds)
	key := fragKey{src: h.Src(), dst: h.Dst(), id: h.ID(), proto: h.Protocol()}
	r.mu.Lock()
	// inet_frag_find: above ipfrag_high_thresh no fragment is accepted until
	// queues complete or expire.
	if r.closed || int64(r.mem) > l.sys.IpfragHighThresh.Load() {
		closed := r.closed
		r.mu.Unlock()
		l.ctr.inc(cReasmFails)
		if !closed {
			l.evReasmFull.Log(slog.Int64("ipfrag_high_thresh", l.sys.IpfragHighThresh.Load()))
		}
		return nil
	}
	q := r.m[key]
	if q == nil {
		q = &fragQueue{key: key, mem: fragQueueOverhead}
		r.mem += fragQueueOverhead
		r.m[key] = q
		qq := q
		q.timer = l.clk.AfterFunc(time.Duration(l.sys.IpfragTime.Load())*time.Second, func() { r.expire(qq) })
	}
	out, ok := r.queueLocked(q, h, shard)
	if !ok {
		r.killLocked(q)
		r.mu.Unlock()
		l.ctr.inc(cReasmFails)
		return nil
	}
	r.mu.Unlock()
	return out
}

// queueLocked is ip_frag_queue; ok=false means the queue must be discarded.
func (r *reassembler) queueLocked(q *fragQueue, h wire.IPv4, shard int) (*pkt.Buffer, bool) {
	offset := h.FragOffset()
	hl := h.HeaderLen()
	end := offset + len(h) - hl
	if !h.MF() {
		// The last fragment fixes the length; it must agree with what we have.
		if end < q.length || (q.lastIn && end != q.length) {
			return nil, false
		}
		q.lastIn = true
		q.length = end
	} else {
		end &^= 7 // non-final fragments carry multiples of 8 bytes
		if end > q.length {
			if q.lastIn {
				return nil, false
			}
			q.length = end
		}
	}
	// An empty fragment, or one that can never fit a 64 KB datagram (Linux
	// finds the latter only in ip_frag_reasm; failing early frees the memory).
	if end == offset || hl+end > wire.IPv4MaxLen {
		return nil, false
	}
	i, verdict := q.place(offset, end)
	switch verdict {
	case placeDup:
		return nil, true
	case placeOverlap:
		r.l.ctr.inc(cExtReasmOverlaps)
		return nil, false
	}
	b := pkt.Get(hl + end - offset)
	copy(b.Append(hl+end-offset), h[:hl+end-offset])
	q.frags = append(q.frags, fragment{})
	copy(q.frags[i+1:], q.frags[i:])
	q.frags[i] = fragment{off: offset, end: end, hl: hl, buf: b}
	ts := truesize(b)
	q.mem += ts
	r.mem += ts
	q.meat += end - offset
	if offset == 0 {
		q.firstIn = true
	}
	if h.DF() {
		q.df = true
	}
	if !q.firstIn || !q.lastIn || q.meat != q.length {
		return nil, true
	}
	out := r.reasmLocked(q, shard)
	r.killLocked(q)
	if out == nil {
		return nil, false
	}
	r.l.ctr.inc(cReasmOKs)
	return out, true
}

type placeVerdict uint8

const (
	placeNew placeVerdict = iota
	placeDup
	placeOverlap
)

// place is inet_frag_queue_insert's decision: a fragment inside data we
// already hold contiguously is a duplicate (dropped, queue kept); any
// partial overlap discards the whole datagram (RFC 5722 as Linux applies it
// to IPv4). It returns the insertion index for a new fragment.
func (q *fragQueue) place(off, end int) (int, placeVerdict) {
	n := len(q.frags)
	if n == 0 {
		return 0, placeNew
	}
	if last := q.frags[n-1].end; last < end {
		if off < last {
			return 0, placeOverlap
		}
		return n, placeNew
	}
	i := 0
	for i < n && q.frags[i].end <= off {
		i++
	}
	if end <= q.frags[i].off {
		return i, placeNew
	}
	// [off,end) intersects frags[i]: a duplicate only if a contiguous run
	// starting at or before off covers it entirely.
	if off < q.frags[i].off {
		return 0, placeOverlap
	}
	covered := q.frags[i].end
	for j := i + 1; j < n && covered < end && q.frags[j].off == covered; j++ {
		covered = q.frags[j].end
	}
	if covered >= end {
		return 0, placeDup
	}
	return 0, placeOverlap
}

// reasmLocked is ip_frag_reasm: the first fragment's header, then the data.
func (r *reassembler) reasmLocked(q *fragQueue, shard int) *pkt.Buffer {
	first := &q.frags[0]
	hl := first.hl
	total := hl + q.length
	if total > wire.IPv4MaxLen {
		return nil // "Oversized IP packet"
	}
	b := pkt.Get(total)
	out := b.Append(total)
	copy(out, first.buf.Bytes()[:hl])
	for i := range q.frags {
		f := &q.frags[i]
		copy(out[hl+f.off:], f.data())
	}
	h := wire.IPv4(out)
	h.SetTotalLen(uint16(total))
	var ff uint16
	if q.df {
		ff = wire.IPv4FlagDF
	}
	h.SetFlagsFragOff(ff)
	h.SetChecksum()
	b.Shard = shard
	return b
}

// killLocked is inet_frag_kill: unhash, stop the timer, free the fragments.
func (r *reassembler) killLocked(q *fragQueue) {
	if q.dead {
		return
	}
	q.dead = true
	if q.timer != nil {
		q.timer.Stop()
	}
	delete(r.m, q.key)
	r.mem -= q.mem
	for i := range q.frags {
		q.frags[i].buf.Release()
	}
	q.frags = nil
}

// expire is ip_expire: count the failure and, if the first fragment had
// arrived, send ICMP time exceeded (fragment reassembly time exceeded).
func (r *reassembler) expire(q *fragQueue) {
	r.mu.Lock()
	if q.dead {
		r.mu.Unlock()
		return
	}
	var first *pkt.Buffer
	if q.firstIn {
		first = q.frags[0].buf
		q.frags[0].buf = pkt.Get(0) // keep the original for the ICMP quote
	}
	r.killLocked(q)
	r.mu.Unlock()
	r.l.ctr.inc(cReasmFails)
	r.l.ctr.inc(cReasmTimeout)
	if first != nil {
		r.l.icmpSend(first.Bytes(), wire.ICMPv4TimeExceeded, wire.ICMPv4ExcFragTime, 0)
		first.Release()
	}
}

func (r *reassembler) close() {
	r.mu.Lock()
	r.closed = true
	for _, q := range r.m {
		r.killLocked(q)
	}
	r.mu.Unlock()
}

// memUsed reports the bytes charged to reassembly (ipfrag mem in /proc/net/sockstat).
func (r *reassembler) memUsed() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mem
}
