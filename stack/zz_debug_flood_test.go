package stack_test

import (
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/synflood"
)

func TestZZDebugFlood(t *testing.T) {
	ns, st := floodNS(t)
	ln, err := st.ListenTCP(netip.MustParseAddrPort("10.0.0.2:7"), floodBacklog)
	if err != nil {
		t.Fatal(err)
	}
	echoServer(t, ln)
	cmd := ns.Command(t.Context(), "tcpdump", "-i", "tap0", "-n", "-w", "/tmp/flooddbg.pcap", "-B", "65536", "not net 198.18.0.0/15")
	cmd.Stderr = os.Stderr
	cmd.Start()
	time.Sleep(time.Second)
	before := snapshot(st)
	go flood(ns, synflood.Config{Target: netip.MustParseAddrPort("10.0.0.2:7"), Sources: floodSources, Rate: floodRate, Duration: 6 * time.Second})
	time.Sleep(300 * time.Millisecond)
	var res []connectResult
	runInNS(t, ns, 4*time.Minute, "connect", connectArgs{
		Addr: "10.0.0.2:7", Sequential: 200, Spacing: 20 * time.Millisecond,
		Timeout: 60 * time.Second, Probe: 60 * time.Second, Echo: "legit client under a SYN flood",
	}, &res)
	time.Sleep(7 * time.Second)
	d := quiesce(t, st).delta(before)
	t.Logf("probes %v PassiveOpens %d CookieRecv %d Failed %d EstabResets %d OutRsts %d Challenge %d SYNChallenge %d AttemptFails %d EmbryonicRsts %d",
		countOutcomes(res, probeOutcome), d["TcpPassiveOpens"], d["TcpExtSyncookiesRecv"], d["TcpExtSyncookiesFailed"], d["TcpEstabResets"], d["TcpOutRsts"],
		d["TcpExtTCPChallengeACK"], d["TcpExtTCPSYNChallenge"], d["TcpAttemptFails"], d["TcpExtEmbryonicRsts"])
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
}
