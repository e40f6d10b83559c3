package tcp

import (
	"net/netip"
	"sort"
	"time"
)

// SocketInfo is one ss(8)-style row.
type SocketInfo struct {
	State         string
	Local, Remote netip.AddrPort
	// RecvQ/SendQ: unread and unacknowledged bytes; for LISTEN, the accept
	// queue length and the backlog (like ss).
	RecvQ, SendQ   int
	Timer          string // on, keepalive, timewait, persist, delack or ""
	TimerLeft      time.Duration
	Retrans        int
	RTT, RTTVar    time.Duration
	Cwnd, Ssthresh int
	MSS            int
	RcvWnd, SndWnd int
	SynQueue       int // LISTEN: request socks in the SYN queue
	Backlog        int // LISTEN: sk_max_ack_backlog
	Cookie         bool
	// SkBacklog is the socket backlog's charge in bytes (sk_backlog.len,
	// skmem's bl): segments that came while a user call owned the socket.
	SkBacklog int
}

// Sockets lists listeners then connections, sorted by address.
func (s *Stack) Sockets() []SocketInfo {
	s.mu.RLock()
	ls := make([]*Listener, 0, len(s.listeners))
	for _, g := range s.listeners {
		ls = append(ls, g...) // each member of a reuseport group with its own queues
	}
	cs := make([]*Conn, 0, len(s.est))
	for _, c := range s.est {
		cs = append(cs, c)
	}
	s.mu.RUnlock()
	var rows []SocketInfo
	now := s.clock.Now()
	for _, l := range ls {
		l.mu.Lock()
		rows = append(rows, SocketInfo{State: StateListen.String(), Local: l.addr, RecvQ: len(l.acceptq),
			SendQ: l.backlog, SynQueue: len(l.synq), Backlog: l.backlog,
			Cookie: !l.lastOverflow.IsZero() && now.Sub(l.lastOverflow) < syncookieValid})
		for _, r := range l.synq {
			// Request socks show as SYN-RECV, like ss on Linux.
			rows = append(rows, SocketInfo{State: StateSynRecv.String(), Local: r.key.local, Remote: r.key.remote,
				Timer: "on", Retrans: r.numTimeout, MSS: int(r.peerMSS)})
		}
		l.mu.Unlock()
	}
	for _, c := range cs {
		c.lockSock()
		r := SocketInfo{State: c.state.String(), Local: c.id.local, Remote: c.id.remote,
			RecvQ: c.rcv.buf.n, // SendQ is write_seq - snd_una, as Linux reports it.
			SendQ: max(c.dataEnd().diff(c.snd.una), 0), Retrans: c.rtt.retransmits, RTT: c.rtt.srtt, RTTVar: c.rtt.rttvar,
			Cwnd: int(c.rec.cong.Cwnd), Ssthresh: int(c.rec.cong.Ssthresh), MSS: c.snd.mss, RcvWnd: c.rcv.edge.diff(c.rcv.nxt), SndWnd: c.snd.wnd}
		if c.state == StateTimeWait || c.state == StateSynSent {
			r.SendQ = 0
		}
		nowStamp := s.stampNow()
		for _, t := range []struct {
			at   stamp
			name string
		}{{c.rtoAt, "on"}, {c.tlpAt, "on"}, {c.reoAt, "on"}, {c.persistAt, "persist"}, {c.keepAt, "keepalive"},
			{c.twAt, "timewait"}, {c.delackAt, "delack"}} {
			if left := time.Duration(t.at - nowStamp); !t.at.IsZero() && (r.Timer == "" || left < r.TimerLeft) {
				r.Timer, r.TimerLeft = t.name, left
			}
		}
		r.SkBacklog = c.backlogLen()
		c.release()
		rows = append(rows, r)
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].Local != rows[j].Local {
			return rows[i].Local.Addr().Less(rows[j].Local.Addr()) ||
				rows[i].Local.Addr() == rows[j].Local.Addr() && rows[i].Local.Port() < rows[j].Local.Port()
		}
		return rows[i].Remote.Port() < rows[j].Remote.Port()
	})
	return rows
}
