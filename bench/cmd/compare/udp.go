package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
)

// The UDP workloads (issue 14):
//
//   - udp64, udp1400: a kernel client blasts datagrams of that payload at
//     the server's UDP sink, bounded in count and time; the server counts
//     what its socket delivers. Each also runs against the raw TAP reader
//     (stack "tap", udp_raw.go): the TAP's frame ceiling.
//   - udprtt: 1-byte datagrams ping-ponged with an echo, one outstanding.
//
// Every datagram's first payload byte says whether it is measured: the
// client first sends a few warm-up datagrams (the kernel resolves the
// server's MAC meanwhile) that the sink counts apart.

const (
	markWarm    = 'w'
	markMeasure = 'm'
	warmups     = 20
)

func isUDPMode(mode string) bool { return mode == "udpsink" || mode == "udpecho" }

func udpSinkWorkload(size int) workload {
	return workload{
		Name: "udp" + strconv.Itoa(size), Group: "udp", ServerMode: "udpsink", Backlog: 1, UDP: true, Raw: true,
		ClientArgs: func(o Options) []string {
			return []string{"-client-workload", "udpblast", "-client-size", strconv.Itoa(size),
				"-client-n", strconv.Itoa(pick(o, 2_000_000, 20_000_000)), "-client-max-time", durFlag(o)}
		},
		Metrics: []metricDef{{"rx_pps", fmt.Sprintf("UDP datagrams/s received by the server socket, %d-byte payload", size), true, "%.0f"}},
	}
}

func udpRTTWorkload() workload {
	return workload{
		Name: "udprtt", Group: "udp", ServerMode: "udpecho", Backlog: 1,
		ClientArgs: func(o Options) []string {
			return []string{"-client-workload", "udprtt", "-client-n", strconv.Itoa(pick(o, 2000, 20000))}
		},
		Metrics: []metricDef{
			{"p50_us", "UDP 1-byte round trip p50 (µs)", false, "%.0f"},
			{"p99_us", "UDP 1-byte round trip p99 (µs)", false, "%.0f"},
		},
	}
}

// udpSinkNames are the workloads the raw TAP reader serves.
func udpSinkNames() []string {
	var out []string
	for _, w := range workloads {
		if w.Raw {
			out = append(out, w.Name)
		}
	}
	return out
}

// runStacks are the stacks a workload runs on: the chosen ones (for a
// Forward workload those with a forwarder), and for a Raw workload the raw
// TAP reader after them.
func runStacks(w workload, stacks []string) []string {
	if w.Forward != nil {
		var out []string
		for _, s := range stacks {
			if d := stackDefs[s]; d != nil && d.Forward != nil {
				out = append(out, s)
			}
		}
		return out
	}
	if !w.Raw || stackDefs[rawStack] == nil {
		return stacks
	}
	return append(append([]string(nil), stacks...), rawStack)
}

// runUDPServer serves a UDP mode until stdin closes, then prints what its
// socket delivered and the stack's counters (udpCounters) as COUNTERS.
func runUDPServer(d *stackDef, f serverFlags, cfg serverConfig) error {
	if d.ListenPacket == nil {
		return fmt.Errorf("%s has no UDP", d.Name)
	}
	if d.Raw && f.mode != "udpsink" {
		return fmt.Errorf("%s serves the UDP sink only, not %q", d.Name, f.mode)
	}
	pc, st, err := d.ListenPacket(cfg)
	if err != nil {
		return fmt.Errorf("%s listen udp: %w", d.Name, err)
	}
	defer st.Close()
	defer pc.Close()
	stopProfile, err := maybeProfile(f)
	if err != nil {
		return err
	}
	defer stopProfile()

	out := bufio.NewWriter(os.Stdout)
	counters0 := st.Counters()
	fmt.Fprintln(out, "READY")
	out.Flush()
	stdinClosed := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(stdinClosed) }()
	var m map[string]float64
	if f.mode == "udpsink" {
		m = serveUDPSink(pc, stdinClosed)
	} else {
		m = serveUDPEcho(pc, stdinClosed)
	}
	maps.Copy(m, udpCounterDelta("srv_", counters0, st.Counters()))
	b, _ := json.Marshal(serverFinish{Counters: m})
	fmt.Fprintf(out, "COUNTERS %s\n", b)
	out.Flush()
	return nil
}

// payloadReader is a socket that hands out datagrams without an address
// (the raw TAP reader).
type payloadReader interface {
	readPayload(buf []byte) ([]byte, error)
}

type addrPortConn interface {
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

// datagramReader reads one datagram at a time the cheapest way the socket
// offers: without an address, as a netip.AddrPort (tapstack, the kernel),
// or as a net.Addr (gVisor's gonet has only ReadFrom).
func datagramReader(pc net.PacketConn) func(buf []byte) ([]byte, error) {
	switch c := pc.(type) {
	case payloadReader:
		return c.readPayload
	case addrPortConn:
		return func(buf []byte) ([]byte, error) {
			n, _, err := c.ReadFromUDPAddrPort(buf)
			return buf[:n], err
		}
	default:
		return func(buf []byte) ([]byte, error) {
			n, _, err := pc.ReadFrom(buf)
			return buf[:n], err
		}
	}
}

// sinkCount is what the sink's socket delivered: measured datagrams, the
// monotonic times of the first and the last, warm-up datagrams.
type sinkCount struct {
	n, warm     atomic.Int64
	first, last atomic.Int64 // ns since the sink started
}

// serveUDPSink reads and counts datagrams until stdin closes and the
// queues have drained (nothing for 200 ms, at most 3 s).
func serveUDPSink(pc net.PacketConn, stdinClosed <-chan struct{}) map[string]float64 {
	var c sinkCount
	base := time.Now()
	read := datagramReader(pc)
	go func() {
		buf := make([]byte, 65536)
		for {
			p, err := read(buf)
			if err != nil {
				return
			}
			now := int64(time.Since(base))
			if len(p) == 0 || p[0] != markMeasure {
				c.warm.Add(1)
				continue
			}
			if c.n.Add(1) == 1 {
				c.first.Store(now)
			}
			c.last.Store(now)
		}
	}()
	<-stdinClosed
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		if time.Since(base)-time.Duration(c.last.Load()) > 200*time.Millisecond {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return sinkMetrics(c.n.Load(), c.warm.Load(), time.Duration(c.first.Load()), time.Duration(c.last.Load()))
}

// sinkMetrics: rx datagrams delivered, rx_pps the rate over the reading
// window (the n-1 datagrams after the first ÷ first-to-last read time).
func sinkMetrics(n, warm int64, first, last time.Duration) map[string]float64 {
	m := map[string]float64{"rx": float64(n), "rx_warm": float64(warm), "rx_window_s": (last - first).Seconds()}
	if n >= 2 && last > first {
		m["rx_pps"] = float64(n-1) / (last - first).Seconds()
	}
	return m
}

// serveUDPEcho sends every datagram back to its sender until stdin closes.
func serveUDPEcho(pc net.PacketConn, stdinClosed <-chan struct{}) map[string]float64 {
	var echoed atomic.Int64
	go func() {
		buf := make([]byte, 65536)
		if c, ok := pc.(addrPortConn); ok {
			for {
				n, from, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				if _, err := c.WriteToUDPAddrPort(buf[:n], from); err == nil {
					echoed.Add(1)
				}
			}
		}
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if _, err := pc.WriteTo(buf[:n], from); err == nil {
				echoed.Add(1)
			}
		}
	}()
	<-stdinClosed
	return map[string]float64{"echoed": float64(echoed.Load())}
}

// udpCounters are the server's counters reported for the UDP workloads,
// by nstat name (gVisor's mapped onto them, stack_gvisor.go), under
// their short names: the hops a datagram passes on its way to the socket.
var udpCounters = map[string]string{
	"NetdevRxFrames":  "rx_frames",   // frames the stack's driver read
	"SoftnetDropped":  "netdev_drop", // tapstack: netdev backlog full (enqueue_to_backlog)
	"IpInReceives":    "ip_in",
	"IpInDiscards":    "ip_discard",
	"IpInHdrErrors":   "ip_hdrerr",
	"IpInAddrErrors":  "ip_addrerr",
	"UdpInDatagrams":  "udp_in",
	"UdpInErrors":     "udp_inerr", // includes UdpRcvbufErrors and UdpInCsumErrors
	"UdpRcvbufErrors": "rcvbuf_drop",
	"UdpNoPorts":      "noport",
	"UdpOutDatagrams": "udp_out",
	"RawFrames":       "rx_frames", // the raw TAP reader
	"RawOtherFrames":  "other_frames",
}

func udpCounterDelta(prefix string, before, after map[string]uint64) map[string]float64 {
	out := map[string]float64{}
	for name, short := range udpCounters {
		if a, ok := after[name]; ok {
			out[prefix+short] = float64(a - min(before[name], a))
		}
	}
	return out
}

// clientUDPBlast sends f.n datagrams of f.size bytes (at most for
// f.maxTime) on a connected kernel socket, 64 per sendmmsg, as fast as
// the kernel takes them. It reports what it sent and its netns's Udp
// counters: SndbufErrors are datagrams a full qdisc or device refused
// (udp_send_skb counts ENOBUFS there and returns success).
func clientUDPBlast(target netip.AddrPort, f clientFlags) (clientResult, error) {
	if f.size < 1 || f.size > 65507 {
		return clientResult{}, fmt.Errorf("udpblast: -client-size %d", f.size)
	}
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(target))
	if err != nil {
		return clientResult{}, err
	}
	defer c.Close()
	for range warmups {
		if _, err := c.Write([]byte{markWarm}); err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
			return clientResult{}, err
		}
		time.Sleep(10 * time.Millisecond)
	}
	payload := make([]byte, f.size)
	payload[0] = markMeasure
	const batch = 64
	msgs := make([]ipv4.Message, batch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{payload}
	}
	pc := ipv4.NewPacketConn(c)
	before := readKernelTCPCounters() // the client netns has no other UDP
	var sent, refused int64
	start := time.Now()
	deadline := start.Add(f.maxTime)
	for sent < int64(f.n) && (f.maxTime == 0 || time.Now().Before(deadline)) {
		k, err := pc.WriteBatch(msgs[:min(batch, int64(f.n)-sent)], 0)
		sent += int64(max(k, 0))
		if err != nil {
			// A connected socket reports an ICMP error of an earlier
			// datagram on a later send; none of the servers sends one.
			if errors.Is(err, syscall.ECONNREFUSED) {
				refused++
				continue
			}
			return clientResult{}, fmt.Errorf("udpblast after %d datagrams: %w", sent, err)
		}
	}
	elapsed := time.Since(start)
	after := readKernelTCPCounters()
	delta := func(name string) float64 { return float64(after[name] - min(before[name], after[name])) }
	return clientResult{Metrics: map[string]float64{
		"sent":           float64(sent),
		"send_pps":       float64(sent) / elapsed.Seconds(),
		"send_s":         elapsed.Seconds(),
		"cli_udp_out":    delta("UdpOutDatagrams"),
		"cli_sndbuf_err": delta("UdpSndbufErrors"),
		"cli_refused":    float64(refused),
	}}, nil
}

// clientUDPRTT ping-pongs one byte n times (after 100 warm-ups) on a
// connected kernel socket, one datagram outstanding. The byte is a
// sequence number, so a late answer to a lost one is not taken for the
// next; a datagram unanswered after 500 ms counts as lost and is not a
// sample.
func clientUDPRTT(target netip.AddrPort, f clientFlags) (clientResult, error) {
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(target))
	if err != nil {
		return clientResult{}, err
	}
	defer c.Close()
	var lost int
	samples := make([]time.Duration, 0, f.n)
	buf := make([]byte, 64)
	for i := -100; i < f.n; i++ {
		seq := byte(i)
		start := time.Now()
		if _, err := c.Write([]byte{seq}); err != nil {
			return clientResult{}, err
		}
		_ = c.SetReadDeadline(start.Add(500 * time.Millisecond))
		for {
			n, err := c.Read(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				lost++
				break
			}
			if err != nil {
				return clientResult{}, err
			}
			if n == 1 && buf[0] == seq {
				if i >= 0 {
					samples = append(samples, time.Since(start))
				}
				break
			}
		}
		if lost > 100 {
			return clientResult{}, fmt.Errorf("udprtt: %d datagrams unanswered", lost)
		}
	}
	if len(samples) == 0 {
		return clientResult{}, errors.New("udprtt: no answer")
	}
	r := clientResult{Metrics: map[string]float64{
		"p50_us": float64(percentile(samples, 50)) / 1e3,
		"p99_us": float64(percentile(samples, 99)) / 1e3,
		"lost":   float64(lost),
	}}
	if lost > 0 {
		r.Note = fmt.Sprintf("%d of %d datagrams unanswered within 500 ms", lost, f.n+100)
	}
	return r, nil
}
