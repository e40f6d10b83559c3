package tcp

// State is a TCP connection state (RFC 9293 §3.3.2), numbered like Linux.
type State uint8

const (
	StateEstablished State = iota + 1
	StateSynSent
	StateSynRecv
	StateFinWait1
	StateFinWait2
	StateTimeWait
	StateClose
	StateCloseWait
	StateLastAck
	StateListen
	StateClosing
)

var stateNames = [...]string{
	StateEstablished: "ESTAB", StateSynSent: "SYN-SENT", StateSynRecv: "SYN-RECV",
	StateFinWait1: "FIN-WAIT-1", StateFinWait2: "FIN-WAIT-2", StateTimeWait: "TIME-WAIT",
	StateClose: "UNCONN", StateCloseWait: "CLOSE-WAIT", StateLastAck: "LAST-ACK",
	StateListen: "LISTEN", StateClosing: "CLOSING",
}

// String is the ss(8) name of the state.
func (st State) String() string {
	if int(st) < len(stateNames) && stateNames[st] != "" {
		return stateNames[st]
	}
	return "UNKNOWN"
}

// synchronized reports whether the handshake has completed (RFC 9293 §3.10.7.4).
func (st State) synchronized() bool {
	return st != StateSynSent && st != StateClose && st != StateListen && st != StateSynRecv
}

// setState is the one place a connection changes state; it keeps CurrEstab,
// EstabResets and AttemptFails like Linux tcp_set_state and tcp_done.
func (c *Conn) setState(st State) {
	old := c.state
	if old == st {
		return
	}
	m := &c.s.mib
	wasEst := old == StateEstablished || old == StateCloseWait
	isEst := st == StateEstablished || st == StateCloseWait
	if isEst && !wasEst {
		m.inc(cCurrEstab)
	} else if wasEst && !isEst {
		m.dec(cCurrEstab)
	}
	switch st {
	case StateClose:
		if wasEst {
			m.inc(cEstabResets)
		}
		if old == StateSynSent || old == StateSynRecv {
			m.inc(cAttemptFails)
		}
	}
	c.state = st
	c.notifyAll()
}
