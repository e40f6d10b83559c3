package tcp

import (
	"time"

	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/tcp/congestion"
	"github.com/tapstack/tapstack/wire"
)

// tsOptLen is the room timestamps take in every segment (NOP NOP TS).
const tsOptLen = 12

// synOptions fills the options of our SYN or SYN-ACK (tcp_syn_options /
// tcp_synack_options): MSS, then what both sides agreed to (or we offer).
func (c *Conn) synOptions(o *wire.TCPOptions) {
	*o = wire.TCPOptions{WScale: -1, HasMSS: true, MSS: uint16(c.rcv.advMSS)}
	if c.wsOn {
		o.WScale = int8(c.rcv.wscale)
	}
	o.SACKPermitted = c.sackOn
	if c.tsOn {
		o.HasTS = true
		o.TSVal = c.s.tsNow() + c.tsOff
		o.TSEcr = c.tsRecent
	}
}

// sendSegment builds one segment carrying the sequence space [seq, seq+n)
// of the send buffer (plus SYN/FIN flags) and queues it on out (Linux
// __tcp_transmit_skb). Every segment but the first SYN carries an ACK.
func (c *Conn) sendSegment(out *outBatch, seq seqnum, n int, flags uint8) {
	c.sendSuper(out, seq, n, flags, 0)
}

// sendSuper is sendSegment for a super-segment the device cuts into
// segments of gso payload bytes when gso is above 0 (a GSO skb): its
// checksum is left to the device, and it counts as the segments it becomes
// (tcp_skb_pcount).
func (c *Conn) sendSuper(out *outBatch, seq seqnum, n int, flags uint8, gso int) {
	var o wire.TCPOptions
	syn := flags&wire.TCPFlagSYN != 0
	if syn {
		c.synOptions(&o)
	} else {
		c.dataOptions(&o)
	}
	if !syn || c.state != StateSynSent {
		flags |= wire.TCPFlagACK
	}
	hl := wire.TCPMinHeaderLen + wire.TCPOptionsLen(&o)
	b := pkt.Get(hl + n)
	if n > 0 {
		c.snd.buf.readAt(seq.diff(c.snd.bufSeq), b.Append(n))
	}
	h := b.Prepend(hl)
	f := wire.TCPFields{
		SrcPort: c.id.local.Port(), DstPort: c.id.remote.Port(),
		Seq: uint32(seq), Flags: flags, Window: c.selectWindow(syn),
	}
	if flags&wire.TCPFlagACK != 0 {
		f.Ack = uint32(c.rcv.nxt)
		c.ackSent()
	}
	f.Encode(h)
	wire.EncodeTCPOptions(h[wire.TCPMinHeaderLen:], &o)
	if gso > 0 {
		c.s.mib.add(cOutSegs, uint64(pcount(n, gso)))
		out.push(c.id.local.Addr(), c.id.remote.Addr(), b, gso)
		return
	}
	seg := b.Bytes()
	wire.TCP(seg).SetChecksum(wire.TCPChecksum(c.id.local.Addr(), c.id.remote.Addr(), seg))
	c.s.mib.inc(cOutSegs)
	out.push(c.id.local.Addr(), c.id.remote.Addr(), b, 0)
}

// pcount is how many wire segments n payload bytes cut at mss make
// (tcp_skb_pcount).
func pcount(n, mss int) int { return max((n+mss-1)/mss, 1) }

// ackSent clears the delayed-ACK state once any ACK leaves (Linux
// tcp_event_ack_sent).
func (c *Conn) ackSent() {
	c.rcv.ofo.dsackOK = false
	c.rcv.ackPending = false
	c.rcv.ackNow = false
	c.rcv.unackedBytes = 0
	c.delackAt = 0
}

// sendAck sends a bare ACK now.
func (c *Conn) sendAck(out *outBatch) {
	c.sendSegment(out, c.snd.nxt, 0, 0)
}

// sendRst sends a RST for this connection (tcp_send_active_reset).
func (c *Conn) sendRst(out *outBatch) {
	f := wire.TCPFields{SrcPort: c.id.local.Port(), DstPort: c.id.remote.Port(),
		Seq: uint32(c.snd.nxt), Ack: uint32(c.rcv.nxt), Flags: wire.TCPFlagRST | wire.TCPFlagACK}
	c.s.sendBare(c.id.local.Addr(), c.id.remote.Addr(), &f, nil, out)
	c.s.mib.inc(cOutRsts)
}

// sendChallengeAck mirrors tcp_send_challenge_ack (RFC 5961 §3.2, §4.2,
// §5.2), rate limited by tcp_challenge_ack_limit.
func (c *Conn) sendChallengeAck(out *outBatch) {
	// tcp_send_challenge_ack: the per-socket limit first, then the global one.
	if c.oowRateLimitedAt(cTCPACKSkippedChallenge) || !c.s.challengeAllowed() {
		return
	}
	c.s.mib.inc(cTCPChallengeACK)
	c.sendAck(out)
}

// sendMSS is the payload that fits in the next segment: the MSS less the
// SACK option it will carry (Linux tcp_current_mss).
func (c *Conn) sendMSS() int {
	if l := c.sackOptLen(); l > 0 {
		return max(c.snd.mss-l, 64)
	}
	return c.snd.mss
}

// dataEnd is the sequence number just past the last byte written.
func (c *Conn) dataEnd() seqnum { return c.snd.bufSeq.add(c.snd.buf.n) }

// canSendData reports whether the state lets new data or a FIN go out.
func (c *Conn) canSendData() bool {
	switch c.state {
	case StateEstablished, StateCloseWait, StateFinWait1, StateClosing, StateLastAck:
		return true
	}
	return false
}

// checkPersist arms the persist timer when data waits (on a zero or too
// small window) and nothing is in flight to provoke a window update
// (tcp_check_probe_timer).
func (c *Conn) checkPersist() {
	if c.snd.una == c.snd.nxt && (c.dataEnd().gt(c.snd.nxt) || (c.snd.finQueued && !c.snd.finSent)) {
		if c.persistAt.IsZero() {
			c.persistAt = c.s.stampAfter(c.rtoBackoff())
		}
		return
	}
	c.persistAt = 0
}

// idleRestart mirrors tcp_cwnd_restart (net.ipv4.tcp_slow_start_after_idle
// = 1): after an idle period longer than the RTO, halve cwnd once per RTO
// idle, down to the initial window, and tell the algorithm (TxStart).
func (c *Conn) idleRestart() {
	if c.lastSend.IsZero() {
		return
	}
	idle := c.s.since(c.lastSend)
	if idle <= c.rtt.rto {
		return
	}
	c.rec.cc.CwndEvent(c.ccSender(), congestion.TxStart)
	restart := min(uint32(initCwnd), c.rec.cong.Cwnd)
	for d := idle / c.rtt.rto; d > 0 && c.rec.cong.Cwnd > restart; d-- {
		c.rec.cong.Cwnd >>= 1
	}
	c.rec.cong.Cwnd = max(c.rec.cong.Cwnd, restart)
}

// oowRateLimited reports whether a reply to an out-of-window segment must be
// skipped (Linux tcp_oow_rate_limited): two desynchronized ends would
// otherwise answer each other's ACKs in a loop. Data without SYN is never
// limited, since it is unlikely to be part of such a loop.
func (c *Conn) oowRateLimited(sg *segment, cnt counter) bool {
	if len(sg.payload) > 0 && !sg.has(wire.TCPFlagSYN) {
		return false
	}
	return c.oowRateLimitedAt(cnt)
}

// oowRateLimitedAt is __tcp_oow_rate_limited: at most one reply per
// net.ipv4.tcp_invalid_ratelimit per socket, each skip counted in cnt.
func (c *Conn) oowRateLimitedAt(cnt counter) bool {
	now := c.s.stampNow()
	limit := time.Duration(c.s.sys.InvalidRatelimit.Load()) * time.Millisecond
	if !c.lastOOWAck.IsZero() && time.Duration(now-c.lastOOWAck) < limit {
		c.s.mib.inc(cnt)
		return true
	}
	c.lastOOWAck = now
	return false
}
