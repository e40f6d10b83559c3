package stack_test

import (
	"fmt"
	"testing"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/internal/testenv/netnstest"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
	"github.com/tapstack/tapstack/stack"
)

// The tests know that the stack has dealt with what was sent to it by
// accounting, never by sleeping: every frame that leaves a sender is, at
// each hop, either still on its way or counted (handled, or dropped by a
// named counter). A wait ends when the counts at the far end add up to the
// counts at the near end. The far end's counters are read first: they only
// grow, and never past the near end's, so when they add up nothing was
// between the two at the moment of reading.

// stackSink is what the stack has finished with of the frames it read:
// each was handled to the end (SoftnetProcessed counts a frame after the
// protocols, and any reply they sent, are done with it) or dropped and
// counted on the way in.
func stackSink(c counterSet) uint64 {
	return c["SoftnetProcessed"] + c["SoftnetDropped"] + c["NetdevRxRunt"] + c["NetdevRxOtherHost"]
}

// pipeSource is what left a pipe end's impairment for the peer: what it was
// given and duplicated, less what it lost or dropped at its queue limit
// (frames held for delay or reordering are still on the way).
func pipeSource(s driver.PipeStats) uint64 {
	return s.Sent + s.Duplicated - s.Lost - s.QueueDrops
}

// pipeSide is one direction of a pipe: the stack at the receiving end and
// the end its peer (or a test injecting frames) sends from.
type pipeSide struct {
	st   *stack.Stack
	from *driver.PipeEnd
}

// pipeSettled reports whether every frame sent on sides has been dealt with
// by the stack it was sent to, with the counts it saw.
func pipeSettled(sides ...pipeSide) (bool, string) {
	sinks := make([]uint64, len(sides))
	for i, s := range sides {
		sinks[i] = stackSink(snapshot(s.st))
	}
	ok, state := true, ""
	for i, s := range sides {
		src := pipeSource(s.from.Stats())
		ok = ok && sinks[i] == src
		state += fmt.Sprintf("[side %d: %d frames sent, %d dealt with] ", i, src, sinks[i])
	}
	return ok, state
}

// settle waits until no frame is on its way on either direction of the
// pipe between a (behind la) and b (behind lb). Timers may still send later
// (a delayed ACK, a retransmission): what settle gives is that everything
// sent so far, and every reply it caused, has been handled.
func settle(t *testing.T, a, b *stack.Stack, la, lb *driver.PipeEnd) {
	t.Helper()
	testwait.UntilState(t, "the pipe to go quiet", func() (bool, string) {
		return pipeSettled(pipeSide{a, lb}, pipeSide{b, la})
	})
}

// settle waits until the pair's pipe is quiet (see the function settle).
func (p *boundPair) settle(t *testing.T) {
	t.Helper()
	settle(t, p.a, p.b, p.la, p.lb)
}

// tapDrained reports whether every frame the kernel queued on tap0 has been
// dealt with: none waits in the root qdisc or the TAP's ring, and each one
// the stack read it has finished with. Frames the qdisc or the TAP dropped
// are counted by the kernel (tc -s qdisc drops, ip -s link tx_dropped). It
// returns the stack's counters and the kernel's it compared.
func tapDrained(t *testing.T, ns *netnstest.NS, st *stack.Stack) (bool, string, counterSet, tapLinkStats) {
	c := snapshot(st)
	k := readTapStats(t, ns)
	sink := stackSink(c)
	ok := k.QdiscQlen == 0 && k.QdiscSent == k.TxPackets+k.TxDropped && sink == k.TxPackets
	return ok, fmt.Sprintf("qdisc sent %d, queued %d; tap tx_packets %d tx_dropped %d; stack finished with %d",
		k.QdiscSent, k.QdiscQlen, k.TxPackets, k.TxDropped, sink), c, k
}

// drain waits until the stack has dealt with every frame the kernel has
// queued on tap0 (see tapDrained) and returns both sides' counters then.
// After a packet is written into the namespace (a raw socket's sendto
// queues it on tap0 before returning), a drain means the stack has handled
// it and sent whatever it answers.
func drain(t *testing.T, ns *netnstest.NS, st *stack.Stack) (counterSet, tapLinkStats) {
	t.Helper()
	var (
		c counterSet
		k tapLinkStats
	)
	testwait.UntilState(t, "the stack to deal with every frame on tap0", func() (bool, string) {
		var ok bool
		var state string
		ok, state, c, k = tapDrained(t, ns, st)
		return ok, state
	})
	return c, k
}

// hopCheck compares the counts of two adjacent hops of a path.
func hopCheck(t *testing.T, what string, got, want uint64) {
	t.Helper()
	if got != want {
		t.Errorf("%s: %d != %d (off by %d)", what, got, want, int64(got)-int64(want))
	}
}

// kernelToStack accounts hop by hop for sent packets the namespace wrote
// into tap0 (k is the kernel's delta over the same span as the stack's
// counter delta d, both taken when drained): from the root qdisc through
// the TAP's ring, the netdev layer and IP to TCP, every packet is counted
// once. The few frames the kernel sent of its own (ARP) come on top; their
// number is returned, and must be small.
//
//	sent + own       = qdisc sent + qdisc dropped              (kernel, tap0 root qdisc)
//	qdisc sent       = tap tx_packets + tx_dropped              (kernel, TAP ring)
//	tap tx_packets   = NetdevRxFrames                           (every frame the stack read)
//	NetdevRxFrames   = SoftnetProcessed + SoftnetDropped + runt + other-host
//	SoftnetProcessed = IpInReceives + non-IPv4 frames (ARP)
//	IpInReceives     = TcpInSegs + IcmpInMsgs + IP-level drops
func kernelToStack(t *testing.T, sent int, k tapLinkStats, d counterSet) (own int64) {
	t.Helper()
	ipDrops := d["IpInHdrErrors"] + d["IpInAddrErrors"] + d["IpInUnknownProtos"] + d["IpInDiscards"] + d["IpExtInCsumErrors"] + d["IpExtInTruncatedPkts"]
	nonIP := d["SoftnetProcessed"] - d["IpInReceives"]
	own = int64(k.QdiscSent+k.QdiscDrop) - int64(sent)
	t.Logf("hops: %d sent; kernel: qdisc sent %d dropped %d, tap tx_packets %d tx_dropped %d, own frames %d; "+
		"netdev: RxFrames %d = SoftnetProcessed %d + SoftnetDropped %d + runt %d + other-host %d (TimeSqueeze %d); "+
		"ip: InReceives %d (non-IPv4 %d, IP drops %d) = TcpInSegs %d + IcmpInMsgs %d + IP drops",
		sent, k.QdiscSent, k.QdiscDrop, k.TxPackets, k.TxDropped, own,
		d["NetdevRxFrames"], d["SoftnetProcessed"], d["SoftnetDropped"], d["NetdevRxRunt"], d["NetdevRxOtherHost"], d["SoftnetTimeSqueeze"],
		d["IpInReceives"], nonIP, ipDrops, d["TcpInSegs"], d["IcmpInMsgs"])
	if own < 0 || own > 16 {
		t.Errorf("the qdisc saw %d frames for %d packets sent: %d unexplained", k.QdiscSent+k.QdiscDrop, sent, own)
	}
	hopCheck(t, "qdisc sent = tap tx_packets + tx_dropped", k.QdiscSent, k.TxPackets+k.TxDropped)
	hopCheck(t, "tap tx_packets = NetdevRxFrames", k.TxPackets, d["NetdevRxFrames"])
	hopCheck(t, "NetdevRxFrames = SoftnetProcessed + SoftnetDropped + runt + other-host", d["NetdevRxFrames"],
		d["SoftnetProcessed"]+d["SoftnetDropped"]+d["NetdevRxRunt"]+d["NetdevRxOtherHost"])
	hopCheck(t, "IpInReceives = TcpInSegs + IcmpInMsgs + IP drops", d["IpInReceives"], d["TcpInSegs"]+d["IcmpInMsgs"]+ipDrops)
	// End to end: every packet sent is one of these (the own frames are
	// the non-IPv4 ones, plus any of them the backlog dropped).
	accounted := k.QdiscDrop + k.TxDropped + d["SoftnetDropped"] + d["NetdevRxRunt"] + d["NetdevRxOtherHost"] +
		d["TcpInSegs"] + d["IcmpInMsgs"] + ipDrops + nonIP
	if got := int64(accounted) - int64(sent); got != own {
		t.Errorf("end to end: %d frames accounted for, %d packets sent + %d own frames", accounted, sent, own)
	}
	return own
}

// pipeToTCP accounts hop by hop for n packets injected from B's pipe end
// into A (d: A's counter deltas with B's end's queue drops as "pipeDrops",
// taken once the pipe is settled): each was dropped at the pipe's queue
// limit, by the backlog, at IP, or reached TCP or reassembly.
func pipeToTCP(t *testing.T, n int, d counterSet) {
	t.Helper()
	ipDrops := d["IpInHdrErrors"] + d["IpInAddrErrors"] + d["IpInUnknownProtos"] + d["IpInDiscards"] + d["IpExtInCsumErrors"] + d["IpExtInTruncatedPkts"]
	t.Logf("hops: %d injected; pipe queue drops %d; netdev: RxFrames %d = SoftnetProcessed %d + SoftnetDropped %d; ip: InReceives %d (drops %d, fragments %d) ; TcpInSegs %d",
		n, d["pipeDrops"], d["NetdevRxFrames"], d["SoftnetProcessed"], d["SoftnetDropped"], d["IpInReceives"], ipDrops, d["IpReasmReqds"], d["TcpInSegs"])
	hopCheck(t, "injected = pipe queue drops + NetdevRxFrames", uint64(n), d["pipeDrops"]+d["NetdevRxFrames"])
	hopCheck(t, "NetdevRxFrames = SoftnetProcessed + SoftnetDropped + runt + other-host", d["NetdevRxFrames"],
		d["SoftnetProcessed"]+d["SoftnetDropped"]+d["NetdevRxRunt"]+d["NetdevRxOtherHost"])
	hopCheck(t, "SoftnetProcessed = IpInReceives", d["SoftnetProcessed"], d["IpInReceives"])
	if d["IpReasmReqds"] == 0 {
		hopCheck(t, "IpInReceives = TcpInSegs + IP drops", d["IpInReceives"], d["TcpInSegs"]+ipDrops)
	}
}

// delta is k - before, hop by hop.
func (k tapLinkStats) delta(before tapLinkStats) tapLinkStats {
	return tapLinkStats{
		TxPackets: k.TxPackets - before.TxPackets, TxDropped: k.TxDropped - before.TxDropped,
		QdiscSent: k.QdiscSent - before.QdiscSent, QdiscDrop: k.QdiscDrop - before.QdiscDrop,
	}
}
