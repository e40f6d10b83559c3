package main

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// The end of h2load 1.52's output after a run (`h2load --h1 -n 2000 -c 10`).
const h2loadOutput = `starting benchmark...
spawning thread #0: 10 total client(s). 2000 total requests
Application protocol: http/1.1
progress: 10% done
progress: 100% done

finished in 2.41s, 829.72 req/s, 162.70KB/s
requests: 2000 total, 2000 started, 1990 done, 1987 succeeded, 3 failed, 10 errored, 0 timeout
status codes: 1987 2xx, 0 3xx, 0 4xx, 3 5xx
traffic: 0B (0) total, 197.27KB (202000) headers (space savings 0.00%), 195.31KB (200000) data
                     min         max         mean         sd        +/- sd
time for request:       61us      9.27ms       951us       810us    93.20%
`

func TestParseH2load(t *testing.T) {
	s, err := parseH2load(h2loadOutput)
	if err != nil {
		t.Fatal(err)
	}
	want := h2loadSummary{ReqPerSec: 829.72, Total: 2000, Done: 1990, Succeeded: 1987, Failed: 3, Errored: 10}
	if s != want {
		t.Errorf("got %+v, want %+v", s, want)
	}
	for _, bad := range []string{"", "finished in 1s, 5 req/s\n", strings.Replace(h2loadOutput, "1987 succeeded", "0 succeeded", 1)} {
		if _, err := parseH2load(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestParseH2loadLog(t *testing.T) {
	log := "1764754003123456\t200\t1500\n1764754003123460\t200\t500\n1764754003123470\t503\t9\n" +
		"garbage\n1764754003123480\t200\t2500\n"
	lat, err := parseH2loadLog(bufio.NewScanner(strings.NewReader(log)))
	if err != nil {
		t.Fatal(err)
	}
	if want := []time.Duration{1500 * time.Microsecond, 500 * time.Microsecond, 2500 * time.Microsecond}; !slices.Equal(lat, want) {
		t.Errorf("got %v, want %v", lat, want)
	}
	if _, err := parseH2loadLog(bufio.NewScanner(strings.NewReader("1\t500\t3\n"))); err == nil {
		t.Error("log without a 2xx accepted")
	}
}

// The end of ab 2.3's output (`ab -k -c 200 -t 5`).
const abOutput = `Concurrency Level:      200
Time taken for tests:   5.000 seconds
Complete requests:      147465
Failed requests:        2
   (Connect: 0, Receive: 0, Length: 2, Exceptions: 0)
Non-2xx responses:      1
Keep-Alive requests:    147465
Requests per second:    29492.61 [#/sec] (mean)
Time per request:       6.781 [ms] (mean)

Percentage of the requests served within a certain time (ms)
  50%      6
  66%      7
  75%      8
  90%     11
  95%     14
  98%     17
  99%     20
 100%     52 (longest request)
`

func TestParseAB(t *testing.T) {
	s, err := parseAB(abOutput)
	if err != nil {
		t.Fatal(err)
	}
	if want := (abSummary{ReqPerSec: 29492.61, Failed: 3, P50ms: 6, P99ms: 20}); s != want {
		t.Errorf("got %+v, want %+v", s, want)
	}
	if _, err := parseAB(strings.Split(abOutput, "Percentage")[0]); err == nil {
		t.Error("output without percentiles accepted")
	}
}

func TestHTTPArgs(t *testing.T) {
	target := netip.MustParseAddrPort("10.77.0.2:5201")
	ka := strings.Join(h2loadArgs(target, clientFlags{conc: 200, dur: 5 * time.Second, warmup: time.Second, n: 100}, "L"), " ")
	if want := "--h1 -t 1 -c 200 -N 10 --log-file L -D 5 --warm-up-time 1 http://10.77.0.2:5201/bytes?n=100"; ka != want {
		t.Errorf("keep-alive: %s", ka)
	}
	cl := strings.Join(h2loadArgs(target, clientFlags{conc: 50, close: true, requests: 30000, n: 100}, "L"), " ")
	if want := "--h1 -t 1 -c 50 -N 10 --log-file L -n 30000 -H Connection: close http://10.77.0.2:5201/bytes?n=100"; cl != want {
		t.Errorf("close: %s", cl)
	}
	ab := strings.Join(abArgs(target, clientFlags{conc: 200, dur: 5 * time.Second, n: 100}), " ")
	if want := "-q -c 200 -t 5 -n 1000000 -s 10 -k http://10.77.0.2:5201/bytes?n=100"; ab != want {
		t.Errorf("ab: %s", ab)
	}
}

func TestBytesHandler(t *testing.T) {
	h := bytesHandler()
	for _, tt := range []struct {
		url  string
		code int
		size int
	}{{"/bytes?n=100", 200, 100}, {"/bytes?n=0", 200, 0}, {"/bytes?n=-1", 400, -1}, {"/bytes?n=x", 400, -1}, {"/bytes?n=2000000", 400, -1}} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.url, nil))
		if rec.Code != tt.code || (tt.size >= 0 && rec.Body.Len() != tt.size) {
			t.Errorf("%s: %d with %d bytes", tt.url, rec.Code, rec.Body.Len())
		}
	}
}

func TestSelected(t *testing.T) {
	var names []string
	for _, w := range workloads {
		if w.selected([]string{"http", "rtt"}) {
			names = append(names, w.Name)
		}
	}
	if got := strings.Join(names, ","); got != "rtt,httpka50,httpka200,httpka1000,http50,http200,http1000" {
		t.Errorf("-only http,rtt selects %s", got)
	}
	for _, w := range workloads {
		if w.Name == "abka200" && (w.selected(nil) || !w.selected([]string{"abka200"})) {
			t.Error("abka200 must run only when named")
		}
	}
}
