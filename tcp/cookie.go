package tcp

import (
	"time"

	"github.com/tapstack/tapstack/tcp/syncookie"
	"github.com/tapstack/tapstack/wire"
)

// syncookieValid is TCP_SYNCOOKIE_VALID: cookies are only checked for two
// minutes after the listener last sent one (tcp_synq_no_recent_overflow).
const syncookieValid = 2 * time.Minute

func encodeCookieTS(now uint32, wscale int, sack bool) uint32 {
	return syncookie.EncodeTimestamp(now, wscale, sack, false)
}

// cookieCheck handles an ACK with no request sock (Linux
// tcp_v4_cookie_check → cookie_v4_check). It returns the child, or rst
// when the listener must answer with a reset.
func (l *Listener) cookieCheck(sg *segment, out *outBatch, mtu int) (child *Conn, rst bool) {
	s := l.s
	m := &s.mib
	now := s.clock.Now()
	if s.sys.Syncookies.Load() == 0 || l.lastOverflow.IsZero() || now.Sub(l.lastOverflow) > syncookieValid {
		return nil, true
	}
	mss, ok := s.jar.Check(sg.remote, sg.local, uint32(sg.seq-1), uint32(sg.ack-1), now)
	if !ok {
		m.inc(cSyncookiesFailed)
		return nil, true
	}
	m.inc(cSyncookiesRecv)
	r := reqSock{l: l, key: tuple{sg.local, sg.remote}, iss: sg.ack - 1, irs: sg.seq - 1,
		peerMSS: mss, advMSS: uint16(max(mtu-headersLen(sg.remote.Addr()), 88)), sndWscale: -1,
		tsOff: s.tsOffset(sg.local, sg.remote)}
	r.rcvWnd = uint16(min(int(s.sys.RmemDefault.Load()), 0xffff))
	if sg.opts.HasTS && sg.opts.TSEcr != 0 && s.sys.Timestamps.Load() != 0 {
		// cookie_timestamp_decode: the options ride in the echoed TSval.
		ws, sack, _, _ := syncookie.DecodeTimestamp(sg.opts.TSEcr - r.tsOff)
		r.ts = true
		r.tsRecent = sg.opts.TSVal
		r.sack = sack && s.sys.Sack.Load() != 0
		if ws >= 0 && s.sys.WindowScaling.Load() != 0 {
			r.sndWscale = int8(ws)
			r.rcvWscale = wscaleFor(int(s.sys.RmemMax.Load()))
		}
	}
	if sg.has(wire.TCPFlagRST | wire.TCPFlagSYN) {
		return nil, false
	}
	c := l.synRecvSock(&r, sg, mtu)
	return c, false
}
