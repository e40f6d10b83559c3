package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The http workloads: one net/http handler, the same on every stack,
// answering GET /bytes?n=N with N bytes, loaded by h2load in HTTP/1.1 mode
// with and without keep-alive.

// maxBytesReply bounds /bytes?n=.
const maxBytesReply = 1 << 20

var bytesPayload = make([]byte, maxBytesReply)

// requestsServed counts the handler's answers (the profiles' per-request
// figures divide by it).
var requestsServed atomic.Int64

// bytesHandler answers /bytes?n=N with N bytes (n ≤ 1 MiB).
func bytesHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n < 0 || n > maxBytesReply {
			http.Error(w, "n: 0 to 1048576", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(n))
		_, _ = w.Write(bytesPayload[:n])
		requestsServed.Add(1)
	})
	return mux
}

// serveHTTP serves bytesHandler on ln until stdin closes.
func serveHTTP(ln net.Listener, stdinClosed chan struct{}) error {
	srv := &http.Server{Handler: bytesHandler(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case <-stdinClosed:
		_ = srv.Close()
		return nil
	case err := <-done:
		return err
	}
}

// httpTools are the Debian packages the http workloads need.
var httpTools = []struct{ bin, pkg string }{{"h2load", "nghttp2-client"}, {"ab", "apache2-utils"}}

// ensureHTTPTools installs what is missing with apt-get (updating its lists
// once if the first attempt fails).
func ensureHTTPTools() error {
	for _, t := range httpTools {
		if _, err := exec.LookPath(t.bin); err == nil {
			continue
		}
		fmt.Fprintf(os.Stderr, "compare: %s missing: apt-get install -y %s\n", t.bin, t.pkg)
		install := func() error { return run("apt-get", "install", "-y", "-q", t.pkg) }
		if err := install(); err != nil {
			if uerr := run("apt-get", "update", "-q"); uerr != nil {
				return fmt.Errorf("the http workloads need %s (Debian %s): %w", t.bin, t.pkg, uerr)
			}
			if err := install(); err != nil {
				return fmt.Errorf("the http workloads need %s (Debian %s): %w", t.bin, t.pkg, err)
			}
		}
		if _, err := exec.LookPath(t.bin); err != nil {
			return fmt.Errorf("%s still missing after installing %s", t.bin, t.pkg)
		}
	}
	return nil
}

// clientHTTP runs h2load --h1 against the target with f.conc connections:
// keep-alive for f.dur after a warm-up, or, with f.close, f.requests
// requests that each carry "Connection: close" and so have a connection
// of their own (h2load 1.52 reconnects after a close only when counting
// requests, not in its timed mode).
func clientHTTP(target netip.AddrPort, f clientFlags) (clientResult, error) {
	// Go raised its own soft fd limit; h2load with 1000 connections needs
	// it too (a child gets the original limit unless we set one).
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err == nil {
		lim.Cur = lim.Max
		_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	}
	if f.tool == "ab" {
		return clientAB(target, f)
	}
	log, err := os.CreateTemp("", "compare-h2load-*.log")
	if err != nil {
		return clientResult{}, err
	}
	log.Close()
	defer os.Remove(log.Name())
	out, err := runLoadTool("h2load", h2loadArgs(target, f, log.Name()))
	if err != nil {
		return clientResult{}, err
	}
	sum, err := parseH2load(out)
	if err != nil {
		return clientResult{}, fmt.Errorf("h2load: %w: %s", err, lastLines(out, 12))
	}
	lat, err := readH2loadLog(log.Name())
	if err != nil {
		return clientResult{}, err
	}
	r := clientResult{Metrics: map[string]float64{
		"reqs":      sum.ReqPerSec,
		"succeeded": float64(sum.Succeeded),
		"failed":    float64(sum.Failed + sum.Errored + sum.Timeout),
		"p50_ms":    float64(percentile(lat, 50)) / 1e6,
		"p99_ms":    float64(percentile(lat, 99)) / 1e6,
	}}
	if bad := sum.Failed + sum.Errored + sum.Timeout; bad > 0 {
		r.Note = fmt.Sprintf("%d failed, %d errored, %d timed out of %d", sum.Failed, sum.Errored, sum.Timeout, sum.Total)
	}
	return r, nil
}

// h2loadArgs: one thread (the client shares the two cores with the
// server), a per-request log for the latencies.
func h2loadArgs(target netip.AddrPort, f clientFlags, logFile string) []string {
	args := []string{"--h1", "-t", "1", "-c", strconv.Itoa(f.conc), "-N", "10", "--log-file", logFile}
	if f.close {
		args = append(args, "-n", strconv.Itoa(f.requests), "-H", "Connection: close")
	} else {
		args = append(args, "-D", strconv.Itoa(max(int(f.dur/time.Second), 1)), "--warm-up-time", strconv.Itoa(max(int(f.warmup/time.Second), 1)))
	}
	return append(args, fmt.Sprintf("http://%s/bytes?n=%d", target, f.n))
}

// h2loadSummary is what h2load prints at the end.
type h2loadSummary struct {
	ReqPerSec                                        float64
	Total, Succeeded, Failed, Errored, Timeout, Done int
}

var (
	h2loadFinished = regexp.MustCompile(`finished in [0-9.]+[a-z]+, ([0-9.]+) req/s`)
	h2loadRequests = regexp.MustCompile(`requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
)

// parseH2load reads h2load's summary: "finished in 5.00s, 12345.60 req/s,
// ..." and "requests: N total, N started, N done, N succeeded, N failed, N
// errored, N timeout".
func parseH2load(out string) (h2loadSummary, error) {
	var s h2loadSummary
	var err error
	if s.ReqPerSec, err = matchFloat(h2loadFinished, out, `"finished in ..., N req/s"`); err != nil {
		return s, err
	}
	r := h2loadRequests.FindStringSubmatch(out)
	if r == nil {
		return s, errors.New(`no "requests: ..." line`)
	}
	n := make([]int, 6)
	for i := range n {
		n[i], _ = strconv.Atoi(r[i+1])
	}
	s.Total, s.Done, s.Succeeded, s.Failed, s.Errored, s.Timeout = n[0], n[1], n[2], n[3], n[4], n[5]
	if s.Succeeded == 0 {
		return s, errors.New("no request succeeded")
	}
	return s, nil
}

// readH2loadLog reads h2load's --log-file: per request, tab-separated, the
// start (µs since the epoch), the status code and the µs until the end of
// the response. Only 2xx responses count.
func readH2loadLog(name string) ([]time.Duration, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseH2loadLog(bufio.NewScanner(f))
}

func parseH2loadLog(sc *bufio.Scanner) ([]time.Duration, error) {
	var lat []time.Duration
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) < 3 {
			continue
		}
		status, err1 := strconv.Atoi(f[1])
		us, err2 := strconv.ParseInt(strings.TrimSpace(f[2]), 10, 64)
		if err1 != nil || err2 != nil || status < 200 || status > 299 {
			continue
		}
		lat = append(lat, time.Duration(us)*time.Microsecond)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(lat) == 0 {
		return nil, errors.New("h2load log: no successful request")
	}
	return lat, nil
}

// matchFloat returns the number re's first group matches in out.
func matchFloat(re *regexp.Regexp, out, what string) (float64, error) {
	m := re.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no %s line", what)
	}
	return strconv.ParseFloat(m[1], 64)
}

// runLoadTool runs h2load or ab, bounded in time, and returns its output.
func runLoadTool(name string, args []string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, lastLines(string(out), 5))
	}
	return string(out), nil
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(len(l)-n, 0):], " | ")
}

// httpWorkload is one http row group: conc connections, keep-alive or a
// connection per request.
func httpWorkload(conc int, keepAlive bool) workload {
	name, what, closeFlag := fmt.Sprintf("httpka%d", conc), "keep-alive", "false"
	if !keepAlive {
		name, what, closeFlag = fmt.Sprintf("http%d", conc), "connection per request", "true"
	}
	label := fmt.Sprintf("HTTP GET 100 B, %s, %d connections", what, conc)
	return workload{
		Name: name, Group: "http", ServerMode: "http", Backlog: 4096,
		ClientArgs: func(o Options) []string {
			return []string{"-client-workload", "http", "-client-n", "100", "-client-conc", strconv.Itoa(conc),
				"-client-close=" + closeFlag, "-client-duration", durFlag(o), "-client-warmup", "1s",
				"-client-requests", strconv.Itoa(pick(o, 4000, 30000))}
		},
		Metrics: []metricDef{
			{"reqs", label + " (req/s)", true, "%.0f"},
			{"p50_ms", label + ", latency p50 (ms)", false, "%.2f"},
			{"p99_ms", label + ", latency p99 (ms)", false, "%.2f"},
		},
	}
}

// clientAB runs ab (keep-alive unless f.close) for f.dur: the load the
// profiles in BENCHMARKS.md were taken under. Its percentiles are whole
// milliseconds.
func clientAB(target netip.AddrPort, f clientFlags) (clientResult, error) {
	out, err := runLoadTool("ab", abArgs(target, f))
	if err != nil {
		return clientResult{}, err
	}
	sum, err := parseAB(out)
	if err != nil {
		return clientResult{}, fmt.Errorf("ab: %w: %s", err, lastLines(out, 12))
	}
	r := clientResult{Metrics: map[string]float64{"reqs": sum.ReqPerSec, "failed": float64(sum.Failed), "p50_ms": sum.P50ms, "p99_ms": sum.P99ms}}
	if sum.Failed > 0 {
		r.Note = fmt.Sprintf("%d failed", sum.Failed)
	}
	return r, nil
}

// abArgs: -t bounds the time; -n, after it, bounds the requests (ab keeps
// a record per request, so not much more than the run can make).
func abArgs(target netip.AddrPort, f clientFlags) []string {
	args := []string{"-q", "-c", strconv.Itoa(f.conc), "-t", strconv.Itoa(max(int(f.dur/time.Second), 1)), "-n", "1000000", "-s", "10"}
	if !f.close {
		args = append(args, "-k")
	}
	return append(args, fmt.Sprintf("http://%s/bytes?n=%d", target, f.n))
}

// abSummary is what ab prints at the end.
type abSummary struct {
	ReqPerSec    float64
	Failed       int
	P50ms, P99ms float64
}

var (
	abRate    = regexp.MustCompile(`Requests per second:\s+([0-9.]+)`)
	abFailed  = regexp.MustCompile(`Failed requests:\s+(\d+)`)
	abNon2xx  = regexp.MustCompile(`Non-2xx responses:\s+(\d+)`)
	abPercent = regexp.MustCompile(`(?m)^\s+(50|99)%\s+(\d+)`)
)

// parseAB reads ab's "Requests per second", "Failed requests", "Non-2xx
// responses" and the 50 % and 99 % lines of its percentile table (ms).
func parseAB(out string) (abSummary, error) {
	var s abSummary
	var err error
	if s.ReqPerSec, err = matchFloat(abRate, out, `"Requests per second"`); err != nil {
		return s, err
	}
	if m := abFailed.FindStringSubmatch(out); m != nil {
		s.Failed, _ = strconv.Atoi(m[1])
	}
	if m := abNon2xx.FindStringSubmatch(out); m != nil {
		n, _ := strconv.Atoi(m[1])
		s.Failed += n
	}
	found := 0
	for _, p := range abPercent.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(p[2], 64)
		if p[1] == "50" {
			s.P50ms = v
		} else {
			s.P99ms = v
		}
		found++
	}
	if found < 2 {
		return s, errors.New("no 50 % / 99 % lines")
	}
	return s, nil
}

// abWorkload is ab -k -c conc: run only when named (-only abka200), for
// the profiles.
func abWorkload(conc int) workload {
	label := fmt.Sprintf("HTTP GET 100 B, keep-alive, %d connections, ab", conc)
	return workload{
		Name: fmt.Sprintf("abka%d", conc), ServerMode: "http", Backlog: 4096, Explicit: true,
		ClientArgs: func(o Options) []string {
			return []string{"-client-workload", "http", "-client-tool", "ab", "-client-n", "100", "-client-conc", strconv.Itoa(conc),
				"-client-duration", durFlag(o)}
		},
		Metrics: []metricDef{
			{"reqs", label + " (req/s)", true, "%.0f"},
			{"p50_ms", label + ", latency p50 (ms, whole)", false, "%.0f"},
			{"p99_ms", label + ", latency p99 (ms, whole)", false, "%.0f"},
		},
	}
}
