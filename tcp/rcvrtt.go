package tcp

import "time"

// rcvRTTEst is the receiver's RTT estimate (Linux tp->rcv_rtt_est): a bulk
// receiver sends no data to time, yet receive-buffer auto-tuning and SACK
// compression pace themselves by the RTT. It is measured from the
// timestamps the sender echoes and, without timestamps, from how long a
// window's worth of data takes to arrive.
type rcvRTTEst struct {
	at        time.Duration // start of the per-window measurement (since the stack's epoch), 0: none yet
	rtt8      uint32        // estimate in µs, times 8 (rtt_us), 0: no sample yet
	seq       seqnum        // rcv_nxt that ends the per-window measurement
	lastTsecr uint32        // TSecr of the last timestamp sample
}

// rcvRTT is the receiver's RTT estimate, 0 when there is none.
func (c *Conn) rcvRTT() time.Duration {
	return time.Duration(c.rcv.ofo.rtt.rtt8>>3) * time.Microsecond
}

// rcvRTTMeasureTS takes an RTT sample from the TSecr of a data segment of
// at least rcv_mss bytes, once per distinct TSecr (tcp_rcv_rtt_measure_ts).
// The timestamp clock ticks in milliseconds; a zero sample says only that
// the RTT is below one tick and is not used.
func (c *Conn) rcvRTTMeasureTS(sg *segment, n int) {
	e := &c.rcv.ofo.rtt
	if !c.tsOn || !sg.opts.HasTS || sg.opts.TSEcr == 0 || sg.opts.TSEcr == e.lastTsecr {
		return
	}
	e.lastTsecr = sg.opts.TSEcr
	if n < c.rcv.mss {
		return
	}
	delta := int32(c.s.tsNow() + c.tsOff - sg.opts.TSEcr)
	if delta > 0 && delta < 1<<20 {
		c.rcvRTTUpdate(uint32(delta)*1000, false)
	}
}

// rcvRTTMeasure times one window of in-order data (tcp_rcv_rtt_measure):
// when rcv_nxt passes the right edge the window had when the measurement
// started, a window's worth has arrived in about one RTT (more when the
// sender is not window-limited, so only a smaller sample is taken).
func (c *Conn) rcvRTTMeasure() {
	e := &c.rcv.ofo.rtt
	if e.at != 0 && c.rcv.nxt.lt(e.seq) {
		return
	}
	now := c.s.clock.Now().Sub(c.s.epoch)
	if e.at != 0 {
		us := max((now-e.at)/time.Microsecond, 1)
		c.rcvRTTUpdate(uint32(min(us, 1<<28)), true)
	}
	e.seq = c.rcv.nxt.add(c.rcv.edge.diff(c.rcv.wup))
	e.at = max(now, 1)
}

// rcvRTTUpdate folds a sample in µs into the estimate (tcp_rcv_rtt_update):
// a lower sample is taken at once (the minimum is what auto-tuning wants);
// a higher one moves a timestamp-based estimate by an eighth and is
// ignored when it came from a window, which the sender may not have
// filled.
func (c *Conn) rcvRTTUpdate(us uint32, winDep bool) {
	e := &c.rcv.ofo.rtt
	m := us << 3
	switch {
	case e.rtt8 == 0 || m < e.rtt8:
		e.rtt8 = m
	case !winDep:
		e.rtt8 = e.rtt8 - e.rtt8>>3 + us
	}
}
