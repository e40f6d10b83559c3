package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/tapstack/tapstack/examples/internal/cmdtest"
	"github.com/tapstack/tapstack/internal/testenv/netnstest"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
)

// The test runs the real command: this test binary re-executed with
// TAPSTACK_HTTP_MAIN=1 runs main() with the given flags.
const mainEnv = "TAPSTACK_HTTP_MAIN"

func TestMain(m *testing.M) {
	if cmdtest.Main(mainEnv, main) {
		return
	}
	os.Exit(m.Run())
}

// curl, the kernel's HTTP client, fetches the page and 8 MiB of /bytes from
// examples/http on a TAP.
func TestCurlFetchesFromExample(t *testing.T) {
	ns := netnstest.New(t)
	srv := cmdtest.Start(t, mainEnv, "tapstack http: http://10.0.0.2:80/", "-netns", ns.Name(), "-tap", "tap0", "-port", "80")
	maxTime := strconv.Itoa(testwait.SecondsLeft(t)) // curl waits as long as the test
	page, err := ns.Run("curl", "-sS", "--max-time", maxTime, "http://10.0.0.2/")
	if err != nil || !strings.Contains(page, "<h1>Hello from tapstack</h1>") {
		t.Fatalf("curl /: %v\n%s", err, page)
	}
	const n = 8 << 20
	want := make([]byte, n)
	for i := range want {
		want[i] = byte(i % (64 << 10))
	}
	sum, err := ns.Run("sh", "-c", fmt.Sprintf("curl -sS --max-time %s 'http://10.0.0.2/bytes?n=%d' | sha256sum", maxTime, n))
	if w := fmt.Sprintf("%x", sha256.Sum256(want)); err != nil || !strings.HasPrefix(sum, w) {
		t.Fatalf("curl /bytes: %v: %q, want %s", err, sum, w)
	}
	if code, _ := ns.Run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://10.0.0.2/bytes?n=x"); code != "400" {
		t.Errorf("bad n: HTTP %s, want 400", code)
	}
	if out := srv.Stop(); !strings.Contains(out, "TcpPassiveOpens") {
		t.Errorf("no counter report at exit:\n%s", out)
	}
}

// TestH2LoadAgainstExample is the load a user puts on a web server:
// h2load (nghttp2's benchmark client, HTTP/1.1) from the kernel side, 50
// connections at once, first keep-alive and then a connection per request.
// Every request must succeed, and the counters must be clean: no frame lost
// on any hop (the kernel's TAP queue, the stack's backlog, IP), no listen
// overflow, no reset, and no retransmission but by a timer (on a busy
// machine a stalled process may wait out an RTO; nothing was lost, so loss
// recovery must never start). Bounded by count, not by time.
func TestH2LoadAgainstExample(t *testing.T) {
	ns := netnstest.New(t)
	netnstest.RequireTool(t, "h2load")
	srv := cmdtest.Start(t, mainEnv, "tapstack http: http://10.0.0.2:80/", "-netns", ns.Name(), "-tap", "tap0", "-port", "80", "-tap-qlen", "2000")
	if link := ns.MustIP("link", "show", "dev", "tap0"); !strings.Contains(link, "qlen 2000") {
		t.Fatalf("-tap-qlen 2000 did not reach the TAP: %s", link)
	}
	ctx, cancel := context.WithDeadline(context.Background(), testwait.Deadline(t))
	defer cancel()
	runs := []struct {
		name string
		n    int
		args []string
	}{
		{"keep-alive", 20000, nil},
		{"connection per request", 2000, []string{"-H", "Connection: close"}},
	}
	for _, r := range runs {
		args := append([]string{"h2load", "--h1", "-n", strconv.Itoa(r.n), "-c", "50", "-t", "1"}, r.args...)
		args = append(args, "http://10.0.0.2/bytes?n=100")
		out, err := ns.Command(ctx, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", r.name, err, out)
		}
		want := fmt.Sprintf("requests: %d total, %d started, %d done, %d succeeded, 0 failed, 0 errored, 0 timeout", r.n, r.n, r.n, r.n)
		if !strings.Contains(string(out), want) || !strings.Contains(string(out), fmt.Sprintf("status codes: %d 2xx", r.n)) {
			t.Fatalf("%s: want %q and %d 2xx:\n%s", r.name, want, r.n, out)
		}
	}
	var tap []struct {
		Stats64 struct {
			Tx struct {
				Packets, Dropped uint64
			} `json:"tx"`
		} `json:"stats64"`
	}
	js := ns.MustIP("-s", "-j", "link", "show", "dev", "tap0")
	if err := json.Unmarshal([]byte(js), &tap); err != nil || len(tap) != 1 {
		t.Fatalf("ip -s -j link: %v: %s", err, js)
	}
	c := nstatCounters(srv.Stop())
	t.Logf("tap tx_packets %d tx_dropped %d; TcpInSegs %d TcpOutSegs %d TcpRetransSegs %d TCPTimeouts %d TCPLossProbes %d",
		tap[0].Stats64.Tx.Packets, tap[0].Stats64.Tx.Dropped, c["TcpInSegs"], c["TcpOutSegs"], c["TcpRetransSegs"], c["TcpExtTCPTimeouts"], c["TcpExtTCPLossProbes"])
	if tap[0].Stats64.Tx.Dropped != 0 {
		t.Errorf("the kernel dropped %d frames at the TAP's queue", tap[0].Stats64.Tx.Dropped)
	}
	if n, ok := c["TcpPassiveOpens"]; !ok || n != uint64(50+runs[1].n) {
		t.Errorf("TcpPassiveOpens %d, want %d (50 keep-alive connections and one per request)", n, 50+runs[1].n)
	}
	for _, name := range []string{"SoftnetDropped", "IpInDiscards", "IpInHdrErrors", "IpOutDiscards", "TcpInErrs",
		"TcpInCsumErrors", "TcpExtListenOverflows", "TcpExtListenDrops", "TcpEstabResets", "TcpAttemptFails",
		"TcpExtTCPAbortOnData", "TcpExtTCPAbortOnClose", "TcpExtTCPAbortOnMemory", "TcpExtTCPAbortOnTimeout",
		"TcpExtTCPFastRetrans", "TcpExtTCPSackRecovery", "TcpExtTCPRenoRecovery", "TcpExtTCPLostRetransmit"} {
		if v, ok := c[name]; !ok || v != 0 {
			t.Errorf("%s = %d (present %v), want 0", name, v, ok)
		}
	}
	if re, timers := c["TcpRetransSegs"], c["TcpExtTCPTimeouts"]+c["TcpExtTCPLossProbes"]+c["TcpExtTCPSynRetrans"]; re > timers {
		t.Errorf("%d retransmissions, only %d by a timer: loss recovery ran on a link that lost nothing", re, timers)
	}
}

// nstatCounters parses the nstat-style report the example prints at exit.
func nstatCounters(report string) map[string]uint64 {
	c := map[string]uint64{}
	for _, line := range strings.Split(report, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != "0.0" {
			continue
		}
		if v, err := strconv.ParseUint(f[1], 10, 64); err == nil {
			c[f[0]] = v
		}
	}
	return c
}
