package stack_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/internal/testenv/netnstest"
	"github.com/tapstack/tapstack/stack"
)

// The kernel sender of these tests runs CUBIC, whatever the machine's
// default (this project's machines default to BBR, which does not treat
// loss as congestion): the comparison is of loss recovery, with the same
// congestion control on both sides.
const kernelCC = "cubic"

// kernelServer listens on 10.0.0.1:9000 in ns with congestion control cc
// ("": the kernel's default).
// A connection's first byte says what to do: 'u' hash what arrives and
// answer the SHA-256 (an upload), 'd' send size bytes of pattern 2.
func kernelServer(t *testing.T, ns *netnstest.NS, cc string, size int64) {
	t.Helper()
	lc := net.ListenConfig{Control: func(network, address string, rc syscall.RawConn) error {
		if cc == "" {
			return nil
		}
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptString(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CONGESTION, cc)
		}); err != nil {
			return err
		}
		return serr
	}}
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = lc.Listen(context.Background(), "tcp", "10.0.0.1:9000"); return err }); err != nil {
		t.Fatalf("kernel listener with %s: %v", cc, err)
	}
	serve(t, ln, func(c net.Conn) {
		var mode [1]byte
		if _, err := io.ReadFull(c, mode[:]); err != nil {
			return
		}
		if mode[0] == 'u' {
			h := sha256.New()
			io.Copy(h, c)
			c.Write(h.Sum(nil))
			return
		}
		io.Copy(c, newPattern(2, size))
	})
}

// lossCounters are the stack's recovery counters a loss test reports.
var lossCounters = []string{"TcpRetransSegs", "TcpExtTCPTimeouts", "TcpExtTCPSackRecovery", "TcpExtTCPFastRetrans",
	"TcpExtTCPLostRetransmit", "TcpExtTCPLossProbes", "TcpExtTCPLossProbeRecovery", "TcpExtTCPDSACKRecv",
	"TcpExtTCPDSACKUndo", "TcpExtTCPFullUndo", "TcpExtTCPPartialUndo", "TcpExtTCPLossUndo", "TcpExtTCPSpuriousRTOs",
	"TcpExtTCPSACKReorder", "TcpExtTCPOFOQueue", "TcpExtTCPOFODrop"}

func counterLine(t *testing.T, st *stack.Stack) string {
	var b strings.Builder
	for _, n := range lossCounters {
		b.WriteString(" " + strings.TrimPrefix(strings.TrimPrefix(n, "TcpExt"), "Tcp") + "=" + strconv.FormatUint(counter(t, st, n), 10))
	}
	return b.String()
}

// TestInteropImpaired100MBBothWays moves 100 MB each way between the stack
// and a kernel socket through a link that loses 3 %, reorders 5 % and
// duplicates 1 % of frames with 1 ms of delay each way. This kernel has
// no sch_netem, so driver.Impair applies the impairment to the TAP's
// frames in both directions, on the stack's side of the same wire: the
// stack's upload and the kernel's download cross the same impaired path,
// and the stack's sender must take no more than 2.5× the time the kernel's
// CUBIC sender takes in the same test (the bench's target is 1.5×; the
// margin absorbs a loaded machine). The transfers are digest-checked, and
// every frame the impairment dropped on the way out was retransmitted.
func TestInteropImpaired100MBBothWays(t *testing.T) {
	impair := driver.Impairment{LossPercent: 3, ReorderPercent: 5, DupPercent: 1, Delay: time.Millisecond}
	var link *driver.ImpairedLink
	ns, st := tapStackWrapped(t, nil, func(l stack.Link) stack.Link {
		send, recv := impair, impair
		send.Seed, recv.Seed = 1, 2
		link = driver.NewImpaired(l, driver.ImpairConfig{Send: send, Recv: recv})
		return link
	})
	const size = 100 << 20
	kernelServer(t, ns, kernelCC, size)
	sentBefore := link.SendStats()
	up := timedTransfer(t, st, size, 'u')
	upStats := link.SendStats()
	retrans := counter(t, st, "TcpRetransSegs")
	down := timedTransfer(t, st, size, 'd')
	ratio := up.Seconds() / down.Seconds()
	t.Logf("100 MB up (tapstack CUBIC sends) %v, down (kernel %s sends) %v: %.2f× the kernel;%s", up.Round(time.Millisecond),
		kernelCC, down.Round(time.Millisecond), ratio, counterLine(t, st))
	lost := upStats.Lost - sentBefore.Lost
	if retrans < lost/2 || retrans > 3*lost {
		// The lost frames of the upload are mostly data; the few pure
		// ACKs among them need no retransmission.
		t.Errorf("retransmitted %d segments for %d frames lost on the way out", retrans, lost)
	}
	if ratio > 2.5 {
		t.Errorf("the stack's sender took %.2f× the kernel sender's time through the same impaired link", ratio)
	}
}

// timedTransfer dials the kernel server and uploads (mode 'u') or
// downloads ('d') size bytes, checks the SHA-256 and returns the time.
func timedTransfer(t *testing.T, st *stack.Stack, size int64, mode byte) time.Duration {
	t.Helper()
	start := time.Now()
	c, err := st.Dial("tcp", "10.0.0.1:9000")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{mode})
	if mode == 'u' {
		if _, err := io.Copy(c, newPattern(1, size)); err != nil {
			t.Fatalf("upload: %v", err)
		}
		c.(interface{ CloseWrite() error }).CloseWrite()
		got, err := io.ReadAll(c)
		h := sha256.New()
		io.Copy(h, newPattern(1, size))
		if err != nil || !bytes.Equal(got, h.Sum(nil)) {
			t.Fatalf("upload digest: %v: got %x", err, got)
		}
		return time.Since(start)
	}
	h := sha256.New()
	n, err := io.Copy(h, c)
	w := sha256.New()
	io.Copy(w, newPattern(2, size))
	if err != nil || n != size || !bytes.Equal(h.Sum(nil), w.Sum(nil)) {
		t.Fatalf("download: %v: %d of %d bytes", err, n, size)
	}
	return time.Since(start)
}

// iptablesDrops returns the packet counts of the DROP rules of chain in
// ns's filter table, in rule order.
func iptablesDrops(t *testing.T, ns *netnstest.NS, chain string) []uint64 {
	t.Helper()
	out, err := ns.Run("iptables", "-w", "-L", chain, "-n", "-v", "-x")
	if err != nil {
		t.Fatalf("iptables -L %s: %v: %s", chain, err, out)
	}
	var drops []uint64
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > 2 && f[2] == "DROP" {
			n, _ := strconv.ParseUint(f[0], 10, 64)
			drops = append(drops, n)
		}
	}
	return drops
}

// TestInteropIptablesLossAccounting is the lossy path (iptables
// statistic drops of 3 % of TCP packets in the kernel's namespace) with
// every dropped packet accounted for, while the stack sends 16 MB. The
// rules sit where a drop is a real loss: INPUT drops the stack's data
// after it crossed the TAP, OUTPUT drops the kernel's ACKs (Linux ignores
// an ACK's transmit error). A drop of the kernel's own data in OUTPUT
// would not be a loss at all: ip_local_out's NF_DROP fails the
// transmission, the segment stays queued and tcp_write_xmit sends it again
// without a retransmission or a congestion response, so no kernel sender
// is measured that way here. Data segments (over 100 bytes) and pure ACKs
// have separate rules, so the test knows exactly how many of the stack's
// data segments were lost: each must have been retransmitted, and
// needless retransmissions stay few.
func TestInteropIptablesLossAccounting(t *testing.T) {
	netnstest.RequireTool(t, "iptables") // loss in the kernel's path
	ns, st := tapStack(t, nil)
	rules := [][]string{
		{"INPUT", "101:65535"}, // the stack's data
		{"INPUT", "0:100"},     // the stack's pure ACKs (few: it only sends)
		{"OUTPUT", "0:100"},    // the kernel's ACKs
	}
	for _, r := range rules {
		if out, err := ns.Run("iptables", "-w", "-A", r[0], "-p", "tcp", "-m", "length", "--length", r[1],
			"-m", "statistic", "--mode", "random", "--probability", "0.03", "-j", "DROP"); err != nil {
			t.Fatalf("iptables: %v: %s", err, out)
		}
	}
	const size = 16 << 20
	kernelServer(t, ns, kernelCC, size)
	up := timedTransfer(t, st, size, 'u')
	in := iptablesDrops(t, ns, "INPUT")
	out := iptablesDrops(t, ns, "OUTPUT")
	retrans := counter(t, st, "TcpRetransSegs")
	if len(in) != 2 || len(out) != 1 {
		t.Fatalf("iptables rules: INPUT %v OUTPUT %v", in, out)
	}
	t.Logf("16 MB up %v (%.0f Mbit/s); dropped %d of our data segments, %d of our ACKs, %d of the kernel's ACKs;%s",
		up.Round(time.Millisecond), float64(size*8)/up.Seconds()/1e6, in[0], in[1], out[0], counterLine(t, st))
	if segs := uint64(size / 1448); in[0] < segs/100 || out[0] == 0 {
		t.Fatalf("dropped %d data segments of ~%d and %d ACKs: the loss did not apply", in[0], segs, out[0])
	}
	if retrans < in[0] {
		t.Errorf("%d of our data segments were dropped but only %d retransmitted", in[0], retrans)
	}
	if retrans > in[0]+in[0]/2+20 {
		t.Errorf("%d retransmissions for %d dropped data segments: too many needless ones", retrans, in[0])
	}
}
