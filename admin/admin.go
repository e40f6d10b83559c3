// Package admin serves a stack's observability endpoints over the host's own
// network (not over the stack): Prometheus metrics, nstat and ss text, a
// JSON snapshot and net/http/pprof.
//
//	/metrics            Prometheus text exposition (package metrics, client_golang)
//	/debug/nstat        counters as `nstat -az` prints them
//	/debug/ss           sockets as `ss -tan` prints them
//	/debug/stats.json   the counters and softnet rows as JSON
//	/debug/pprof/       the Go profiler
package admin

import (
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tapstack/tapstack/metrics"
	"github.com/tapstack/tapstack/stack"
)

// Handler returns the admin endpoints of st.
func Handler(st *stack.Stack) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(st), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /debug/nstat", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		st.Stats().WriteNstat(w)
	})
	mux.HandleFunc("GET /debug/ss", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		st.WriteSockets(w)
	})
	mux.HandleFunc("GET /debug/stats.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		st.Stats().WriteJSON(w)
	})
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}
