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

	"github.com/tapstack/tapstack/internal/netnstest"
	"github.com/tapstack/tapstack/internal/testwait"
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
