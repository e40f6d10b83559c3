package tcp

import (
	"time"

	"github.com/tapstack/tapstack/tcp/congestion"
)

// extCC adapts a tcp/congestion Algorithm (Linux tcp_congestion_ops) to the
// connection: the Sender is filled from the Conn before each hook and the
// window copied back after.
type extCC struct {
	alg congestion.Algorithm
	snd congestion.Sender
}

func newExternalCC(name string, hc *congestion.HyStartCounters) congestionControl {
	alg, err := congestion.NewWithCounters(name, hc)
	if err != nil {
		alg, err = congestion.NewWithCounters(congestion.Default, hc)
		if err != nil {
			return nil
		}
	}
	return &extCC{alg: alg}
}

func (e *extCC) load(c *Conn) *congestion.Sender {
	s := &e.snd
	s.Cwnd, s.Ssthresh, s.CwndCnt = c.cwnd, c.ssthresh, c.cwndCnt
	s.MSS = c.mss
	s.PacketsOut = uint32(c.sb.packetsOut)
	s.CwndLimited = c.isCwndLimited()
	s.SRTT, s.MinRTT = c.srtt, c.minRTT
	s.Now = c.s.clock.Now()
	return s
}

func (e *extCC) store(c *Conn) {
	c.cwnd, c.ssthresh, c.cwndCnt = max(e.snd.Cwnd, 1), e.snd.Ssthresh, e.snd.CwndCnt
}

func (e *extCC) name() string { return e.alg.Name() }

func (e *extCC) init(c *Conn) {
	e.alg.Init(e.load(c))
	e.store(c)
}

func (e *extCC) ssthresh(c *Conn) uint32 { return e.alg.SsThresh(e.load(c)) }

func (e *extCC) congAvoid(c *Conn, acked uint32) {
	e.alg.CongAvoid(e.load(c), acked)
	e.store(c)
}

func (e *extCC) pktsAcked(c *Conn, acked uint32, rtt time.Duration) {
	e.alg.PktsAcked(e.load(c), acked, rtt)
	e.store(c)
}

func (e *extCC) setState(c *Conn, st caState) {
	e.alg.SetState(e.load(c), congestion.State(st))
	e.store(c)
}

func (e *extCC) cwndEvent(c *Conn, ev ccEvent) {
	var x congestion.Event
	switch ev {
	case ccTxStart:
		x = congestion.TxStart
	case ccCwndRestart:
		x = congestion.CwndRestart
	case ccCompleteCWR:
		x = congestion.CompleteCWR
	default:
		x = congestion.EventLoss
	}
	e.alg.CwndEvent(e.load(c), x)
	e.store(c)
}

func (e *extCC) undoCwnd(c *Conn) uint32 { return e.alg.UndoCwnd(e.load(c)) }
