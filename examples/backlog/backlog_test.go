package main

import (
	"encoding/xml"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tapstack/tapstack/internal/testenv/netnstest"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
)

// demoEnv makes the test binary run the demo itself (main) instead of the
// tests; the demo re-executes the same binary for its namespace clients.
const demoEnv = "TAPSTACK_BACKLOG_DEMO"

func TestMain(m *testing.M) {
	if os.Getenv(demoEnv) == "1" || os.Getenv(clientEnv) != "" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// results parses the demo's "result step=N key=value ..." lines.
func results(out string) map[string]map[string]float64 {
	r := map[string]map[string]float64{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "result" {
			continue
		}
		step, _ := strings.CutPrefix(f[1], "step=")
		if f[1] == "summary" {
			step = "summary"
		}
		kv := map[string]float64{}
		for _, p := range f[2:] {
			k, v, ok := strings.Cut(p, "=")
			if !ok {
				continue
			}
			v = strings.TrimSuffix(v, "s")
			if n, err := strconv.ParseFloat(v, 64); err == nil {
				kv[k] = n
			}
		}
		r[step] = kv
	}
	return r
}

// The demo, shortened by -quick, with backlog 5: the narration must show
// the backlog+1 rule, a SYN queue full at its bound that drops the real
// clients without cookies, cookies that let them in, and a well-formed plot.
func TestDemoNarratesTheBacklogs(t *testing.T) {
	netnstest.Require(t)
	const backlog = 5
	svg := filepath.Join(t.TempDir(), "backlog.svg")
	cmd := exec.CommandContext(testwait.Context(t), os.Args[0], "-quick", "-backlog", strconv.Itoa(backlog), "-plot", svg)
	cmd.Env = append(os.Environ(), demoEnv+"=1")
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	t.Logf("demo output:\n%s", out)
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	r := results(out)
	for _, step := range []string{"1", "2", "3", "4", "summary"} {
		if r[step] == nil {
			t.Fatalf("no result line for step %s", step)
		}
	}

	s1 := r["1"]
	if s1["completed"] != backlog+1 || s1["acceptq"] != backlog+1 {
		t.Errorf("step 1: %v connections completed, accept queue %v; want backlog+1 = %d", s1["completed"], s1["acceptq"], backlog+1)
	}
	if s1["pending"] != 2 || s1["listen_overflows"] < 2 || s1["listen_drops"] != s1["listen_overflows"] {
		t.Errorf("step 1: pending %v, ListenOverflows %v, ListenDrops %v; want 2 waiting clients and a drop per SYN", s1["pending"], s1["listen_overflows"], s1["listen_drops"])
	}
	// The ss listing of step 1 shows the full queue: Recv-Q backlog+1, Send-Q backlog.
	step1 := out[strings.Index(out, "== step 1"):strings.Index(out, "== step 2")]
	m := regexp.MustCompile(`LISTEN\s+(\d+)\s+(\d+)`).FindStringSubmatch(step1)
	if m == nil || m[1] != strconv.Itoa(backlog+1) || m[2] != strconv.Itoa(backlog) {
		t.Errorf("step 1 ss: LISTEN row %q, want Recv-Q %d Send-Q %d", m, backlog+1, backlog)
	}

	s2 := r["2"]
	if s2["completed_late"] != s2["waiting"] || s2["acceptq"] != 0 {
		t.Errorf("step 2: %v of %v waiting clients connected, accept queue %v", s2["completed_late"], s2["waiting"], s2["acceptq"])
	}

	s3 := r["3"]
	if s3["synq_max"] != backlog || s3["synq_bound"] != backlog {
		t.Errorf("step 3: SYN queue peaked at %v, want its bound %d", s3["synq_max"], backlog)
	}
	if s3["reqqfulldrop"] <= 0 || s3["legit_ok"] != 0 {
		t.Errorf("step 3: TCPReqQFullDrop %v, %v of %v real clients connected; want drops and none", s3["reqqfulldrop"], s3["legit_ok"], s3["legit"])
	}

	s4 := r["4"]
	if s4["cookies_sent"] <= 0 || s4["cookies_failed"] != 0 {
		t.Errorf("step 4: SyncookiesSent %v Failed %v", s4["cookies_sent"], s4["cookies_failed"])
	}
	if s4["legit"] == 0 || s4["legit_ok"] != s4["legit"] || s4["legit_echo"] != s4["legit"] {
		t.Errorf("step 4: %v connected and %v echoed of %v real clients, want all", s4["legit_ok"], s4["legit_echo"], s4["legit"])
	}
	if s4["synq_max"] > backlog || s3["synq_max"] > backlog {
		t.Errorf("SYN queue above its bound %d: step 3 %v, step 4 %v", backlog, s3["synq_max"], s4["synq_max"])
	}

	// The plot exists and is well-formed XML with an <svg> root.
	f, err := os.Open(svg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := xml.NewDecoder(f)
	root, polylines := "", 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("plot is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
			}
			if se.Name.Local == "polyline" {
				polylines++
			}
		}
	}
	if root != "svg" || polylines != 5 {
		t.Errorf("plot: root <%s>, %d polylines; want <svg> with 5 series", root, polylines)
	}
}

// Step 5 alone: a kernel socket floods a tapstack socket that reads nothing
// until the flood is counted. In each variant every datagram sent must be
// found at exactly one hop — dropped by the qdisc, the TAP's ring, the
// netdev backlog or the socket queue, or queued for the application — and
// the kernel must have sent nothing else on the TAP, whose ring is made
// large enough for the whole flood. With Linux's defaults
// the socket queue is the one that drops, taking what SO_RCVBUF allows,
// while the backlog drops nothing; with a backlog of 8, threaded NAPI and a
// socket with room for the whole flood, the backlog drops and the socket
// nothing. How many the backlog drops depends on how the worker is
// scheduled, so there only which queue drops is asserted, not how much.
func TestDemoUDPFloodWhichQueueDropsFirst(t *testing.T) {
	netnstest.Require(t)
	cmd := exec.CommandContext(testwait.Context(t), os.Args[0], "-quick", "-steps", "5", "-plot", "")
	cmd.Env = append(os.Environ(), demoEnv+"=1")
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	t.Logf("demo output:\n%s", out)
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	r := results(out)
	for _, v := range []string{"5a", "5b"} {
		s := r[v]
		if s == nil {
			t.Fatalf("no result line for step %s", v)
		}
		if s["asked"] == 0 || s["sent"] != s["asked"] || s["write_failed"] != 0 {
			t.Errorf("step %s: %v of %v datagrams sent, %v writes failed", v, s["sent"], s["asked"], s["write_failed"])
		}
		if s["own"] != 0 {
			t.Errorf("step %s: the kernel put %v frames of its own on the TAP", v, s["own"])
		}
		hops := s["qdisc_drops"] + s["tap_drops"] + s["netdev_drops"] + s["socket_drops"] + s["other"] + s["delivered"]
		if hops != s["sent"] {
			t.Errorf("step %s: sent %v != qdisc %v + tap ring %v + backlog %v + socket %v + other %v + delivered %v = %v",
				v, s["sent"], s["qdisc_drops"], s["tap_drops"], s["netdev_drops"], s["socket_drops"], s["other"], s["delivered"], hops)
		}
		// The TAP's ring (txqueuelen) holds the whole flood, so however far
		// the stack's reader falls behind nothing is lost before the stack.
		if s["qdisc_drops"] != 0 || s["tap_drops"] != 0 || s["other"] != 0 {
			t.Errorf("step %s: %v dropped by the qdisc, %v by the TAP's ring, %v other frames; want none",
				v, s["qdisc_drops"], s["tap_drops"], s["other"])
		}
		if s["ss_drops"] != s["socket_drops"] || s["read"] != s["delivered"] {
			t.Errorf("step %s: ss drops %v, UdpRcvbufErrors %v; the application read %v of %v queued",
				v, s["ss_drops"], s["socket_drops"], s["read"], s["delivered"])
		}
	}
	if strings.Contains(out, "MISMATCH") {
		t.Errorf("the demo reports frames it could not account for")
	}

	a := r["5a"]
	if a["netdev_drops"] != 0 || a["socket_drops"] == 0 {
		t.Errorf("step 5a: backlog dropped %v, socket %v; want the socket queue to drop and the backlog not", a["netdev_drops"], a["socket_drops"])
	}
	// SO_RCVBUF is net.core.rmem_default; the queue refuses a datagram once
	// it holds more than that, so rcvbuf/truesize + 1 fit.
	if a["rcvbuf"] != 212992 || a["truesize"] <= 1000 {
		t.Errorf("step 5a: SO_RCVBUF %v, truesize %v; want rmem_default 212992 and more than the 1000 bytes of data", a["rcvbuf"], a["truesize"])
	} else if fit := float64(int(a["rcvbuf"]/a["truesize"]) + 1); a["delivered"] != fit || a["queued_bytes"] != fit*a["truesize"] {
		t.Errorf("step 5a: %v datagrams (%v bytes) queued; want %v, the last taking the queue past SO_RCVBUF", a["delivered"], a["queued_bytes"], fit)
	}

	b := r["5b"]
	if b["netdev_max_backlog"] != 8 || b["netdev_drops"] == 0 || b["socket_drops"] != 0 {
		t.Errorf("step 5b: netdev_max_backlog %v dropped %v, socket %v; want the backlog to drop and the socket not",
			b["netdev_max_backlog"], b["netdev_drops"], b["socket_drops"])
	}
	if b["delivered"] > 0 && b["rcvbuf"] < b["sent"]*b["queued_bytes"]/b["delivered"] {
		t.Errorf("step 5b: SO_RCVBUF %v has no room for all %v datagrams", b["rcvbuf"], b["sent"])
	}
}
