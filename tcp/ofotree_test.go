package tcp

import (
	"fmt"
	"math/rand"
	"testing"
)

// refRanges is the reference model of the out-of-order index: one bool
// per byte offset above a base sequence number.
type refRanges struct {
	base seqnum
	have []bool
}

func (m *refRanges) insert(r seqRange) (added int, dup seqRange) {
	for s := r.start; s.lt(r.end); s++ {
		i := s.diff(m.base)
		if m.have[i] {
			if dup.len() == 0 {
				dup = seqRange{s, s + 1}
			} else if dup.end == s {
				dup.end++
			}
		} else {
			m.have[i] = true
			added++
		}
	}
	return added, dup
}

// ranges lists the maximal runs of held bytes (touching runs are one).
func (m *refRanges) ranges() []seqRange {
	var out []seqRange
	for i := 0; i < len(m.have); i++ {
		if !m.have[i] {
			continue
		}
		j := i
		for j < len(m.have) && m.have[j] {
			j++
		}
		out = append(out, seqRange{m.base.add(i), m.base.add(j)})
		i = j
	}
	return out
}

func treeRanges(t *ofoTree) []seqRange {
	var out []seqRange
	t.each(func(r seqRange) { out = append(out, r) })
	return out
}

// checkTree verifies the tree against the model and its own invariants:
// in order, disjoint and non-adjacent, counts right, heap-ordered, last is
// the maximum.
func checkTree(tb testing.TB, tr *ofoTree, m *refRanges) {
	tb.Helper()
	got, want := treeRanges(tr), m.ranges()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		tb.Fatalf("tree %v, model %v", got, want)
	}
	bytes := 0
	for i, r := range got {
		bytes += r.len()
		if i > 0 && !got[i-1].end.lt(r.start) {
			tb.Fatalf("ranges %v and %v touch", got[i-1], r)
		}
	}
	if tr.n != len(got) || tr.bytes != bytes {
		tb.Fatalf("n %d bytes %d, want %d %d", tr.n, tr.bytes, len(got), bytes)
	}
	if last, ok := tr.lastRange(); ok != (len(got) > 0) || (ok && last != got[len(got)-1]) {
		tb.Fatalf("last %v %v, ranges %v", last, ok, got)
	}
	var heap func(n int32)
	heap = func(n int32) {
		for _, k := range []int32{tr.nodes[n].left, tr.nodes[n].right} {
			if k != 0 {
				if tr.nodes[k].prio > tr.nodes[n].prio {
					tb.Fatalf("heap order broken at %v", tr.nodes[k].r)
				}
				heap(k)
			}
		}
	}
	if tr.root != 0 {
		heap(tr.root)
	}
}

// TestOFOTreeInsertCases: the merges one at a time, each checked for what
// it reports (new bytes, the lowest duplicate part, ranges swallowed).
func TestOFOTreeInsertCases(t *testing.T) {
	const b = seqnum(1000)
	for _, tc := range []struct {
		name     string
		before   []seqRange
		ins      seqRange
		after    []seqRange
		added    int
		dup      seqRange
		absorbed int
	}{
		{"first", nil, seqRange{b, b + 10}, []seqRange{{b, b + 10}}, 10, seqRange{}, 0},
		{"above last", []seqRange{{b, b + 10}}, seqRange{b + 20, b + 30}, []seqRange{{b, b + 10}, {b + 20, b + 30}}, 10, seqRange{}, 0},
		{"extends last", []seqRange{{b, b + 10}}, seqRange{b + 10, b + 20}, []seqRange{{b, b + 20}}, 10, seqRange{}, 0},
		{"overlaps last's end", []seqRange{{b, b + 10}}, seqRange{b + 5, b + 15}, []seqRange{{b, b + 15}}, 5, seqRange{b + 5, b + 10}, 0},
		{"inside last", []seqRange{{b, b + 10}}, seqRange{b + 2, b + 8}, []seqRange{{b, b + 10}}, 0, seqRange{b + 2, b + 8}, 0},
		{"covers last", []seqRange{{b, b + 10}}, seqRange{b, b + 12}, []seqRange{{b, b + 12}}, 2, seqRange{b, b + 10}, 1},
		{"below all", []seqRange{{b + 20, b + 30}}, seqRange{b, b + 10}, []seqRange{{b, b + 10}, {b + 20, b + 30}}, 10, seqRange{}, 0},
		{"touches below", []seqRange{{b + 20, b + 30}}, seqRange{b + 10, b + 20}, []seqRange{{b + 10, b + 30}}, 10, seqRange{}, 0},
		{"fills a gap", []seqRange{{b, b + 10}, {b + 20, b + 30}}, seqRange{b + 10, b + 20}, []seqRange{{b, b + 30}}, 10, seqRange{}, 0},
		{"bridges three", []seqRange{{b, b + 10}, {b + 20, b + 30}, {b + 40, b + 50}, {b + 60, b + 70}}, seqRange{b + 5, b + 45},
			[]seqRange{{b, b + 50}, {b + 60, b + 70}}, 20, seqRange{b + 5, b + 10}, 1},
		{"swallows two", []seqRange{{b + 10, b + 20}, {b + 30, b + 40}, {b + 60, b + 70}}, seqRange{b, b + 50},
			[]seqRange{{b, b + 50}, {b + 60, b + 70}}, 30, seqRange{b + 10, b + 20}, 2},
		{"inside a middle range", []seqRange{{b, b + 10}, {b + 20, b + 30}, {b + 40, b + 50}}, seqRange{b + 22, b + 25},
			[]seqRange{{b, b + 10}, {b + 20, b + 30}, {b + 40, b + 50}}, 0, seqRange{b + 22, b + 25}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tr ofoTree
			for _, r := range tc.before {
				tr.insert(r)
			}
			res := tr.insert(tc.ins)
			if got := treeRanges(&tr); fmt.Sprint(got) != fmt.Sprint(tc.after) {
				t.Fatalf("ranges %v, want %v", got, tc.after)
			}
			if res.added != tc.added || res.dup != tc.dup || res.absorbed != tc.absorbed {
				t.Fatalf("insert %+v, want added %d dup %v absorbed %d", res, tc.added, tc.dup, tc.absorbed)
			}
			if !overlapsOrTouches(res.merged, tc.ins) || res.merged.len() < tc.ins.len() {
				t.Fatalf("merged %v does not hold %v", res.merged, tc.ins)
			}
		})
	}
}

func overlapsOrTouches(a, b seqRange) bool { return !a.start.gt(b.end) && !b.start.gt(a.end) }

// TestOFOTreeRandom drives the tree and the byte model with the same
// random inserts, pops from the bottom (rcv_nxt advancing) and from the
// top (pruning), across the sequence-number wrap.
func TestOFOTreeRandom(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewSource(seed))
		base := seqnum(0xffff0000 + uint32(rng.Intn(1<<16))) // wraps inside the span
		const span = 4000
		m := &refRanges{base: base, have: make([]bool, span)}
		var tr ofoTree
		for op := 0; op < 600; op++ {
			switch k := rng.Intn(20); {
			case k < 17:
				s := rng.Intn(span - 1)
				n := 1 + rng.Intn(min(span-s, []int{3, 20, 200}[rng.Intn(3)]))
				r := seqRange{base.add(s), base.add(s + n)}
				added, dup := m.insert(r)
				res := tr.insert(r)
				if res.added != added || res.dup != dup {
					t.Fatalf("seed %d op %d insert %v: %+v, model added %d dup %v", seed, op, r, res, added, dup)
				}
			case k < 19:
				want := m.ranges()
				r, ok := tr.popLast()
				if ok != (len(want) > 0) || (ok && r != want[len(want)-1]) {
					t.Fatalf("seed %d popLast %v %v, want %v", seed, r, ok, want)
				}
				if ok {
					for s := r.start; s.lt(r.end); s++ {
						m.have[s.diff(base)] = false
					}
				}
			default:
				upTo := base.add(rng.Intn(span))
				want := m.ranges()
				r, ok := tr.popFirstUpTo(upTo)
				wantOK := len(want) > 0 && want[0].start.leq(upTo)
				if ok != wantOK || (ok && r != want[0]) {
					t.Fatalf("seed %d popFirstUpTo(%d) %v %v, want %v", seed, upTo, r, ok, want)
				}
				if ok {
					for s := r.start; s.lt(r.end); s++ {
						m.have[s.diff(base)] = false
					}
				}
			}
			checkTree(t, &tr, m)
		}
	}
}

// TestOFOTreeReusesNodes: once the arena has grown, inserting, merging and
// popping allocate nothing.
func TestOFOTreeReusesNodes(t *testing.T) {
	var tr ofoTree
	fill := func() {
		for i := 0; i < 512; i++ {
			tr.insert(seqRange{seqnum(20 * i), seqnum(20*i + 10)})
		}
		for i := 0; i < 512; i += 2 {
			tr.insert(seqRange{seqnum(20*i + 10), seqnum(20*i + 20)})
		}
		for !tr.empty() {
			tr.popFirstUpTo(1 << 30)
		}
	}
	fill()
	if n := testing.AllocsPerRun(10, fill); n != 0 {
		t.Fatalf("%v allocations per fill once the arena is grown", n)
	}
}

// FuzzOFOTree checks the tree against the byte model on inserts and pops
// decoded from the fuzzer's bytes (3 bytes an operation).
func FuzzOFOTree(f *testing.F) {
	f.Add([]byte{0, 10, 5, 0, 30, 5, 0, 15, 20, 1, 0, 0, 2, 40, 0})
	f.Add([]byte{0, 0, 255, 0, 100, 1, 0, 102, 1, 0, 101, 1})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const span = 600
		base := seqnum(0xfffffe00) // the sequence space wraps inside the span
		m := &refRanges{base: base, have: make([]bool, span)}
		var tr ofoTree
		for i := 0; i+2 < len(ops); i += 3 {
			a, b := int(ops[i+1])*2, int(ops[i+2])
			switch ops[i] % 4 {
			case 0, 1:
				if b == 0 {
					b = 1
				}
				if a+b > span {
					continue
				}
				r := seqRange{base.add(a), base.add(a + b)}
				added, dup := m.insert(r)
				if res := tr.insert(r); res.added != added || res.dup != dup {
					t.Fatalf("insert %v: %+v, model added %d dup %v", r, res, added, dup)
				}
			case 2:
				if r, ok := tr.popLast(); ok {
					for s := r.start; s.lt(r.end); s++ {
						m.have[s.diff(base)] = false
					}
				}
			case 3:
				if r, ok := tr.popFirstUpTo(base.add(a)); ok {
					for s := r.start; s.lt(r.end); s++ {
						m.have[s.diff(base)] = false
					}
				}
			}
			checkTree(t, &tr, m)
		}
	})
}

// BenchmarkOFOInsert inserts segments into a queue already holding n
// ranges (holes between them), each segment filling a random hole and a
// fresh one opening at the top: the queue stays at n ranges and every
// insert searches and merges inside the tree. The time grows with log n,
// and nothing is allocated.
func BenchmarkOFOInsert(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var tr ofoTree
			const seg, gap = 1448, 1448
			for i := 0; i < n; i++ {
				tr.insert(seqRange{seqnum(i * (seg + gap)), seqnum(i*(seg+gap) + seg)})
			}
			top := n
			rng := rand.New(rand.NewSource(1))
			holes := make([]int, 1<<12)
			for i := range holes {
				holes[i] = rng.Intn(n)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// Half a hole below some range: a merge in the middle of the
				// tree, then the same bytes again (a duplicate, D-SACK).
				h := holes[i&(len(holes)-1)]
				first, _ := tr.first()
				s := first.start.add(h*(seg+gap) + seg)
				r := seqRange{s, s.add(8)}
				tr.insert(r)
				tr.insert(r)
				// Keep n ranges: drop the lowest, open one at the top.
				tr.popFirstUpTo(first.start)
				tr.insert(seqRange{seqnum(top * (seg + gap)), seqnum(top*(seg+gap) + seg)})
				top++
			}
		})
	}
}

// TestOFOTreeEmpty: every query and pop of a tree never used is a clean
// "nothing".
func TestOFOTreeEmpty(t *testing.T) {
	var tr ofoTree
	if _, ok := tr.first(); ok {
		t.Fatal("first of an empty tree")
	}
	if _, ok := tr.lastRange(); ok {
		t.Fatal("last of an empty tree")
	}
	if _, ok := tr.popLast(); ok {
		t.Fatal("popLast of an empty tree")
	}
	if _, ok := tr.popFirstUpTo(1 << 30); ok {
		t.Fatal("popFirstUpTo of an empty tree")
	}
	if !tr.empty() || tr.n != 0 || tr.bytes != 0 {
		t.Fatal("counts of an empty tree")
	}
}
