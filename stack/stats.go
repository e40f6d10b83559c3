package stack

import (
	"bufio"
	"fmt"
	"io"
)

// Counter is one named counter, named as nstat names it: the MIB group
// then the field of /proc/net/snmp or /proc/net/netstat (IpInReceives,
// TcpExtListenOverflows, ...). The device's own counters, which Linux
// keeps elsewhere, start with Netdev and Softnet.
type Counter struct {
	Name  string
	Value uint64
}

// Stats is a snapshot of every counter of the stack, in a fixed order:
// device and softnet, Ip/Icmp (/proc/net/snmp), IpExt, Tcp, TcpExt
// (/proc/net/netstat), Udp (/proc/net/snmp).
type Stats struct {
	Counters []Counter
	// Softnet has one row per shard, like /proc/net/softnet_stat.
	Softnet []SoftnetStat
}

// Get returns the named counter, and false if the snapshot has none of
// that name.
func (st Stats) Get(name string) (uint64, bool) {
	for _, c := range st.Counters {
		if c.Name == name {
			return c.Value, true
		}
	}
	return 0, false
}

// Stats takes a snapshot of every counter. Apart from gauges such as
// TcpCurrEstab the counters only grow, so the difference of two snapshots
// is what happened in between. Without a link the device, softnet, IP and
// ICMP rows are absent.
func (s *Stack) Stats() Stats {
	var st Stats
	visit := func(name string, v uint64) { st.Counters = append(st.Counters, Counter{name, v}) }
	s.mu.Lock()
	dev := s.dev
	s.mu.Unlock()
	if dev != nil {
		dev.Counters(visit)
		st.Softnet = dev.Softnet()
	}
	if ip := s.ipLayer(); ip != nil {
		ip.Counters(visit)
	}
	s.tcp.Counters(visit)
	s.udp.Counters(visit)
	return st
}

// WriteNstat writes the counters the way `nstat -az` prints them: one name
// and value a line (zeros included), then the softnet rows.
func (st Stats) WriteNstat(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "#tapstack")
	for _, c := range st.Counters {
		fmt.Fprintf(bw, "%-32s %-18d %s\n", c.Name, c.Value, "0.0")
	}
	if len(st.Softnet) > 0 {
		fmt.Fprintln(bw, "#softnet_stat shard processed dropped time_squeeze backlog_len")
		for i, sn := range st.Softnet {
			fmt.Fprintf(bw, "%-5d %-12d %-10d %-12d %d\n", i, sn.Processed, sn.Dropped, sn.TimeSqueeze, sn.BacklogLen)
		}
	}
	return bw.Flush()
}
