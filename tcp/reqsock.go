package tcp

import (
	"log/slog"
	"syscall"
	"time"

	"github.com/tapstack/tapstack/internal/clock"
	"github.com/tapstack/tapstack/wire"
)

// reqSock is a request sock in the SYN queue (Linux tcp_request_sock):
// just what the handshake needs, no buffers.
type reqSock struct {
	l          *Listener
	key        tuple
	iss, irs   seqnum
	peerMSS    uint16
	advMSS     uint16
	sndWscale  int8 // peer's shift, -1 none
	rcvWscale  uint8
	sack, ts   bool
	tsRecent   uint32
	tsOff      uint32
	rcvWnd     uint16 // window advertised in the SYN-ACK
	numTimeout int
	acked      bool  // an ACK was seen but could not complete (inet_rsk(req)->acked)
	pending    bool  // a forwarder's handler has not answered: no SYN-ACK yet
	pendRounds uint8 // timer rounds spent pending (they are not retransmissions)
	sentAt     time.Time
	timer      clock.Timer
	fr         *ForwarderRequest // the forwarder's handle on it, nil on a listener
}

// input handles a segment for this listener's port (Linux tcp_v4_do_rcv
// on a LISTEN socket, with tcp_check_req for known requests).
func (l *Listener) input(sg *segment, out *outBatch) {
	mtu := 1500
	if _, m, err := l.s.net.Route(sg.remote.Addr()); err == nil && m > 0 {
		mtu = m
	}
	var child *Conn
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		l.s.sendReset(sg, out)
		return
	case l.synq[tuple{sg.local, sg.remote}] != nil:
		child = l.checkReq(l.synq[tuple{sg.local, sg.remote}], sg, out, mtu)
	case sg.has(wire.TCPFlagACK) && !sg.has(wire.TCPFlagSYN) && !sg.has(wire.TCPFlagRST):
		var rst bool
		child, rst = l.cookieCheck(sg, out, mtu)
		if rst {
			l.s.sendReset(sg, out)
		}
	case sg.has(wire.TCPFlagACK) && !sg.has(wire.TCPFlagRST):
		l.s.sendReset(sg, out) // SYN+ACK: tcp_rcv_state_process answers any ACK with a RST
	case sg.has(wire.TCPFlagRST):
	case sg.has(wire.TCPFlagSYN) && !sg.has(wire.TCPFlagFIN):
		l.connRequest(sg, out, mtu)
	default:
		// tcp_rcv_state_process, TCP_LISTEN: SYN+FIN, a bare FIN or no
		// flags at all is discarded silently (SKB_DROP_REASON_TCP_FLAGS);
		// answering would reflect a FIN flood 1:1.
		l.s.mib.inc(cTCPFlagsDrop)
	}
	l.mu.Unlock()
	if child != nil {
		child.input(sg, out) // the final ACK may carry data (tcp_child_process)
	}
}

// connRequest handles a SYN (Linux tcp_conn_request).
func (l *Listener) connRequest(sg *segment, out *outBatch, mtu int) {
	s := l.s
	m := &s.mib
	cookies := s.sys.Syncookies.Load()
	wantCookie := false
	if cookies == 2 || l.synqFull() {
		// tcp_syn_flood_action
		if cookies != 0 {
			m.inc(cTCPReqQFullDoCookies)
			wantCookie = true
			if cookies == 1 {
				s.ev.synFloodCookies.Log(slog.String("listener", sg.local.String()))
			}
		} else {
			m.inc(cTCPReqQFullDrop)
			m.inc(cListenDrops)
			s.ev.synFloodDrop.Log(slog.String("listener", sg.local.String()))
			return
		}
	}
	if l.acceptqFull() {
		m.inc(cListenOverflows)
		m.inc(cListenDrops)
		s.ev.acceptOverflow.Log(slog.String("listener", sg.local.String()), slog.Int("backlog", l.backlog))
		return
	}
	if !wantCookie && cookies == 0 {
		// Without cookies keep the last quarter of tcp_max_syn_backlog for
		// peers proven alive (tcp_peer_is_proven).
		maxSyn := int(s.sys.MaxSynBacklog.Load())
		if maxSyn-len(l.synq) < maxSyn>>2 && !s.peerIsProven(sg.remote.Addr()) {
			m.inc(cListenDrops)
			return
		}
	}
	now := s.clock.Now()
	r := reqSock{l: l, key: tuple{sg.local, sg.remote}, irs: sg.seq, sndWscale: -1,
		advMSS: uint16(max(mtu-headersLen(sg.remote.Addr()), 88)), peerMSS: 536, tsOff: s.tsOffset(sg.local, sg.remote)}
	o := &sg.opts
	if o.HasMSS && o.MSS > 0 {
		r.peerMSS = o.MSS
	}
	r.ts = o.HasTS && s.sys.Timestamps.Load() != 0
	r.sack = o.SACKPermitted && s.sys.Sack.Load() != 0
	if o.WScale >= 0 && s.sys.WindowScaling.Load() != 0 {
		r.sndWscale = o.WScale
		r.rcvWscale = wscaleFor(int(s.sys.RmemMax.Load()))
	}
	r.tsRecent = o.TSVal
	r.rcvWnd = uint16(min(int(s.sys.RmemDefault.Load()), 0xffff))
	if wantCookie {
		if !r.ts { // the options cannot be encoded without timestamps
			r.sack, r.sndWscale, r.rcvWscale = false, -1, 0
		}
		isn, mss := s.jar.Make(sg.remote, sg.local, uint32(sg.seq), r.peerMSS, now)
		r.iss, r.peerMSS = seqnum(isn), mss
		l.lastOverflow = now // tcp_synq_overflow
		m.inc(cSyncookiesSent)
		l.sendSynAck(&r, out, true)
		return
	}
	r.iss = s.isn(sg.local, sg.remote, now)
	rp := new(reqSock)
	*rp = r
	l.synq[r.key] = rp
	l.young++
	if l.fwd != nil {
		// The forwarder's handler answers, on its own goroutine.
		rp.pending = true
		rp.fr = l.fwdRequest(rp.key, nil)
	} else {
		l.sendSynAck(rp, out, false)
	}
	rp.timer = s.clock.AfterFunc(initRTO, rp.onTimer)
}

// sendSynAck builds the SYN-ACK for r (tcp_v4_send_synack).
func (l *Listener) sendSynAck(r *reqSock, out *outBatch, cookie bool) {
	s := l.s
	o := wire.TCPOptions{WScale: -1, HasMSS: true, MSS: r.advMSS, SACKPermitted: r.sack}
	if r.sndWscale >= 0 {
		o.WScale = int8(r.rcvWscale)
	}
	if r.ts {
		o.HasTS = true
		now := s.tsNow()
		if cookie {
			// cookie_init_timestamp: the low bits carry wscale and SACK.
			now = encodeCookieTS(now, int(r.sndWscale), r.sack)
		}
		o.TSVal = now + r.tsOff
		o.TSEcr = r.tsRecent
	}
	f := wire.TCPFields{SrcPort: r.key.local.Port(), DstPort: r.key.remote.Port(),
		Seq: uint32(r.iss), Ack: uint32(r.irs + 1), Flags: wire.TCPFlagSYN | wire.TCPFlagACK, Window: r.rcvWnd}
	s.sendBare(r.key.local.Addr(), r.key.remote.Addr(), &f, &o, out)
	r.sentAt = s.clock.Now()
}

// onTimer is reqsk_timer_handler: retransmit the SYN-ACK with exponential
// backoff from 1 s until tcp_synack_retries, then drop the request.
func (r *reqSock) onTimer() {
	l := r.l
	s := l.s
	var out outBatch
	l.mu.Lock()
	if l.closed || l.synq[r.key] != r {
		l.mu.Unlock()
		return
	}
	maxRetries := int(s.sys.SynackRetries.Load())
	if r.pending {
		// Waiting for the handler: no SYN-ACK to repeat; give up after the
		// time the retransmissions would have taken.
		if int(r.pendRounds) >= maxRetries {
			l.dropReq(r)
			r.fr.finishLocked(nil, syscall.ETIMEDOUT)
		} else {
			r.pendRounds++
			r.timer.Reset(min(initRTO<<r.pendRounds, maxRTO))
		}
		l.mu.Unlock()
		return
	}
	qlen := len(l.synq)
	if qlen<<1 > max(8, l.backlog) {
		// Under pressure old requests get fewer retries than young ones.
		young := l.young << 1
		for maxRetries > 2 {
			if qlen < young {
				break
			}
			maxRetries--
			young <<= 1
		}
	}
	// syn_ack_recalc
	var expire, resend bool
	if l.deferRounds == 0 {
		expire, resend = r.numTimeout >= maxRetries, true
	} else {
		expire = r.numTimeout >= maxRetries && (!r.acked || r.numTimeout >= l.deferRounds)
		resend = !r.acked || r.numTimeout >= l.deferRounds-1
	}
	if !expire {
		if resend {
			l.sendSynAck(r, &out, false)
			s.mib.inc(cRetransSegs)
			s.mib.inc(cTCPSynRetrans)
		}
		if r.numTimeout == 0 {
			l.young--
		}
		r.numTimeout++
		r.timer.Reset(min(initRTO<<r.numTimeout, maxRTO))
	} else {
		l.dropReq(r)
		if r.fr != nil {
			r.fr.finishLocked(nil, syscall.ETIMEDOUT)
		}
	}
	l.mu.Unlock()
	s.flush(&out)
}

// dropReq removes r from the SYN queue (inet_csk_reqsk_queue_drop).
func (l *Listener) dropReq(r *reqSock) {
	if l.synq[r.key] != r {
		return
	}
	delete(l.synq, r.key)
	if r.numTimeout == 0 {
		l.young--
	}
	if r.timer != nil {
		r.timer.Stop()
	}
}

// checkReq handles a segment for a pending request (Linux tcp_check_req).
// It returns the child when the handshake completes.
func (l *Listener) checkReq(r *reqSock, sg *segment, out *outBatch, mtu int) *Conn {
	s := l.s
	m := &s.mib
	flags := sg.flags & (wire.TCPFlagSYN | wire.TCPFlagACK | wire.TCPFlagRST)
	if r.pending {
		// The peer has seen nothing of us yet: its retransmitted SYN waits
		// for the handler with the first, and only a RST in sequence ends
		// the request.
		if flags&wire.TCPFlagRST != 0 && sg.seq == r.irs+1 {
			m.inc(cEmbryonicRsts)
			l.dropReq(r)
			r.fr.finishLocked(nil, syscall.ECONNRESET)
		}
		return nil
	}
	if sg.seq == r.irs && flags == wire.TCPFlagSYN {
		// A retransmitted SYN: retransmit the SYN-ACK (inet_rtx_syn_ack).
		l.sendSynAck(r, out, false)
		m.inc(cRetransSegs)
		m.inc(cTCPSynRetrans)
		return nil
	}
	if sg.has(wire.TCPFlagACK) && sg.ack != r.iss+1 {
		s.sendReset(sg, out)
		return nil
	}
	rcvNxt := r.irs + 1
	wndEnd := rcvNxt.add(int(r.rcvWnd))
	if !(sg.seq == rcvNxt || (sg.end().gt(rcvNxt) && sg.seq.lt(wndEnd))) {
		if !sg.has(wire.TCPFlagRST) {
			l.sendReqAck(r, out)
		}
		return nil
	}
	if sg.seq == r.irs {
		flags &^= wire.TCPFlagSYN
	}
	if flags&(wire.TCPFlagRST|wire.TCPFlagSYN) != 0 {
		m.inc(cAttemptFails)
		if flags&wire.TCPFlagRST == 0 {
			s.sendReset(sg, out)
		}
		m.inc(cEmbryonicRsts)
		l.dropReq(r)
		if r.fr != nil {
			r.fr.finishLocked(nil, syscall.ECONNRESET)
		}
		return nil
	}
	if flags&wire.TCPFlagACK == 0 {
		return nil
	}
	if r.numTimeout < l.deferRounds && sg.end() == rcvNxt {
		// TCP_DEFER_ACCEPT: a bare ACK does not complete the handshake.
		r.acked = true
		m.inc(cTCPDeferAcceptDrop)
		return nil
	}
	if r.ts && sg.opts.HasTS {
		r.tsRecent = sg.opts.TSVal
	}
	child := l.synRecvSock(r, sg, mtu)
	if child == nil {
		if s.sys.AbortOnOverflow.Load() == 0 {
			r.acked = true
			return nil
		}
		s.sendReset(sg, out)
		m.inc(cEmbryonicRsts)
		l.dropReq(r)
		return nil
	}
	l.dropReq(r)
	if r.fr != nil {
		r.fr.finishLocked(child, nil)
	}
	return child
}

// sendReqAck answers an out-of-window segment for a request (req_send_ack).
func (l *Listener) sendReqAck(r *reqSock, out *outBatch) {
	f := wire.TCPFields{SrcPort: r.key.local.Port(), DstPort: r.key.remote.Port(),
		Seq: uint32(r.iss + 1), Ack: uint32(r.irs + 1), Flags: wire.TCPFlagACK, Window: r.rcvWnd >> r.rcvWscale}
	var o *wire.TCPOptions
	if r.ts {
		o = &wire.TCPOptions{WScale: -1, HasTS: true, TSVal: l.s.tsNow() + r.tsOff, TSEcr: r.tsRecent}
	}
	l.s.sendBare(r.key.local.Addr(), r.key.remote.Addr(), &f, o, out)
}

// synRecvSock creates the child socket (Linux tcp_v4_syn_recv_sock and
// tcp_create_openreq_child), or refuses when the accept queue is full.
func (l *Listener) synRecvSock(r *reqSock, sg *segment, mtu int) *Conn {
	s := l.s
	m := &s.mib
	if l.acceptqFull() {
		m.inc(cListenOverflows)
		m.inc(cListenDrops)
		s.ev.acceptOverflow.Log(slog.String("listener", r.key.local.String()), slog.Int("backlog", l.backlog))
		return nil
	}
	c := s.newConn(r.key, mtu)
	c.incomingCPU.Store(int32(sg.shard))
	c.snd.iss, c.rcv.irs = r.iss, r.irs
	c.snd.una, c.snd.nxt, c.snd.bufSeq = r.iss+1, r.iss+1, r.iss+1
	c.rcv.nxt = r.irs + 1
	c.rcv.wup = c.rcv.nxt
	c.rcv.edge = c.rcv.nxt.add(int(r.rcvWnd))
	c.tsOn, c.sackOn = r.ts, r.sack
	c.wsOn = r.sndWscale >= 0
	if c.wsOn {
		c.snd.wscale, c.rcv.wscale = uint8(r.sndWscale), r.rcvWscale
	} else {
		c.snd.wscale, c.rcv.wscale = 0, 0
	}
	c.tsOff, c.tsRecent, c.tsRecentStamp = r.tsOff, r.tsRecent, s.stampNow()
	c.snd.peerMSS = int(r.peerMSS)
	c.rcv.advMSS = int(r.advMSS)
	c.setMSS()
	c.snd.wnd = int(sg.wnd) << c.snd.wscale
	c.snd.maxWnd = c.snd.wnd
	c.snd.wl1, c.snd.wl2 = sg.seq, sg.ack
	if r.numTimeout == 0 && !r.sentAt.IsZero() {
		c.rttSample(s.clock.Now().Sub(r.sentAt)) // tcp_synack_rtt_meas
	}
	if !s.insert(c) {
		m.inc(cListenDrops)
		return nil
	}
	m.inc(cPassiveOpens)
	c.mu.Lock()
	c.establish()
	if l.fwd == nil {
		c.listener = l
	}
	c.mu.Unlock()
	s.markProven(r.key.remote.Addr())
	if l.fwd != nil {
		// A forwarder's child goes to its request's Accept, or — completed
		// by a syncookie, with no request — to a new handler call.
		if r.fr == nil {
			l.fwdRequest(r.key, c)
		}
		return c
	}
	l.acceptq = append(l.acceptq, c)
	l.notify()
	return c
}
