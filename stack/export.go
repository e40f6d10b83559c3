package stack

import (
	"encoding/json"
	"io"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
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

// statsJSON is the JSON form of a snapshot: counters as an object keyed by
// nstat name, softnet rows as an array indexed by shard.
type statsJSON struct {
	Counters map[string]uint64 `json:"counters"`
	Softnet  []softnetJSON     `json:"softnet"`
}

type softnetJSON struct {
	Processed   uint64 `json:"processed"`
	Dropped     uint64 `json:"dropped"`
	TimeSqueeze uint64 `json:"time_squeeze"`
	BacklogLen  uint64 `json:"backlog_len"`
}

// WriteJSON writes the snapshot as one JSON object.
func (st Stats) WriteJSON(w io.Writer) error {
	out := statsJSON{Counters: make(map[string]uint64, len(st.Counters)), Softnet: []softnetJSON{}}
	for _, c := range st.Counters {
		out.Counters[c.Name] = c.Value
	}
	for _, sn := range st.Softnet {
		out.Softnet = append(out.Softnet, softnetJSON{sn.Processed, sn.Dropped, sn.TimeSqueeze, uint64(sn.BacklogLen)})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// Collector exports the stack's counters, softnet rows and listen queues to
// Prometheus. Metric names keep the nstat spelling after a tapstack_netstat_
// prefix (tapstack_netstat_TcpExtListenOverflows), so they read like the
// counters users already know from /proc/net/netstat.
func (s *Stack) Collector() prometheus.Collector { return collector{s} }

type collector struct{ s *Stack }

var (
	softnetDesc = map[string]*prometheus.Desc{
		"processed":    prometheus.NewDesc("tapstack_softnet_processed_total", "Frames processed by the shard's backlog worker (softnet_stat column 1).", []string{"shard"}, nil),
		"dropped":      prometheus.NewDesc("tapstack_softnet_dropped_total", "Frames dropped because the shard's backlog held more than net.core.netdev_max_backlog.", []string{"shard"}, nil),
		"time_squeeze": prometheus.NewDesc("tapstack_softnet_time_squeeze_total", "Polls that ran out of netdev_budget or netdev_budget_usecs with work left.", []string{"shard"}, nil),
		"backlog_len":  prometheus.NewDesc("tapstack_softnet_backlog_len", "Frames waiting in the shard's backlog now.", []string{"shard"}, nil),
	}
	acceptQueueDesc = prometheus.NewDesc("tapstack_listen_accept_queue", "Connections waiting in a listener's accept queue (ss Recv-Q).", []string{"local"}, nil)
	backlogDesc     = prometheus.NewDesc("tapstack_listen_backlog", "A listener's accept-queue limit: listen(2) backlog clamped by somaxconn (ss Send-Q).", []string{"local"}, nil)
	synQueueDesc    = prometheus.NewDesc("tapstack_listen_syn_queue", "Request socks waiting in a listener's SYN queue.", []string{"local"}, nil)
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
	for _, si := range c.s.Sockets() {
		if si.State != "LISTEN" {
			continue
		}
		local := si.Local.String()
		ch <- prometheus.MustNewConstMetric(acceptQueueDesc, prometheus.GaugeValue, float64(si.RecvQ), local)
		ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(si.SendQ), local)
		ch <- prometheus.MustNewConstMetric(synQueueDesc, prometheus.GaugeValue, float64(si.SynQueue), local)
	}
}
