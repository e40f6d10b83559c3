package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapstack/tapstack/internal/testenv/synflood"
	"golang.org/x/sys/unix"
)

type clientFlags struct {
	workload string
	target   string
	n        int
	conc     int
	dur      time.Duration
	timeout  time.Duration
	rate     int
	warmup   time.Duration
	maxTime  time.Duration
	close    bool
	tool     string
	requests int
	cc       string
	size     int
}

func (f *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.workload, "client-workload", "", "internal: bulk | download | cps | rtt | hold | flood | http | udpblast | udprtt | fwd")
	fs.StringVar(&f.target, "client-target", "", "internal: server addr:port")
	fs.IntVar(&f.n, "client-n", 0, "internal: MB (bulk, download), pings (rtt, udprtt), connections (hold, fwd), legit connects (flood), datagrams (udpblast)")
	fs.IntVar(&f.conc, "client-conc", 1, "internal: client goroutines")
	fs.DurationVar(&f.dur, "client-duration", time.Second, "internal: duration (cps)")
	fs.DurationVar(&f.timeout, "client-timeout", 2*time.Second, "internal: per-connection timeout")
	fs.IntVar(&f.rate, "client-rate", 0, "internal: flood SYN/s")
	fs.DurationVar(&f.warmup, "client-warmup", time.Second, "internal: flood time before the legit connects")
	fs.BoolVar(&f.close, "client-close", false, "internal: http: a connection per request (Connection: close)")
	fs.StringVar(&f.tool, "client-tool", "h2load", "internal: http: h2load | ab")
	fs.IntVar(&f.requests, "client-requests", 30000, "internal: http with -client-close: requests")
	fs.StringVar(&f.cc, "client-cc", ccDefault, "internal: congestion control of the kernel client sockets")
	fs.DurationVar(&f.maxTime, "client-max-time", 0, "internal: bulk, download: stop after this long and report bytes delivered ÷ elapsed (0: transfer all n MB); udpblast: stop sending after this long")
	fs.IntVar(&f.size, "client-size", 64, "internal: udpblast: payload bytes per datagram")
}

// clientResult is the JSON line a client prints: named metrics.
type clientResult struct {
	Metrics map[string]float64
	Note    string `json:",omitempty"`
	// CC is the congestion control the client's sockets ran, read back
	// from a live connection ("" if none was made).
	CC string `json:",omitempty"`
}

func runClient(f clientFlags) error {
	target, err := netip.ParseAddrPort(f.target)
	if err != nil {
		return err
	}
	var r clientResult
	kernelClients.name = f.cc
	counters0 := readKernelTCPCounters() // the client netns holds no other TCP
	switch f.workload {
	case "bulk":
		r, err = clientBulk(target, f)
	case "download":
		r, err = clientDownload(target, f)
	case "cps":
		r, err = clientCPS(target, f)
	case "rtt":
		r, err = clientRTT(target, f)
	case "hold":
		r, err = clientHold(target, f)
	case "flood":
		r, err = clientFlood(target, f)
	case "http":
		r, err = clientHTTP(target, f)
	case "udpblast":
		r, err = clientUDPBlast(target, f)
	case "udprtt":
		r, err = clientUDPRTT(target, f)
	case "fwd":
		r, err = clientForward(f)
	default:
		return fmt.Errorf("unknown workload %q", f.workload)
	}
	if err != nil {
		return err
	}
	if r.CC == "" {
		r.CC = kernelClients.measured()
	}
	if f.workload == "bulk" || f.workload == "download" {
		maps.Copy(r.Metrics, counterDelta("cli_", counters0, readKernelTCPCounters()))
	}
	b, _ := json.Marshal(r)
	fmt.Printf("RESULT %s\n", b)
	if f.workload == "hold" || f.workload == "fwd" {
		_, _ = io.Copy(io.Discard, os.Stdin) // keep the connections until told
		runtime.KeepAlive(clientHeld)
	}
	return nil
}

// clientHeld keeps the connections of hold and fwd reachable until stdin
// closes: an unreachable net.Conn is closed by its finalizer.
var clientHeld []net.Conn

// clientBulk sends n MB on one connection; the server answers with the
// byte count at EOF, which stops the clock. With -client-max-time it stops
// writing at that time instead, if it has not finished, and counts the
// bytes the server has acknowledged by then (TCP_INFO bytes_acked).
func clientBulk(target netip.AddrPort, f clientFlags) (clientResult, error) {
	c, err := kernelClients.dial(target, 5*time.Second)
	if err != nil {
		return clientResult{}, err
	}
	defer c.Close()
	buf := make([]byte, 256<<10)
	total := int64(f.n) << 20
	_ = c.SetDeadline(time.Now().Add(transferDeadline(f)))
	start := time.Now()
	if f.maxTime > 0 {
		_ = c.SetWriteDeadline(start.Add(f.maxTime))
	}
	for sent := int64(0); sent < total; {
		n, err := c.Write(buf[:min(int64(len(buf)), total-sent)])
		sent += int64(n)
		if f.maxTime > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
			elapsed := time.Since(start)
			info, ierr := tcpInfo(c)
			if ierr != nil {
				return clientResult{}, ierr
			}
			abort(c)
			return timeBound(int64(info.Bytes_acked), elapsed), nil
		}
		if err != nil {
			return clientResult{}, fmt.Errorf("bulk write after %d bytes: %w", sent, err)
		}
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return clientResult{}, err
	}
	var ack [8]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		return clientResult{}, fmt.Errorf("bulk: reading server count: %w", err)
	}
	elapsed := time.Since(start)
	if got := int64(binary.BigEndian.Uint64(ack[:])); got != total {
		return clientResult{}, fmt.Errorf("bulk: server received %d of %d bytes", got, total)
	}
	return clientResult{Metrics: map[string]float64{"gbps": float64(total*8) / elapsed.Seconds() / 1e9}}, nil
}

// clientDownload asks the server for n MB on one connection (an 8-byte
// count) and reads until it has them all or EOF: bulk in reverse, so the
// stack under test is the sender. With -client-max-time the clock starts
// at the first byte received (a lost request is the client's loss, not the
// sender's) and the read stops at that time if not done.
func clientDownload(target netip.AddrPort, f clientFlags) (clientResult, error) {
	c, err := kernelClients.dial(target, 5*time.Second)
	if err != nil {
		return clientResult{}, err
	}
	defer c.Close()
	total := int64(f.n) << 20
	_ = c.SetDeadline(time.Now().Add(transferDeadline(f)))
	start := time.Now()
	var req [8]byte
	binary.BigEndian.PutUint64(req[:], uint64(total))
	if _, err := c.Write(req[:]); err != nil {
		return clientResult{}, err
	}
	buf := make([]byte, 256<<10)
	got := int64(0)
	for got < total {
		n, err := c.Read(buf)
		if got == 0 && n > 0 && f.maxTime > 0 {
			start = time.Now()
			_ = c.SetReadDeadline(start.Add(f.maxTime))
		}
		got += int64(n)
		if f.maxTime > 0 && errors.Is(err, os.ErrDeadlineExceeded) && got > 0 {
			elapsed := time.Since(start)
			abort(c)
			return timeBound(got, elapsed), nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return clientResult{}, fmt.Errorf("download read after %d bytes: %w", got, err)
		}
	}
	elapsed := time.Since(start)
	if got != total {
		return clientResult{}, fmt.Errorf("download: received %d of %d bytes", got, total)
	}
	return clientResult{Metrics: map[string]float64{"gbps": float64(total*8) / elapsed.Seconds() / 1e9}}, nil
}

// transferDeadline bounds a whole bulk or download run.
func transferDeadline(f clientFlags) time.Duration {
	if f.maxTime > 0 {
		return f.maxTime + 60*time.Second // connect retries, the first byte
	}
	return 120 * time.Second
}

// timeBound is the result of a transfer stopped by -client-max-time.
func timeBound(bytes int64, elapsed time.Duration) clientResult {
	return clientResult{
		Metrics: map[string]float64{"gbps": float64(bytes*8) / elapsed.Seconds() / 1e9, "mb": float64(bytes) / (1 << 20)},
		Note:    fmt.Sprintf("time bound: %.0f MB in %.1f s", float64(bytes)/(1<<20), elapsed.Seconds()),
	}
}

// tcpInfo reads TCP_INFO of a kernel socket.
func tcpInfo(c net.Conn) (*unix.TCPInfo, error) {
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return nil, err
	}
	var info *unix.TCPInfo
	var ierr error
	if err := raw.Control(func(fd uintptr) { info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil {
		return nil, err
	}
	return info, ierr
}

// abort resets the connection on close (SO_LINGER 0): what is still queued
// is not the measurement's business.
func abort(c net.Conn) { _ = c.(*net.TCPConn).SetLinger(0) }

// echoOnce connects, sends one byte, waits for it back and closes; it
// returns the connect (handshake) time.
func echoOnce(target netip.AddrPort, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	c, err := kernelClients.dial(target, timeout)
	if err != nil {
		return 0, err
	}
	connect := time.Since(start)
	defer c.Close()
	_ = c.SetDeadline(start.Add(timeout))
	if _, err := c.Write([]byte{'x'}); err != nil {
		return 0, err
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return 0, err
	}
	return connect, nil
}

// clientCPS runs conc goroutines doing connect, 1-byte echo, close for dur.
func clientCPS(target netip.AddrPort, f clientFlags) (clientResult, error) {
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(f.dur)
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < f.conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if _, err := echoOnce(target, f.timeout); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	r := clientResult{Metrics: map[string]float64{
		"cps":    float64(ok.Load()) / elapsed.Seconds(),
		"failed": float64(failed.Load()),
	}}
	if e := firstErr.Load(); e != nil {
		r.Note = fmt.Sprintf("%d failed, first: %v", failed.Load(), e)
	}
	return r, nil
}

// clientRTT ping-pongs one byte n times on one connection.
func clientRTT(target netip.AddrPort, f clientFlags) (clientResult, error) {
	c, err := kernelClients.dial(target, 5*time.Second)
	if err != nil {
		return clientResult{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(120 * time.Second))
	var b [1]byte
	samples := make([]time.Duration, 0, f.n)
	for i := -100; i < f.n; i++ { // 100 warm-up exchanges
		start := time.Now()
		if _, err := c.Write(b[:]); err != nil {
			return clientResult{}, err
		}
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return clientResult{}, err
		}
		if i >= 0 {
			samples = append(samples, time.Since(start))
		}
	}
	return clientResult{Metrics: map[string]float64{
		"p50_us": float64(percentile(samples, 50)) / 1e3,
		"p99_us": float64(percentile(samples, 99)) / 1e3,
	}}, nil
}

// clientHold opens n connections and keeps them until stdin closes.
func clientHold(target netip.AddrPort, f clientFlags) (clientResult, error) {
	conns := make([]net.Conn, f.n)
	var failed atomic.Int64
	var firstErr atomic.Value
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= f.n {
					return
				}
				c, err := kernelClients.dial(target, 5*time.Second)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	clientHeld = conns
	r := clientResult{Metrics: map[string]float64{"held": float64(f.n - int(failed.Load()))}}
	if e := firstErr.Load(); e != nil {
		r.Note = fmt.Sprintf("%d failed, first: %v", failed.Load(), e)
	}
	return r, nil
}

// clientFlood floods the target with spoofed SYNs at rate and, after a
// warm-up, makes n legitimate connect+echo attempts with conc workers.
func clientFlood(target netip.AddrPort, f clientFlags) (clientResult, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type floodOut struct {
		sent int
		err  error
	}
	bound := f.warmup + time.Duration((f.n+f.conc-1)/f.conc+1)*f.timeout + 5*time.Second
	floodStart := time.Now()
	done := make(chan floodOut, 1)
	go func() {
		sent, err := synflood.Flood(ctx, synflood.Config{Target: target, Sources: spoofed, Rate: f.rate, Duration: bound})
		done <- floodOut{sent, err}
	}()
	time.Sleep(f.warmup)

	var mu sync.Mutex
	var connects []time.Duration
	var firstErr error
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < f.conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(f.n) {
				d, err := echoOnce(target, f.timeout)
				mu.Lock()
				if err == nil {
					connects = append(connects, d)
				} else if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	cancel()
	fo := <-done
	if fo.err != nil && !errors.Is(fo.err, context.Canceled) {
		return clientResult{}, fo.err
	}
	r := clientResult{Metrics: map[string]float64{
		"success_pct":    100 * float64(len(connects)) / float64(f.n),
		"flood_rate":     float64(fo.sent) / time.Since(floodStart).Seconds(),
		"connect_p50_ms": -1,
	}}
	if len(connects) > 0 {
		r.Metrics["connect_p50_ms"] = float64(percentile(connects, 50)) / 1e6
	}
	if firstErr != nil {
		r.Note = fmt.Sprintf("%d/%d failed, first: %v", f.n-len(connects), f.n, firstErr)
	}
	return r, nil
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}
