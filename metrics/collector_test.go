package metrics_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tapstack/tapstack/internal/testenv/stacktest"
	"github.com/tapstack/tapstack/metrics"
	"github.com/tapstack/tapstack/stack"
)

// listenerWithFullQueue is a server stack with a listener at 10.3.0.1:80
// whose accept queue holds 3 (backlog 2 + 1).
func listenerWithFullQueue(t *testing.T) *stack.Stack {
	return stacktest.FullAcceptQueue(t, "10.3.0.0/24")
}

// sample is one gathered metric: its family's type and its value.
type sample struct {
	kind  string
	value float64
}

// gather collects st through a pedantic registry and indexes the samples by
// name and label pairs ("tapstack_listen_backlog{listener=0,local=10.3.0.1:80}").
func gather(t *testing.T, st *stack.Stack) map[string]sample {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metrics.NewCollector(st))
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := make(map[string]sample)
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			if len(m.GetLabel()) > 0 {
				var pairs []string
				for _, lp := range m.GetLabel() {
					pairs = append(pairs, lp.GetName()+"="+lp.GetValue())
				}
				key += "{" + strings.Join(pairs, ",") + "}"
			}
			v := m.GetCounter().GetValue()
			if m.GetGauge() != nil {
				v = m.GetGauge().GetValue()
			}
			out[key] = sample{mf.GetType().String(), v}
		}
	}
	return out
}

func TestCollectorExportsEveryCounter(t *testing.T) {
	st := listenerWithFullQueue(t)
	got := gather(t, st)
	for _, c := range st.Stats().Counters {
		if _, ok := got["tapstack_netstat_"+c.Name]; !ok {
			t.Errorf("counter %s not exported as tapstack_netstat_%s", c.Name, c.Name)
		}
	}
	for _, tt := range []struct {
		name string
		kind string
	}{
		{"tapstack_netstat_TcpPassiveOpens", "COUNTER"},
		{"tapstack_netstat_TcpExtListenOverflows", "COUNTER"},
		{"tapstack_netstat_IpInReceives", "COUNTER"},
		{"tapstack_netstat_TcpCurrEstab", "GAUGE"}, // a level, not an event count
	} {
		if s, ok := got[tt.name]; !ok || s.kind != tt.kind {
			t.Errorf("%s: %+v (exported %v), want a %s", tt.name, s, ok, tt.kind)
		}
	}
	if v := got["tapstack_netstat_TcpPassiveOpens"].value; v != 3 {
		t.Errorf("TcpPassiveOpens = %v, want 3", v)
	}
}

func TestCollectorExportsSoftnetAndListenQueues(t *testing.T) {
	got := gather(t, listenerWithFullQueue(t))
	for _, tt := range []struct {
		key   string
		kind  string
		value float64 // -1: any value
	}{
		{"tapstack_softnet_processed_total{shard=0}", "COUNTER", -1},
		{"tapstack_softnet_dropped_total{shard=0}", "COUNTER", 0},
		{"tapstack_softnet_time_squeeze_total{shard=0}", "COUNTER", -1},
		{"tapstack_softnet_backlog_len{shard=0}", "GAUGE", -1},
		{"tapstack_listen_accept_queue{listener=0,local=10.3.0.1:80}", "GAUGE", 3},
		{"tapstack_listen_backlog{listener=0,local=10.3.0.1:80}", "GAUGE", 2},
		{"tapstack_listen_syn_queue{listener=0,local=10.3.0.1:80}", "GAUGE", 0},
	} {
		s, ok := got[tt.key]
		switch {
		case !ok:
			t.Errorf("no %s", tt.key)
		case s.kind != tt.kind:
			t.Errorf("%s is a %s, want a %s", tt.key, s.kind, tt.kind)
		case tt.value >= 0 && s.value != tt.value:
			t.Errorf("%s = %v, want %v", tt.key, s.value, tt.value)
		}
	}
}

// TestCollectorReusePortGroup: the members of an SO_REUSEPORT group share
// their address; each is exported with its own listener label, and the
// registry accepts the lot (no two series with the same labels).
func TestCollectorReusePortGroup(t *testing.T) {
	st, err := stack.New(stack.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	lc := &stack.ListenConfig{Stack: st, Backlog: 5, ReusePort: true}
	for range 3 {
		ln, err := lc.Listen(context.Background(), "tcp", "10.3.0.1:80")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
	}
	got := gather(t, st)
	for _, idx := range []string{"0", "1", "2"} {
		key := "tapstack_listen_backlog{listener=" + idx + ",local=10.3.0.1:80}"
		if s, ok := got[key]; !ok || s.value != 5 {
			t.Errorf("%s: %+v (exported %v), want 5", key, s, ok)
		}
	}
}
