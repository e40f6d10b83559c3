package tcp

import (
	"encoding/binary"
	"net/netip"
	"syscall"

	"github.com/tapstack/tapstack/wire"
)

// Control handles an ICMP error quoting one of our segments (Linux
// tcp_v4_err): src and dst are the quoted packet's addresses (ours, the
// peer's), quoted holds at least the first 8 bytes of its TCP header and
// mtu is the next-hop MTU of a fragmentation-needed message.
//
// Fragmentation needed shrinks the MSS to the path MTU. Any other error
// (icmp_err_convert's errno, EHOSTUNREACH for time exceeded, EPROTO for a
// parameter problem) aborts a connection still in its handshake, so
// connect(2) fails with it at once. An established connection keeps
// trying (RFC 1122 §4.2.3.9): the error is soft (sk_err_soft), forgotten
// when an ACK shows the path works, and reported in place of ETIMEDOUT if
// the connection times out.
func (s *Stack) Control(typ, code uint8, mtu int, src, dst netip.Addr, quoted []byte) {
	if len(quoted) < 8 {
		return
	}
	err, _, ok := wire.ICMPv4Errno(typ, code)
	if !ok {
		return // source quench (ignored, RFC 6633), redirect, unknown codes
	}
	id := tuple{netip.AddrPortFrom(src, binary.BigEndian.Uint16(quoted[0:])),
		netip.AddrPortFrom(dst, binary.BigEndian.Uint16(quoted[2:]))}
	seq := seqnum(binary.BigEndian.Uint32(quoted[4:]))
	s.mu.RLock()
	c := s.est[id]
	s.mu.RUnlock()
	if c == nil {
		return
	}
	if !c.tryLockSoftirq() {
		// Owned by a user call: a fragmentation-needed waits for the owner
		// (TCP_MTU_REDUCED_DEFERRED); another error is counted as dropped
		// and kept as the soft error it would have been.
		if typ == wire.ICMPv4DestUnreach && code == wire.ICMPv4FragNeeded {
			c.sl.deferred |= deferMTU
			c.sl.mtu, c.sl.mtuSeq = int32(mtu), seq
		} else {
			s.mib.inc(cLockDroppedIcmps)
			c.sl.softErr = uint8(err)
		}
		c.sl.mu.Unlock()
		return
	}
	var out outBatch
	if c.state != StateSynSent && !(seq.geq(c.snd.una) && seq.leq(c.snd.nxt)) {
		c.mu.Unlock()
		s.mib.inc(cOutOfWindowIcmps)
		return
	}
	switch {
	case typ == wire.ICMPv4DestUnreach && code == wire.ICMPv4FragNeeded:
		c.mtuReduced(mtu, &out)
	case c.state == StateSynSent || c.state == StateSynRecv:
		c.reset(err)
	case c.state.synchronized():
		c.errSoft = uint8(err)
		if typ == wire.ICMPv4DestUnreach && (code == wire.ICMPv4NetUnreach || code == wire.ICMPv4HostUnreach) {
			c.ldRTORevert(seq, &out)
		}
	}
	c.armTimer()
	c.unlockSend(&out)
}

// ldRTORevert is RFC 6069 (Linux tcp_ld_RTO_revert): a net or host
// unreachable about the segment at snd_una, while the RTO is backed off,
// says the segment did not get through because of a routing failure, not
// congestion. One backoff step is undone, and the retransmission timer is
// re-armed for what is left of the shorter timeout, or fires now if none
// is, so the connection notices a repaired path sooner.
func (c *Conn) ldRTORevert(seq seqnum, out *outBatch) {
	if seq != c.snd.una || c.rtt.retransmits == 0 || c.rtt.backoff == 0 || c.rec.sb.n == 0 {
		return
	}
	c.rtt.backoff--
	if left := c.rtoBackoff() - c.s.since(c.rec.sb.at(0).sent); left > 0 {
		c.resetXmitTimer(timerRTO, left)
		return
	}
	c.retransmitTimer(out)
}

// timedOut is tcp_write_err: the connection gives up, with the last soft
// ICMP error if there was one (a host unreachable says more than
// ETIMEDOUT).
func (c *Conn) timedOut() {
	err := syscall.ETIMEDOUT
	if c.errSoft != 0 {
		err = syscall.Errno(c.errSoft)
	}
	c.reset(err)
}

// mtuReduced mirrors tcp_v4_mtu_reduced + tcp_simple_retransmit: shrink
// the MSS to the path MTU and resend what is outstanding in smaller
// segments, without treating it as congestion.
func (c *Conn) mtuReduced(mtu int, out *outBatch) {
	m := mtu - headersLen(c.id.remote.Addr())
	if mtu < minMTU(c.id.remote.Addr()) || (c.snd.pmtuMSS > 0 && m >= c.snd.pmtuMSS) || m >= c.snd.mss+tsLen(c) {
		return
	}
	c.snd.pmtuMSS = max(m, 88)
	c.setMSS()
	if !c.state.synchronized() || c.rec.sb.packetsOut == 0 {
		return
	}
	c.simpleRetransmit(out)
}

// headersLen is the IP and TCP headers' length without options: what the
// MTU leaves for an MSS (Linux's advmss: dst_mtu − sizeof iphdr or ipv6hdr
// − sizeof tcphdr).
func headersLen(a netip.Addr) int {
	if a.Unmap().Is4() {
		return 20 + 20
	}
	return 40 + 20
}

// minMTU is the smallest path MTU a fragmentation-needed or Packet Too Big
// may set: IPv4's 68 (RFC 791), IPv6's 1280 (RFC 8200 §5).
func minMTU(a netip.Addr) int {
	if a.Unmap().Is4() {
		return 68
	}
	return 1280
}

func tsLen(c *Conn) int {
	if c.tsOn {
		return tsOptLen
	}
	return 0
}
