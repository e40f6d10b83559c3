package tcp

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/wire"
)

// Defaults of the Linux knobs TSO sizing reads.
const (
	tcpMinTSOSegs   = 2  // net.ipv4.tcp_min_tso_segs
	tcpTSORTTLog    = 9  // net.ipv4.tcp_tso_rtt_log
	tcpTSOWinDiv    = 3  // net.ipv4.tcp_tso_win_divisor
	pacingShift     = 10 // sk_pacing_shift: a super-segment holds ~1 ms of the pacing rate
	pacingSSRatio   = 200
	pacingCARatio   = 120
	tsoDeferMaxIdle = time.Millisecond
)

// gsoMax is the longest IPv4 super-packet the Network takes now, 0 without
// TSO. Read per transmit: the link may be attached after New.
func (s *Stack) gsoMax() int {
	if s.gsoNet == nil {
		return 0
	}
	return s.gsoNet.GSOMax()
}

// transmit hands one built segment to the Network: a super-segment through
// OutputGSO, cut in software when the Network cannot segment after all.
func (s *Stack) transmit(o *outSeg) {
	if o.gso == 0 {
		s.net.Output(o.src, o.dst, ProtoTCP, o.b)
		return
	}
	if s.gsoNet != nil {
		if err := s.gsoNet.OutputGSO(o.src, o.dst, ProtoTCP, o.b, o.gso); !errors.Is(err, ErrNoGSO) {
			return
		}
	}
	s.segmentSoftware(o)
}

// segmentSoftware cuts a super-segment into segments of o.gso payload bytes
// and sends each with Output, as tcp_gso_segment does for a device without
// TSO: the same header (TSval included) with its own sequence number and
// checksum, PSH and FIN on the last segment only. It consumes o.b. This
// copies every byte once more; it only runs when GSOMax changed between
// building and sending.
func (s *Stack) segmentSoftware(o *outSeg) {
	super := wire.TCP(o.b.Bytes())
	hl := super.HeaderLen()
	payload := super[hl:]
	seq := super.Seq()
	flags := super.Flags()
	for off := 0; off < len(payload); off += o.gso {
		n := min(o.gso, len(payload)-off)
		b := pkt.Get(hl + n)
		copy(b.Append(n), payload[off:off+n])
		h := wire.TCP(b.Prepend(hl))
		copy(h, super[:hl])
		binary.BigEndian.PutUint32(h[4:], seq+uint32(off))
		if off+n < len(payload) {
			h[13] = flags &^ (wire.TCPFlagPSH | wire.TCPFlagFIN)
		}
		seg := wire.TCP(b.Bytes())
		seg.SetChecksum(0)
		seg.SetChecksum(wire.TCPChecksum(o.src, o.dst, seg))
		s.net.Output(o.src, o.dst, ProtoTCP, b)
	}
	o.b.Release()
}

// dataHeaderLen is the TCP header length of the next data segment: the
// options dataOptions will write.
func (c *Conn) dataHeaderLen() int {
	hl := wire.TCPMinHeaderLen + c.sackOptLen()
	if c.tsOn {
		hl += tsOptLen
	}
	return hl
}

// tsoSegs is how many mss-sized segments the next super-segment may hold
// (Linux tcp_tso_segs), 1 without TSO: what the device takes
// (sk_gso_max_size less the headers), sized to the pacing rate.
func (c *Conn) tsoSegs(mss int) int {
	gsoMax := c.s.gsoMax()
	if gsoMax == 0 {
		return 1
	}
	maxPayload := gsoMax - wire.IPv4MinHeaderLen - c.dataHeaderLen()
	return max(min(c.tsoAutosize(maxPayload, mss), maxPayload/mss), 1)
}

// tsoAutosize mirrors tcp_tso_autosize: about 1 ms worth of the pacing rate
// (sk_pacing_rate >> sk_pacing_shift), plus a bonus of up to a whole
// super-segment on low-RTT paths (gso_max_size >> (min_rtt_us >>
// tcp_tso_rtt_log)), but at least tcp_min_tso_segs. Linux computes the
// pacing rate even when no qdisc paces (tcp_update_pacing_rate), so this
// is the same sizing it uses without fq.
func (c *Conn) tsoAutosize(maxPayload, mss int) int {
	bytes := c.pacingRate() >> pacingShift
	if c.rtt.minRTT > 0 {
		if r := c.rtt.minRTT.Microseconds() >> tcpTSORTTLog; r < 32 {
			bytes += int64(maxPayload) >> r
		}
	}
	bytes = min(bytes, int64(maxPayload))
	return max(int(bytes)/mss, tcpMinTSOSegs)
}

// pacingRate is tcp_update_pacing_rate in bytes per second: cwnd (or what
// is in flight, if more) mss-sized segments per srtt, times 2 in slow start
// (below half ssthresh; tcp_pacing_ss_ratio) or 1.2 (tcp_pacing_ca_ratio).
// Without an RTT sample it is unlimited, as sk_pacing_rate starts at ~0.
func (c *Conn) pacingRate() int64 {
	if c.rtt.srtt <= 0 {
		return 1 << 62
	}
	ratio := int64(pacingCARatio)
	if c.rec.cong.Cwnd < c.rec.cong.Ssthresh/2 {
		ratio = pacingSSRatio
	}
	segs := max(int64(c.rec.cong.Cwnd), int64(c.rec.sb.packetsOut))
	perRTT := float64(int64(c.snd.mss) * segs * ratio / 100)
	return int64(min(perRTT*float64(time.Second)/float64(c.rtt.srtt), 1<<62))
}

// tsoSplit is the payload of the next new-data super-segment, given that
// at least one full mss fits both the data and the send window (Linux
// tcp_cwnd_test and tcp_mss_split_point): at most tsoSegs segments, the
// unused congestion window (quota, in segments) and half of cwnd, so that
// two super-segments are in flight; a multiple of mss unless the data or
// the window ends within it and Nagle would not hold that tail back.
func (c *Conn) tsoSplit(mss, segs, quota, avail, room int) int {
	segs = min(segs, quota, max(int(c.rec.cong.Cwnd)/2, 1))
	n := min(segs*mss, avail, room)
	fin := c.snd.finQueued && n == avail
	if partial := n % mss; partial != 0 && !fin && !c.noDelay && c.snd.una != c.snd.nxt {
		n -= partial // tcp_nagle_check: the short tail waits for the ACKs
	}
	return n
}

// tsoShouldDefer is tcp_tso_should_defer: when the windows let only part
// of a full super-segment go while data is in flight, wait for the next
// ACK to send a bigger one, unless a third of the window is free anyway
// (tcp_tso_win_divisor), nothing was sent for 1 ms, the connection is in
// recovery, the head's ACK is not expected within min(srtt/2, 1 ms), or the
// rest of the data (with its FIN) fits. (Linux also defers an
// application-limited tail that fits, waiting for more writes; here what
// fits goes.) It also reports whether the congestion window, rather than
// the peer's, is what held the data back.
func (c *Conn) tsoShouldDefer(mss, segs, quota, avail, room int, now stamp) (deferIt, cwndLimited bool) {
	if c.rec.ca >= caRecovery || c.rec.sb.n == 0 || time.Duration(now-c.lastSend) > tsoDeferMaxIdle {
		return false, false
	}
	congWin := quota * mss
	limit := min(room, congWin)
	if limit >= segs*mss || limit >= avail {
		return false, false
	}
	if limit >= min(c.snd.wnd, int(c.rec.cong.Cwnd)*mss)/tcpTSOWinDiv {
		return false, false
	}
	expectedAck := time.Duration(c.rec.sb.at(0).sent) + c.rtt.srtt
	if howFar := expectedAck - time.Duration(now); howFar > min(c.rtt.srtt/2, time.Millisecond) {
		return false, false
	}
	return true, congWin < room
}
