package metrics_test

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tapstack/tapstack/metrics"
	"github.com/tapstack/tapstack/stack"
)

// A program with its own registry registers the stack's collector beside its
// other collectors and serves the registry with promhttp.HandlerFor; package
// admin does this for /metrics.
func ExampleNewCollector() {
	st, _ := stack.New(stack.Config{})
	defer st.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(st))

	families, _ := reg.Gather()
	for _, mf := range families {
		switch mf.GetName() {
		case "tapstack_netstat_TcpCurrEstab", "tapstack_netstat_TcpPassiveOpens":
			fmt.Println(mf.GetName(), mf.GetType())
		}
	}
	// Output:
	// tapstack_netstat_TcpCurrEstab GAUGE
	// tapstack_netstat_TcpPassiveOpens COUNTER
}
