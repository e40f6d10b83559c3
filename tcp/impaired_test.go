package tcp_test

// Two whole stacks (netdev, IPv4, TCP) over an in-memory Ethernet pipe
// with the impairment of stack's TestInteropDialKernel100MBImpaired: this
// measures loss recovery on its own, without a kernel peer. It lives here
// as an external test so it may use the layers above tcp.

import (
	"io"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/stack"
)

var pipeImpairment = driver.Impairment{LossPercent: 3, ReorderPercent: 5, DupPercent: 1, Delay: time.Millisecond}

// impairedPipeTransfer sends size bytes from stack A to stack B through
// the impaired pipe and returns the time and A's counters.
func impairedPipeTransfer(tb testing.TB, size int64, seed int64) (time.Duration, stack.Stats) {
	tb.Helper()
	ia, ib := pipeImpairment, pipeImpairment
	ia.Seed, ib.Seed = seed, seed+1
	la, lb := driver.NewPipe(driver.PipeConfig{Impair: ia}, driver.PipeConfig{Impair: ib})
	a, err := stack.New(stack.Config{Sysctls: senderSysctls()})
	if err != nil {
		tb.Fatal(err)
	}
	b, err := stack.New(stack.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	if err := a.Attach(la, netip.MustParsePrefix("10.9.0.1/24")); err != nil {
		tb.Fatal(err)
	}
	if err := b.Attach(lb, netip.MustParsePrefix("10.9.0.2/24")); err != nil {
		tb.Fatal(err)
	}
	ln, err := b.Listen("tcp", "10.9.0.2:9000")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		n, _ := io.Copy(io.Discard, c)
		got <- n
	}()
	if os.Getenv("TAPSTACK_IMPAIRED_TRACE") != "" {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Millisecond):
				}
				for _, si := range a.Sockets() {
					if si.State == "ESTAB" || si.State == "ESTABLISHED" {
						tb.Logf("cwnd %d ssthresh %d sndwnd %d rtt %v rto? sendq %d retrans %d", si.Cwnd, si.Ssthresh, si.SndWnd, si.RTT, si.SendQ, si.Retrans)
					}
				}
			}
		}()
	}
	start := time.Now()
	c, err := a.Dial("tcp", "10.9.0.2:9000")
	if err != nil {
		tb.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for sent := int64(0); sent < size; {
		n, err := c.Write(buf[:min(int64(len(buf)), size-sent)])
		if err != nil {
			tb.Fatalf("write after %d bytes: %v", sent, err)
		}
		sent += int64(n)
	}
	c.(interface{ CloseWrite() error }).CloseWrite()
	if n := <-got; n != size {
		tb.Fatalf("received %d of %d bytes", n, size)
	}
	d := time.Since(start)
	c.Close()
	return d, a.Stats()
}

// TestImpairedPipeThroughput moves TAPSTACK_IMPAIRED_MB (default 8) MB
// through the impaired pipe and logs the time and the recovery counters.
func TestImpairedPipeThroughput(t *testing.T) {
	mb := int64(8)
	if v, err := strconv.Atoi(os.Getenv("TAPSTACK_IMPAIRED_MB")); err == nil && v > 0 {
		mb = int64(v)
	}
	if testing.Short() {
		mb = 2
	}
	d, st := impairedPipeTransfer(t, mb<<20, 1)
	var line string
	for _, n := range []string{"TcpRetransSegs", "TcpExtTCPTimeouts", "TcpExtTCPFastRetrans", "TcpExtTCPSlowStartRetrans",
		"TcpExtTCPSackRecovery", "TcpExtTCPLostRetransmit", "TcpExtTCPLossProbes", "TcpExtTCPDSACKRecv", "TcpExtTCPSACKReorder",
		"TcpExtTCPFullUndo", "TcpExtTCPPartialUndo", "TcpExtTCPDSACKUndo", "TcpExtTCPLossUndo", "TcpExtTCPSpuriousRTOs"} {
		if v, ok := st.Get(n); ok {
			line += " " + n + "=" + strconv.FormatUint(v, 10)
		}
	}
	t.Logf("%d MB in %v (%.1f MB/s);%s", mb, d.Round(time.Millisecond), float64(mb)/d.Seconds(), line)
}

// senderSysctls lets TAPSTACK_IMPAIRED_CC pick the sender's algorithm.
func senderSysctls() map[string]string {
	if cc := os.Getenv("TAPSTACK_IMPAIRED_CC"); cc != "" {
		return map[string]string{"net.ipv4.tcp_congestion_control": cc}
	}
	return nil
}
