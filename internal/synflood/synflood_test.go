package synflood

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapstack/tapstack/internal/netnstest"
	"github.com/tapstack/tapstack/wire"
)

func TestGeneratorWritesValidSYNs(t *testing.T) {
	tests := []struct {
		name    string
		sources string
	}{
		{"slash15", "198.18.0.0/15"},
		{"slash32", "198.18.7.9/32"},
		{"unmasked", "198.19.200.1/16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Target: netip.MustParseAddrPort("10.99.0.1:8080"), Sources: netip.MustParsePrefix(tt.sources)}
			g := newGenerator(cfg, 42)
			var b [synLen]byte
			for i := 0; i < 1000; i++ {
				g.fill(b[:])
				if got := ^wire.Checksum(b[:ipHeaderLen], 0); got != 0 {
					t.Fatalf("IP header checksum does not verify: %#04x", got)
				}
				src := netip.AddrFrom4([4]byte(b[12:16]))
				if !cfg.Sources.Masked().Contains(src) {
					t.Fatalf("source %v outside %v", src, cfg.Sources)
				}
				tcp := b[ipHeaderLen:]
				ph := wire.PseudoHeaderSum(src, cfg.Target.Addr(), unix.IPPROTO_TCP, len(tcp))
				if got := ^wire.Checksum(tcp, ph); got != 0 {
					t.Fatalf("TCP checksum does not verify: %#04x", got)
				}
				if port := binary.BigEndian.Uint16(tcp[2:]); port != 8080 || tcp[13] != 0x02 {
					t.Fatalf("dst port %d flags %#x, want 8080 SYN", port, tcp[13])
				}
			}
		})
	}
}

func TestTokenBucketPaces(t *testing.T) {
	start := time.Unix(0, 0)
	b := tokenBucket{rate: 1000, burst: batchSize, last: start}
	total := 0
	for ms := 1; ms <= 1000; ms++ {
		total += b.take(start.Add(time.Duration(ms)*time.Millisecond), batchSize)
	}
	if total < 990 || total > 1000 {
		t.Fatalf("1 s at 1000/s gave %d tokens", total)
	}
}

func TestValidate(t *testing.T) {
	ok := Config{Target: netip.MustParseAddrPort("10.0.0.1:80"), Sources: netip.MustParsePrefix("198.18.0.0/15"), Count: 1}
	tests := []struct {
		name string
		mut  func(*Config)
		bad  bool
	}{
		{"ok", func(*Config) {}, false},
		{"unbounded", func(c *Config) { c.Count = 0 }, true},
		{"v6 target", func(c *Config) { c.Target = netip.MustParseAddrPort("[::1]:80") }, true},
		{"no sources", func(c *Config) { c.Sources = netip.Prefix{} }, true},
		{"negative rate", func(c *Config) { c.Rate = -1 }, true},
	}
	for _, tt := range tests {
		c := ok
		tt.mut(&c)
		if err := c.validate(context.Background()); (err != nil) != tt.bad {
			t.Errorf("%s: err=%v, want error %v", tt.name, err, tt.bad)
		}
	}
}

// TestFloodKernelListener floods a kernel listener (backlog 16) inside a
// fresh netns and expects the kernel to answer with syncookies: that proves
// the SYNs arrive with valid checksums and are counted as real SYNs.
func TestFloodKernelListener(t *testing.T) {
	fl, ns := pair(t)

	target := netip.MustParseAddrPort("10.99.0.1:8080")
	const count = 20000
	var sent int
	var elapsed time.Duration
	lfd := listen(t, ns, target, 16)
	defer unix.Close(lfd)
	err := fl.Do(func() error {
		start := time.Now()
		var err error
		sent, err = Flood(context.Background(), Config{Target: target,
			Sources: netip.MustParsePrefix("198.18.0.0/15"), Count: count, Duration: 10 * time.Second})
		elapsed = time.Since(start)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if sent != count {
		t.Fatalf("sent %d SYNs, want %d", sent, count)
	}
	t.Logf("unpaced: %d SYNs in %v = %.0f SYN/s", sent, elapsed, float64(sent)/elapsed.Seconds())
	time.Sleep(100 * time.Millisecond)
	c := counters(t, ns)
	t.Logf("TcpExtSyncookiesSent=%d TcpExtListenDrops=%d TcpExtTCPReqQFullDoCookies=%d TcpInCsumErrors=%d",
		c["TcpExtSyncookiesSent"], c["TcpExtListenDrops"], c["TcpExtTCPReqQFullDoCookies"], c["TcpInCsumErrors"])
	if c["TcpExtSyncookiesSent"]+c["TcpExtListenDrops"] < count/2 {
		t.Errorf("kernel counted %d cookies + %d listen drops for %d SYNs", c["TcpExtSyncookiesSent"], c["TcpExtListenDrops"], count)
	}
	if c["TcpInCsumErrors"] != 0 {
		t.Errorf("TcpInCsumErrors = %d", c["TcpInCsumErrors"])
	}
}

// TestFloodRate paces floods at 20k and 100k SYN/s (what the benchmarks
// need) against a kernel listener whose cookie counter must follow.
func TestFloodRate(t *testing.T) {
	fl, ns := pair(t)
	target := netip.MustParseAddrPort("10.99.0.1:9")
	lfd := listen(t, ns, target, 16)
	defer unix.Close(lfd)
	for _, rate := range []int{20000, 100000} {
		var sent int
		d := 500 * time.Millisecond
		before := counters(t, ns)["TcpExtSyncookiesSent"]
		err := fl.Do(func() error {
			var err error
			sent, err = Flood(context.Background(), Config{Target: target,
				Sources: netip.MustParsePrefix("198.18.0.0/15"), Rate: rate, Duration: d})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		cookies := counters(t, ns)["TcpExtSyncookiesSent"] - before
		got := float64(sent) / d.Seconds()
		t.Logf("rate %d: sent %.0f SYN/s, kernel sent %d cookies for %d SYNs", rate, got, cookies, sent)
		// The bucket must never overshoot. Undershoot is only logged: on two
		// cores shared with other test binaries the flooder can starve (it
		// holds 100k SYN/s when the machine is quiet, see the log line).
		if got > 1.05*float64(rate) || sent == 0 {
			t.Errorf("rate %d: sent %.0f SYN/s", rate, got)
		}
		if cookies < uint64(sent)/2 {
			t.Errorf("rate %d: %d cookies for %d SYNs", rate, cookies, sent)
		}
	}
}

// listen opens a kernel listener with the given backlog inside ns.
func listen(t *testing.T, ns *netnstest.NS, addr netip.AddrPort, backlog int) int {
	t.Helper()
	var lfd int
	err := ns.Do(func() error {
		var err error
		if lfd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		if err := unix.Bind(lfd, &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}); err != nil {
			return err
		}
		return unix.Listen(lfd, backlog)
	})
	if err != nil {
		t.Fatal(err)
	}
	return lfd
}

// pair links a flooder netns to a listener netns over veth (10.99.0.2 ↔
// 10.99.0.1). The listener routes the spoofed prefix back to the flooder,
// which blackholes it: SYN-ACKs leave the listener and die one hop later. (A
// blackhole in the listener's own netns would make the kernel drop the SYN
// before answering it, since route_req fails.)
func pair(t *testing.T) (flooder, listener *netnstest.NS) {
	flooder, listener = netnstest.New(t), netnstest.New(t)
	flooder.MustIP("link", "add", "fl0", "type", "veth", "peer", "name", "li0", "netns", listener.Name())
	flooder.AddrAdd("fl0", "10.99.0.2/24")
	flooder.LinkUp("fl0")
	flooder.MustIP("route", "add", "blackhole", "198.18.0.0/15")
	listener.AddrAdd("li0", "10.99.0.1/24")
	listener.LinkUp("li0")
	listener.MustIP("route", "add", "198.18.0.0/15", "via", "10.99.0.2")
	return flooder, listener
}

// counters reads /proc/net/snmp and /proc/net/netstat inside the netns with
// nstat-style names (TcpExtSyncookiesSent, TcpInCsumErrors).
func counters(t *testing.T, ns *netnstest.NS) map[string]uint64 {
	t.Helper()
	m := map[string]uint64{}
	for _, f := range []string{"/proc/net/snmp", "/proc/net/netstat"} {
		out, err := ns.Run("cat", f)
		if err != nil {
			t.Fatal(err)
		}
		if err := parseProcNet(out, m); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// parseProcNet reads pairs of "Prefix: names" / "Prefix: values" lines.
func parseProcNet(s string, m map[string]uint64) error {
	sc := bufio.NewScanner(bytes.NewBufferString(s))
	for sc.Scan() {
		names := strings.Fields(sc.Text())
		if !sc.Scan() {
			return fmt.Errorf("odd line count in /proc/net file")
		}
		vals := strings.Fields(sc.Text())
		if len(names) != len(vals) || len(names) == 0 {
			return fmt.Errorf("mismatched lines %q / %q", names, vals)
		}
		prefix := strings.TrimSuffix(names[0], ":")
		for i := 1; i < len(names); i++ {
			v, err := strconv.ParseInt(vals[i], 10, 64)
			if err == nil {
				m[prefix+names[i]] = uint64(v)
			}
		}
	}
	return nil
}

// BenchmarkFill is the per-SYN cost of building a packet (no allocation).
func BenchmarkFill(b *testing.B) {
	g := newGenerator(Config{Target: netip.MustParseAddrPort("10.99.0.1:80"), Sources: netip.MustParsePrefix("198.18.0.0/15")}, 1)
	var p [synLen]byte
	b.ReportAllocs()
	for b.Loop() {
		g.fill(p[:])
	}
}
