package stack_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/internal/clock"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
	"github.com/tapstack/tapstack/stack"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A neighbour that never answers ARP is one notable event: one log line,
// whatever number of packets were waiting.
func TestEventLogARPFailure(t *testing.T) {
	var logs lockedBuffer
	clk := clock.NewVirtual(time.Unix(1e9, 0))
	st, err := stack.New(stack.Config{Clock: clk, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	link, _ := driver.NewPipe(driver.PipeConfig{}, driver.PipeConfig{}) // nobody on the other end
	if err := st.Attach(link, netip.MustParsePrefix("10.3.0.1/24")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go st.DialContext(ctx, "tcp", "10.3.0.9:80")
	// The SYN waits in the new neighbour entry; then virtual time passes,
	// half a second at a time, until resolution has failed (Linux gives
	// up after mcast_solicit probes a second apart) — 30 s is ample.
	testwait.Until(t, "the SYN to wait for ARP", func() bool { v, _ := st.Stats().Get("ArpCacheAllocs"); return v > 0 })
	for i := 0; i < 60 && !strings.Contains(logs.String(), "ARP resolution failed"); i++ {
		clk.Advance(500 * time.Millisecond)
	}
	out := logs.String()
	if !strings.Contains(out, `msg="ARP resolution failed, dropping queued packets" neighbour=10.3.0.9`) {
		t.Fatalf("no ARP failure line:\n%s", out)
	}
	if v, _ := st.Stats().Get("ArpCacheResFailed"); v == 0 {
		t.Fatalf("ArpCacheResFailed not counted; log:\n%s", out)
	}
	if n := strings.Count(out, "ARP resolution failed"); n != 1 {
		t.Fatalf("%d lines for one failing neighbour within the rate limit:\n%s", n, out)
	}
}

// An accept queue overflowing and SYN-queue cookies are notable events, one
// rate-limited line each.
func TestEventLogListenPath(t *testing.T) {
	var logs lockedBuffer
	la, lb := driver.NewPipe(driver.PipeConfig{}, driver.PipeConfig{})
	srv, err := stack.New(stack.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli, _ := stack.New(stack.Config{})
	defer cli.Close()
	srv.Attach(la, netip.MustParsePrefix("10.5.0.1/24"))
	cli.Attach(lb, netip.MustParsePrefix("10.5.0.2/24"))
	ln, err := srv.ListenTCP(netip.MustParseAddrPort("10.5.0.1:80"), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// backlog+1 = 2 connections fit; the next two SYNs overflow the accept
	// queue and are dropped, so their dials are given up once the server
	// has counted the drop.
	for i := 0; i < 2; i++ {
		c, err := cli.Dial("tcp", "10.5.0.1:80")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	testwait.Until(t, "two connections in the accept queue", func() bool { _, q := ln.QueueLens(); return q == 2 })
	for i := 0; i < 2; i++ {
		overflows, _ := srv.Stats().Get("TcpExtListenOverflows")
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			c, err := cli.DialContext(ctx, "tcp", "10.5.0.1:80")
			if c != nil {
				c.Close()
			}
			errc <- err
		}()
		testwait.Until(t, "the SYN to overflow the accept queue", func() bool {
			v, _ := srv.Stats().Get("TcpExtListenOverflows")
			return v > overflows
		})
		cancel()
		if err := testwait.Recv(t, errc, "the dial to end"); err == nil {
			t.Fatal("a dial into a full accept queue succeeded")
		}
	}
	out := logs.String()
	for _, want := range []string{`msg="accept queue overflow`, `listener=10.5.0.1:80 backlog=1`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "accept queue overflow"); n != 1 {
		t.Errorf("%d overflow lines within the rate limit, want 1:\n%s", n, out)
	}
}
