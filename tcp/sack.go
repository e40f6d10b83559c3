package tcp

// insertRange merges r into the sorted, disjoint list rs. When the list is
// at its limit and r would add an entry, r is dropped; the second result
// says whether r was kept.
func insertRange(rs []seqRange, r seqRange, limit int) []seqRange {
	rs, _ = insertRangeOK(rs, r, limit)
	return rs
}

func insertRangeOK(rs []seqRange, r seqRange, limit int) ([]seqRange, bool) {
	i := 0
	for i < len(rs) && rs[i].end.lt(r.start) {
		i++
	}
	j := i
	for j < len(rs) && rs[j].start.leq(r.end) {
		r.start = seqMin(r.start, rs[j].start)
		r.end = seqMax(r.end, rs[j].end)
		j++
	}
	if i == j {
		if len(rs) >= limit {
			return rs, false
		}
		rs = append(rs, seqRange{})
		copy(rs[i+1:], rs[i:])
		rs[i] = r
		return rs, true
	}
	rs[i] = r
	rs = append(rs[:i+1], rs[j:]...)
	return rs, true
}
