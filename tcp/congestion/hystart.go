package congestion

import (
	"sync/atomic"
	"time"
)

// HyStart (Ha & Rhee, "Taming the Elephants", and tcp_cubic.c with
// hystart_detect = HYSTART_ACK_TRAIN|HYSTART_DELAY) leaves slow start early,
// setting ssthresh = cwnd, when the ACKs of a round spread over half the
// minimum RTT (the pipe is full) or the round's RTT rises clearly above the
// minimum (a queue is building).
const (
	hystartLowWindow  = 16   // segments; below this slow start runs unchecked
	hystartMinSamples = 8    // RTT samples per round before the delay test
	hystartDelayMin   = 4000 // µs, bounds of the delay threshold delayMin/8
	hystartDelayMax   = 16000
	hystartAckDelta   = 2000 // µs: ACKs closer than this form a train
	discardAfterLoss  = 1000 // ms: ignore RTT samples this soon after a reduction
)

// hystart is the round state (Linux's bictcp round_start..curr_rtt). A round
// ends once more than the PacketsOut of its start have been acked, the
// packet-count form of Linux's after(snd_una, end_seq) with end_seq = snd_nxt.
type hystart struct {
	roundStart uint32 // µs
	lastAck    uint32 // µs, last ACK of the current train
	currRTT    uint32 // µs, minimum RTT of this round
	roundPkts  uint32
	roundAcked uint32
	sampleCnt  uint8
	found      bool
}

// hystartReset mirrors bictcp_hystart_reset: start a new round now.
func (c *cubic) hystartReset(s *Sender) {
	now := usOf(s.Now)
	c.roundStart, c.lastAck = now, now
	c.roundPkts, c.roundAcked = s.PacketsOut, 0
	c.currRTT = ^uint32(0)
	c.sampleCnt = 0
}

// PktsAcked takes the RTT sample of an ACK. Mirrors cubictcp_acked.
func (c *cubic) PktsAcked(s *Sender, acked uint32, rtt time.Duration) {
	c.lastAckTime = msOf(s.Now)
	c.roundAcked = min(c.roundAcked+acked, ^uint32(0)-1) // saturate: must exceed roundPkts
	if rtt <= 0 {
		return
	}
	if c.epochStart != 0 && int32(msOf(s.Now)-c.epochStart) < discardAfterLoss {
		return
	}
	delay := uint32(min(max(rtt.Microseconds(), 1), 1<<31))
	if c.delayMin == 0 || c.delayMin > delay {
		c.delayMin = delay
	}
	if !c.found && InSlowStart(s) && s.Cwnd >= hystartLowWindow {
		c.hystartUpdate(s, delay)
	}
}

// hystartUpdate mirrors hystart_update.
func (c *cubic) hystartUpdate(s *Sender, delay uint32) {
	if c.roundAcked > c.roundPkts {
		c.hystartReset(s)
	}
	now := usOf(s.Now)
	if int32(now-c.lastAck) <= hystartAckDelta {
		c.lastAck = now
		// Without pacing the train may span only half the minimum RTT.
		if int32(now-c.roundStart) > int32(c.delayMin>>1) {
			c.hystartExit(s, true)
		}
	}
	c.currRTT = min(c.currRTT, delay)
	if c.sampleCnt < hystartMinSamples {
		c.sampleCnt++
		return
	}
	thresh := min(max(c.delayMin>>3, hystartDelayMin), hystartDelayMax)
	if c.currRTT > c.delayMin+thresh {
		c.hystartExit(s, false)
	}
}

func (c *cubic) hystartExit(s *Sender, train bool) {
	c.found = true
	s.Ssthresh = s.Cwnd
	if h := c.counters; h != nil {
		if train {
			h.TrainDetect.Add(1)
			h.TrainCwnd.Add(uint64(s.Cwnd))
		} else {
			h.DelayDetect.Add(1)
			h.DelayCwnd.Add(uint64(s.Cwnd))
		}
	}
}

// HyStartCounters are the stack-wide TcpExt counters of HyStart exits; one
// value is shared by every connection of a stack (see NewWithCounters).
type HyStartCounters struct {
	TrainDetect, TrainCwnd, DelayDetect, DelayCwnd atomic.Uint64
}

// Counters visits the counters with their Linux nstat names.
func (h *HyStartCounters) Counters(visit func(name string, value uint64)) {
	visit("TcpExtTCPHystartTrainDetect", h.TrainDetect.Load())
	visit("TcpExtTCPHystartTrainCwnd", h.TrainCwnd.Load())
	visit("TcpExtTCPHystartDelayDetect", h.DelayDetect.Load())
	visit("TcpExtTCPHystartDelayCwnd", h.DelayCwnd.Load())
}
