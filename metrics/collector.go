// Package metrics exports a stack's counters, softnet rows and listen queues
// to Prometheus.
//
// It is a package of its own so that importing stack pulls in neither
// client_golang nor protobuf (issue 17), and it is not part of admin so that
// a program registering the collector with its own registry does not import
// net/http/pprof, whose init adds handlers to http.DefaultServeMux.
package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tapstack/tapstack/stack"
)

// gauges are the counters that are levels, not event counts (Linux's
// TcpCurrEstab is one); everything else is exported as a Prometheus counter.
var gauges = map[string]bool{
	"TcpCurrEstab":    true,
	"TcpMaxConn":      true,
	"TcpRtoMin":       true,
	"TcpRtoMax":       true,
	"TcpRtoAlgorithm": true,
	"IpForwarding":    true,
	"IpDefaultTTL":    true,
}

// NewCollector returns a collector of st's counters, softnet rows and listen
// queues. Metric names keep the nstat spelling after a tapstack_netstat_
// prefix (tapstack_netstat_TcpExtListenOverflows), so they read like the
// counters users already know from /proc/net/netstat.
func NewCollector(st *stack.Stack) prometheus.Collector { return collector{st} }

type collector struct{ s *stack.Stack }

var (
	softnetDesc = map[string]*prometheus.Desc{
		"processed":    prometheus.NewDesc("tapstack_softnet_processed_total", "Frames processed by the shard's backlog worker (softnet_stat column 1).", []string{"shard"}, nil),
		"dropped":      prometheus.NewDesc("tapstack_softnet_dropped_total", "Frames dropped because the shard's backlog held more than net.core.netdev_max_backlog.", []string{"shard"}, nil),
		"time_squeeze": prometheus.NewDesc("tapstack_softnet_time_squeeze_total", "Polls that ran out of netdev_budget or netdev_budget_usecs with work left.", []string{"shard"}, nil),
		"backlog_len":  prometheus.NewDesc("tapstack_softnet_backlog_len", "Frames waiting in the shard's backlog now.", []string{"shard"}, nil),
	}
	acceptQueueDesc = prometheus.NewDesc("tapstack_listen_accept_queue", "Connections waiting in a listener's accept queue (ss Recv-Q).", []string{"local", "listener"}, nil)
	backlogDesc     = prometheus.NewDesc("tapstack_listen_backlog", "A listener's accept-queue limit: listen(2) backlog clamped by somaxconn (ss Send-Q).", []string{"local", "listener"}, nil)
	synQueueDesc    = prometheus.NewDesc("tapstack_listen_syn_queue", "Request socks waiting in a listener's SYN queue.", []string{"local", "listener"}, nil)
)

// Describe sends nothing: the counter set depends on the layers present, so
// this is an unchecked collector.
func (collector) Describe(chan<- *prometheus.Desc) {}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	for _, ctr := range st.Counters {
		kind, help := prometheus.CounterValue, "Linux nstat counter "+ctr.Name+"."
		if gauges[ctr.Name] {
			kind = prometheus.GaugeValue
		}
		desc := prometheus.NewDesc("tapstack_netstat_"+ctr.Name, help, nil, nil)
		ch <- prometheus.MustNewConstMetric(desc, kind, float64(ctr.Value))
	}
	for i, sn := range st.Softnet {
		shard := strconv.Itoa(i)
		ch <- prometheus.MustNewConstMetric(softnetDesc["processed"], prometheus.CounterValue, float64(sn.Processed), shard)
		ch <- prometheus.MustNewConstMetric(softnetDesc["dropped"], prometheus.CounterValue, float64(sn.Dropped), shard)
		ch <- prometheus.MustNewConstMetric(softnetDesc["time_squeeze"], prometheus.CounterValue, float64(sn.TimeSqueeze), shard)
		ch <- prometheus.MustNewConstMetric(softnetDesc["backlog_len"], prometheus.GaugeValue, float64(sn.BacklogLen), shard)
	}
	// Members of an SO_REUSEPORT group share their local address; the
	// listener label tells them apart (0 for a listener of its own), in
	// the order they were opened.
	members := map[string]int{}
	for _, si := range c.s.Sockets() {
		if si.State != "LISTEN" {
			continue
		}
		local := si.Local.String()
		idx := strconv.Itoa(members[local])
		members[local]++
		ch <- prometheus.MustNewConstMetric(acceptQueueDesc, prometheus.GaugeValue, float64(si.RecvQ), local, idx)
		ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(si.SendQ), local, idx)
		ch <- prometheus.MustNewConstMetric(synQueueDesc, prometheus.GaugeValue, float64(si.SynQueue), local, idx)
	}
}
