package tcp

import "math/rand/v2"

// ofoTree is the out-of-order queue's index: the disjoint, non-adjacent
// sequence ranges held beyond rcv_nxt, in a treap (a binary search tree
// kept balanced by random heap priorities, so every operation is
// O(log n) expected whatever order the peer sends in). Linux keeps the
// skbs themselves in an rb-tree (tcp_data_queue_ofo); here the bytes sit
// in the receive ring at their offset, so the tree holds ranges only.
//
// Nodes live in an arena addressed by int32 index (0 is nil) with a free
// list, so inserting, merging and removing allocate nothing once the arena
// has grown to the peak number of ranges. Keys compare in serial
// arithmetic: every range lies within one window above rcv_nxt.
type ofoTree struct {
	nodes []ofoNode // arena; nodes[0] is the nil sentinel
	free  int32     // head of the free list (linked through left)
	root  int32
	last  int32 // the highest range (Linux tp->ooo_last_skb), 0 when empty
	n     int   // ranges held
	bytes int   // bytes held
	seed  uint32
}

type ofoNode struct {
	r           seqRange
	left, right int32
	prio        uint32
}

// ofoNodeSize is what one range costs in the arena.
const ofoNodeSize = 20

// ofoInsert is what inserting a segment's range changed.
type ofoInsert struct {
	merged   seqRange // the range now holding the segment
	added    int      // bytes not held before
	dup      seqRange // the lowest part already held (its D-SACK), empty if none
	absorbed int      // ranges swallowed whole by the segment (TCPOFOMerge)
}

func (t *ofoTree) empty() bool { return t.root == 0 }

// first returns the lowest range.
func (t *ofoTree) first() (seqRange, bool) {
	if _, n := t.edge(false); n != 0 {
		return t.nodes[n].r, true
	}
	return seqRange{}, false
}

// lastRange returns the highest range.
func (t *ofoTree) lastRange() (seqRange, bool) {
	if t.last == 0 {
		return seqRange{}, false
	}
	return t.nodes[t.last].r, true
}

// insert adds r (non-empty) and merges it with every range it overlaps
// or touches.
func (t *ofoTree) insert(r seqRange) ofoInsert {
	if t.last != 0 {
		// Most segments extend the highest range or open a new one above
		// it: no descent needed (tcp_data_queue_ofo's ooo_last_skb path).
		if l := &t.nodes[t.last]; r.start.geq(l.r.start) {
			if r.start.leq(l.r.end) {
				res := ofoInsert{dup: overlap(r, l.r)}
				if r.start == l.r.start && r.end.geq(l.r.end) {
					res.absorbed = 1
				}
				if r.end.gt(l.r.end) {
					res.added = r.end.diff(l.r.end)
					l.r.end = r.end
				}
				t.bytes += res.added
				res.merged = l.r
				return res
			}
			k := t.alloc(r)
			t.root = t.join(t.root, k)
			t.last = k
			t.n++
			t.bytes += r.len()
			return ofoInsert{merged: r, added: r.len()}
		}
	}
	// L: ranges ending before r with a gap; M: ranges that overlap or
	// touch r; R: ranges starting after r's end with a gap.
	lo, rest := t.split(t.root, func(x seqRange) bool { return x.end.lt(r.start) })
	mid, hi := t.split(rest, func(x seqRange) bool { return x.start.leq(r.end) })
	res := ofoInsert{merged: r, added: r.len()}
	t.absorb(mid, &res, r)
	k := t.alloc(res.merged)
	t.root = t.join(t.join(lo, k), hi)
	if hi == 0 {
		t.last = k
	}
	t.n++
	t.bytes += res.added
	return res
}

// absorb frees the subtree n of ranges that r overlaps or touches,
// widening res.merged over them and taking their bytes off res.added.
func (t *ofoTree) absorb(n int32, res *ofoInsert, r seqRange) {
	if n == 0 {
		return
	}
	nd := t.nodes[n]
	t.absorb(nd.left, res, r) // in order, so res.dup is the lowest overlap
	x := nd.r
	res.merged.start = seqMin(res.merged.start, x.start)
	res.merged.end = seqMax(res.merged.end, x.end)
	if d := overlap(r, x); d.len() > 0 {
		res.added -= d.len()
		if res.dup.len() == 0 {
			res.dup = d
		}
	}
	if r.start.leq(x.start) && r.end.geq(x.end) {
		res.absorbed++
	}
	t.n--
	t.release(n)
	t.absorb(nd.right, res, r)
}

// popFirstUpTo removes and returns the lowest range if it starts at or
// below seq (tcp_ofo_queue: what rcv_nxt has reached).
func (t *ofoTree) popFirstUpTo(seq seqnum) (seqRange, bool) {
	at, n := t.edge(false)
	if n == 0 || t.nodes[n].r.start.gt(seq) {
		return seqRange{}, false
	}
	return t.unlink(at, n, false), true
}

// popLast removes and returns the highest range (tcp_prune_ofo_queue
// drops from the top).
func (t *ofoTree) popLast() (seqRange, bool) {
	at, n := t.edge(true)
	if n == 0 {
		return seqRange{}, false
	}
	return t.unlink(at, n, true), true
}

// edge finds the lowest node (the highest if high) and the link to it.
func (t *ofoTree) edge(high bool) (at *int32, n int32) {
	at = &t.root
	for n = *at; n != 0 && *t.child(n, high) != 0; n = *at {
		at = t.child(n, high)
	}
	return at, n
}

func (t *ofoTree) child(n int32, high bool) *int32 {
	if high {
		return &t.nodes[n].right
	}
	return &t.nodes[n].left
}

// unlink removes n, an edge node that at links to, and returns its range.
func (t *ofoTree) unlink(at *int32, n int32, high bool) seqRange {
	r := t.nodes[n].r
	*at = *t.child(n, !high) // an edge node has one child at most
	t.n--
	t.bytes -= r.len()
	t.release(n)
	if high || n == t.last {
		_, t.last = t.edge(true)
	}
	return r
}

// each visits the ranges in order (tests and listings; not the data path).
func (t *ofoTree) each(visit func(seqRange)) {
	var walk func(int32)
	walk = func(n int32) {
		if n == 0 {
			return
		}
		walk(t.nodes[n].left)
		visit(t.nodes[n].r)
		walk(t.nodes[n].right)
	}
	walk(t.root)
}

// reset forgets every range, keeping the arena for reuse.
func (t *ofoTree) reset() {
	t.nodes = t.nodes[:min(len(t.nodes), 1)]
	t.free, t.root, t.last, t.n, t.bytes = 0, 0, 0, 0, 0
}

// split cuts the subtree n into the ranges for which left holds (a prefix
// of the order: left must be monotone) and the rest.
func (t *ofoTree) split(n int32, left func(seqRange) bool) (l, r int32) {
	if n == 0 {
		return 0, 0
	}
	if left(t.nodes[n].r) {
		a, b := t.split(t.nodes[n].right, left)
		t.nodes[n].right = a
		return n, b
	}
	a, b := t.split(t.nodes[n].left, left)
	t.nodes[n].left = b
	return a, n
}

// join concatenates two subtrees, every range of a below every range of b.
func (t *ofoTree) join(a, b int32) int32 {
	if a == 0 {
		return b
	}
	if b == 0 {
		return a
	}
	if t.nodes[a].prio > t.nodes[b].prio {
		t.nodes[a].right = t.join(t.nodes[a].right, b)
		return a
	}
	t.nodes[b].left = t.join(a, t.nodes[b].left)
	return b
}

func (t *ofoTree) alloc(r seqRange) int32 {
	if t.seed == 0 {
		t.seed = rand.Uint32() | 1 // unpredictable to the peer
	}
	// xorshift32: a cheap priority stream (Marsaglia 2003).
	t.seed ^= t.seed << 13
	t.seed ^= t.seed >> 17
	t.seed ^= t.seed << 5
	nd := ofoNode{r: r, prio: t.seed}
	if k := t.free; k != 0 {
		t.free = t.nodes[k].left
		t.nodes[k] = nd
		return k
	}
	if len(t.nodes) == 0 {
		t.nodes = append(t.nodes, ofoNode{})
	}
	t.nodes = append(t.nodes, nd)
	return int32(len(t.nodes) - 1)
}

func (t *ofoTree) release(k int32) {
	t.nodes[k] = ofoNode{left: t.free}
	t.free = k
}

// overlap is the intersection of a and b (empty when they only touch).
func overlap(a, b seqRange) seqRange {
	s, e := seqMax(a.start, b.start), seqMin(a.end, b.end)
	if !s.lt(e) {
		return seqRange{}
	}
	return seqRange{s, e}
}
