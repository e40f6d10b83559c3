package admin_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tapstack/tapstack/admin"
	"github.com/tapstack/tapstack/internal/testenv/stacktest"
	"github.com/tapstack/tapstack/stack"
)

// newStacks is a server stack whose listener's accept queue holds 3.
func newStacks(t *testing.T) *stack.Stack { return stacktest.FullAcceptQueue(t, "10.2.0.0/24") }

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return string(b)
}

func TestMetricsParseWithPrometheusParser(t *testing.T) {
	st := newStacks(t)
	srv := httptest.NewServer(admin.Handler(st))
	defer srv.Close()

	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(get(t, srv.URL+"/metrics")))
	if err != nil {
		t.Fatalf("Prometheus text parser: %v", err)
	}
	value := func(name string, label ...string) float64 {
		t.Helper()
		mf, ok := families[name]
		if !ok {
			t.Fatalf("no metric %s", name)
		}
		for _, m := range mf.Metric {
			if len(label) == 0 {
				if m.Counter != nil {
					return m.Counter.GetValue()
				}
				return m.Gauge.GetValue()
			}
			for _, lp := range m.Label {
				if lp.GetName() == label[0] && lp.GetValue() == label[1] {
					return m.Gauge.GetValue()
				}
			}
		}
		t.Fatalf("no %s%v", name, label)
		return 0
	}
	if v := value("tapstack_netstat_TcpPassiveOpens"); v != 3 {
		t.Errorf("TcpPassiveOpens = %v, want 3", v)
	}
	if families["tapstack_netstat_TcpCurrEstab"].GetType().String() != "GAUGE" {
		t.Errorf("TcpCurrEstab should be a gauge")
	}
	if v := value("tapstack_listen_accept_queue", "local", "10.2.0.1:80"); v != 3 {
		t.Errorf("accept queue = %v, want 3", v)
	}
	if v := value("tapstack_listen_backlog", "local", "10.2.0.1:80"); v != 2 {
		t.Errorf("backlog = %v, want 2", v)
	}
	value("tapstack_softnet_dropped_total", "shard", "0")
	value("tapstack_netstat_TcpExtListenOverflows")
	value("go_goroutines")
}

func TestDebugEndpoints(t *testing.T) {
	st := newStacks(t)
	srv := httptest.NewServer(admin.Handler(st))
	defer srv.Close()

	nstat := get(t, srv.URL+"/debug/nstat")
	if !strings.Contains(nstat, "TcpPassiveOpens") || !strings.Contains(nstat, "IpInReceives") {
		t.Errorf("/debug/nstat:\n%s", nstat)
	}
	ss := get(t, srv.URL+"/debug/ss")
	var listen string
	for _, line := range strings.Split(ss, "\n") {
		if strings.HasPrefix(line, "LISTEN") {
			listen = line
		}
	}
	if f := strings.Fields(listen); len(f) < 4 || f[1] != "3" || f[2] != "2" || f[3] != "10.2.0.1:80" {
		t.Errorf("/debug/ss LISTEN row %q, want Recv-Q 3 Send-Q 2:\n%s", listen, ss)
	}
	var js struct {
		Counters map[string]uint64 `json:"counters"`
	}
	if err := json.Unmarshal([]byte(get(t, srv.URL+"/debug/stats.json")), &js); err != nil {
		t.Fatal(err)
	}
	if js.Counters["TcpPassiveOpens"] != 3 {
		t.Errorf("stats.json TcpPassiveOpens = %d", js.Counters["TcpPassiveOpens"])
	}
	if !strings.Contains(get(t, srv.URL+"/debug/pprof/"), "goroutine") {
		t.Error("/debug/pprof/ index")
	}
}
