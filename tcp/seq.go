package tcp

// seqnum is a TCP sequence number compared with serial arithmetic
// (RFC 1982; Linux before()/after()), so comparisons survive wraparound.
type seqnum uint32

func (a seqnum) lt(b seqnum) bool           { return int32(a-b) < 0 }
func (a seqnum) leq(b seqnum) bool          { return int32(a-b) <= 0 }
func (a seqnum) gt(b seqnum) bool           { return int32(a-b) > 0 }
func (a seqnum) geq(b seqnum) bool          { return int32(a-b) >= 0 }
func (a seqnum) add(n int) seqnum           { return a + seqnum(uint32(n)) }
func (a seqnum) diff(b seqnum) int          { return int(int32(a - b)) }     // a - b
func (a seqnum) inRange(lo, hi seqnum) bool { return a.geq(lo) && a.lt(hi) } // lo ≤ a < hi

func seqMax(a, b seqnum) seqnum {
	if a.gt(b) {
		return a
	}
	return b
}

func seqMin(a, b seqnum) seqnum {
	if a.lt(b) {
		return a
	}
	return b
}

// seqRange is the half-open interval [start, end).
type seqRange struct{ start, end seqnum }

func (r seqRange) len() int { return r.end.diff(r.start) }
