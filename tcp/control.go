package tcp

import (
	"encoding/binary"
	"net/netip"
	"syscall"
)

// ICMP types and codes TCP reacts to.
const (
	icmpDestUnreach = 3
	icmpFragNeeded  = 4
	icmpTimeExceed  = 11
)

// Control handles an ICMP error quoting one of our segments (Linux
// tcp_v4_err): src and dst are the quoted packet's addresses (ours, the
// peer's), quoted holds at least the first 8 bytes of its TCP header and
// mtu is the next-hop MTU of a fragmentation-needed message.
func (s *Stack) Control(typ, code uint8, mtu int, src, dst netip.Addr, quoted []byte) {
	if len(quoted) < 8 {
		return
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
	var out outBatch
	c.mu.Lock()
	if c.state != StateSynSent && !(seq.geq(c.sndUna) && seq.leq(c.sndNxt)) {
		c.mu.Unlock()
		return // out-of-window ICMP (OutOfWindowIcmps)
	}
	switch {
	case typ == icmpDestUnreach && code == icmpFragNeeded:
		c.mtuReduced(mtu, &out)
	case typ == icmpDestUnreach || typ == icmpTimeExceed:
		if c.state == StateSynSent || c.state == StateSynRecv {
			err := syscall.EHOSTUNREACH
			switch code {
			case 0:
				err = syscall.ENETUNREACH
			case 2:
				err = syscall.ENOPROTOOPT
			case 3:
				err = syscall.ECONNREFUSED
			}
			c.reset(err)
		}
		// Established connections treat these as soft errors (RFC 1122 §4.2.3.9).
	}
	c.armTimer()
	c.unlockSend(&out)
}

// mtuReduced mirrors tcp_v4_mtu_reduced + tcp_simple_retransmit: shrink
// the MSS to the path MTU and resend what is outstanding in smaller
// segments, without treating it as congestion.
func (c *Conn) mtuReduced(mtu int, out *outBatch) {
	m := mtu - 40
	if m < 68-40 || (c.pmtuMSS > 0 && m >= c.pmtuMSS) || m >= c.mss+tsLen(c) {
		return
	}
	c.pmtuMSS = max(m, 88)
	c.setMSS()
	if !c.state.synchronized() || c.sb.packetsOut == 0 {
		return
	}
	c.simpleRetransmit(out)
}

func tsLen(c *Conn) int {
	if c.tsOn {
		return tsOptLen
	}
	return 0
}
