package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The TAP's frame ceiling: the udp64/udp1400 blast at a reader that opens
// the TAP (one queue, no virtio-net header, as the stacks' TAPs) and only
// reads frames and counts those that are UDP to the server's port: one
// read(2) a frame into one buffer, no stack, no copy, no reply. Its
// datagrams/s, measured the same way as the stacks' sockets (first to
// last read), is what any stack reading this TAP one frame at a time can
// at most take off it on this machine with the same sender.

const rawStack = "tap"

// rawTAPMAC is the address the kernel side sends to: the reader answers
// no ARP, so the kernel gets a permanent neighbour entry for the stack's
// address.
const rawTAPMAC = "02:00:0a:4d:00:02"

func init() {
	registerStack(&stackDef{Name: rawStack, Label: "raw TAP reader (no stack)", TAP: true, Raw: true, ListenPacket: listenRawTAP})
	stackTitles[rawStack] = "TAP ceiling (raw reader)"
}

// rawTAP is the TAP read as a net.PacketConn that only reads: each UDP
// frame to the port is a datagram.
type rawTAP struct {
	f             *os.File // keeps the fd (and its finalizer) alive
	port          uint16
	frames, other atomic.Uint64
}

func listenRawTAP(c serverConfig) (net.PacketConn, served, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, served{}, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(tapName)
	if err != nil {
		unix.Close(fd)
		return nil, served{}, err
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, served{}, fmt.Errorf("TUNSETIFF %s: %w", tapName, err)
	}
	// A non-blocking fd goes to Go's poller: reads park instead of holding
	// a thread, and Close interrupts them.
	r := &rawTAP{f: os.NewFile(uintptr(fd), "/dev/net/tun"), port: c.Addr.Port()}
	if err := configureTAPPeer(c.TxQueueLen); err != nil {
		r.Close()
		return nil, served{}, err
	}
	if err := run("ip", "neigh", "replace", c.Addr.Addr().String(), "lladdr", rawTAPMAC, "dev", tapName, "nud", "permanent"); err != nil {
		r.Close()
		return nil, served{}, err
	}
	counters := func() map[string]uint64 {
		return map[string]uint64{"RawFrames": r.frames.Load(), "RawOtherFrames": r.other.Load()}
	}
	return r, served{Close: func() {}, Counters: counters}, nil
}

func (r *rawTAP) readPayload(buf []byte) ([]byte, error) {
	for {
		n, err := r.f.Read(buf)
		if err != nil {
			return nil, err
		}
		r.frames.Add(1)
		if p, ok := udpPayload(buf[:n], r.port); ok {
			return p, nil
		}
		r.other.Add(1)
	}
}

// udpPayload returns the payload of an Ethernet frame carrying an
// unfragmented IPv4 UDP datagram to port.
func udpPayload(frame []byte, port uint16) ([]byte, bool) {
	const eth = 14
	if len(frame) < eth+20+8 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
		return nil, false
	}
	ip := frame[eth:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ihl < 20 || ip[9] != unix.IPPROTO_UDP || len(ip) < ihl+8 ||
		binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 { // MF or a fragment offset
		return nil, false
	}
	udp := ip[ihl:]
	if binary.BigEndian.Uint16(udp[2:]) != port {
		return nil, false
	}
	return udp[8:], true
}

func (r *rawTAP) ReadFrom(p []byte) (int, net.Addr, error) {
	b, err := r.readPayload(p)
	if err != nil {
		return 0, nil, err
	}
	return copy(p, b), &net.UDPAddr{}, nil
}

var errReadOnly = errors.New("raw TAP reader: read only")

func (r *rawTAP) WriteTo([]byte, net.Addr) (int, error) { return 0, errReadOnly }
func (r *rawTAP) Close() error                          { return r.f.Close() }
func (r *rawTAP) LocalAddr() net.Addr {
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(tapStackAddr.Addr(), r.port))
}
func (r *rawTAP) SetDeadline(t time.Time) error      { return r.f.SetDeadline(t) }
func (r *rawTAP) SetReadDeadline(t time.Time) error  { return r.f.SetReadDeadline(t) }
func (r *rawTAP) SetWriteDeadline(t time.Time) error { return r.f.SetWriteDeadline(t) }

// linkCounters are the kernel's counters of the link a UDP workload's
// datagrams cross before the server's stack: the TAP, or for the kernel
// the client's end of the veth, read in its netns.
type linkCounters struct {
	TxPackets, TxDropped uint64 // ip -s link: frames passed on / dropped
	QdiscDrops           uint64 // tc -s qdisc: the device's qdisc dropped
	SoftnetDropped       uint64 // /proc/net/softnet_stat, host-wide
}

// udpLink names the link of a stack and the netns it is in.
func udpLink(d *stackDef, srvNS, cliNS string) (ns, dev string) {
	if d.TAP {
		return srvNS, tapName
	}
	return cliNS, "vc0"
}

func readLinkCounters(ns, dev string) (linkCounters, error) {
	var lc linkCounters
	out, err := exec.Command("ip", "-n", ns, "-s", "-j", "link", "show", "dev", dev).Output()
	if err != nil {
		return lc, fmt.Errorf("ip -n %s -s link show %s: %w", ns, dev, err)
	}
	if lc.TxPackets, lc.TxDropped, err = parseLinkTx(out); err != nil {
		return lc, err
	}
	out, err = exec.Command("tc", "-n", ns, "-s", "-j", "qdisc", "show", "dev", dev).Output()
	if err != nil {
		return lc, fmt.Errorf("tc -n %s -s qdisc show dev %s: %w", ns, dev, err)
	}
	if lc.QdiscDrops, err = parseQdiscDrops(out); err != nil {
		return lc, err
	}
	b, err := os.ReadFile("/proc/net/softnet_stat")
	if err != nil {
		return lc, err
	}
	lc.SoftnetDropped, err = parseSoftnetDropped(string(b))
	return lc, err
}

// metrics are the differences b − a under the run log's names.
func (a linkCounters) metrics(b linkCounters) map[string]float64 {
	d := func(x, y uint64) float64 { return float64(y - min(x, y)) }
	return map[string]float64{
		"link_tx":           d(a.TxPackets, b.TxPackets),
		"link_drop":         d(a.TxDropped, b.TxDropped),
		"qdisc_drop":        d(a.QdiscDrops, b.QdiscDrops),
		"host_softnet_drop": d(a.SoftnetDropped, b.SoftnetDropped),
	}
}

// parseLinkTx reads tx packets and dropped of one device from
// `ip -s -j link show dev DEV`.
func parseLinkTx(out []byte) (packets, dropped uint64, err error) {
	var links []struct {
		Stats64 *struct {
			Tx struct {
				Packets uint64 `json:"packets"`
				Dropped uint64 `json:"dropped"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 || links[0].Stats64 == nil {
		return 0, 0, fmt.Errorf("ip -s -j link: %q: want one device with stats64 (%v)", out, err)
	}
	return links[0].Stats64.Tx.Packets, links[0].Stats64.Tx.Dropped, nil
}

// parseQdiscDrops sums the drops of the qdiscs `tc -s -j qdisc show dev
// DEV` lists (noqueue shows none).
func parseQdiscDrops(out []byte) (uint64, error) {
	var qdiscs []struct {
		Drops uint64 `json:"drops"`
	}
	if err := json.Unmarshal(out, &qdiscs); err != nil {
		return 0, fmt.Errorf("tc -s -j qdisc: %q: %v", out, err)
	}
	var sum uint64
	for _, q := range qdiscs {
		sum += q.Drops
	}
	return sum, nil
}

// parseSoftnetDropped sums the second column (dropped: the per-CPU
// backlog was full, enqueue_to_backlog) of /proc/net/softnet_stat, hex.
func parseSoftnetDropped(text string) (uint64, error) {
	var sum uint64
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			return 0, fmt.Errorf("softnet_stat line %q", line)
		}
		v, err := strconv.ParseUint(f[1], 16, 32)
		if err != nil {
			return 0, fmt.Errorf("softnet_stat line %q: %v", line, err)
		}
		sum += v
	}
	return sum, nil
}
