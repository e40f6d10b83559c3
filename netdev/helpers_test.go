package netdev

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
	"github.com/tapstack/tapstack/wire"
)

var (
	ourMAC   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	peerMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	otherMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x03}
	bcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

// ipv4Frame builds an Ethernet+IPv4 frame to dst whose L4 header starts
// with the ports and whose payload starts with seq. fragOff is the raw
// flags/fragment-offset field.
func ipv4Frame(dst net.HardwareAddr, proto uint8, src, dstIP [4]byte, sport, dport uint16, fragOff uint16, seq uint32) []byte {
	f := make([]byte, 14+20+8+4)
	copy(f[0:6], dst)
	copy(f[6:12], peerMAC)
	binary.BigEndian.PutUint16(f[12:], wire.EtherTypeIPv4)
	ip := f[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	binary.BigEndian.PutUint16(ip[6:], fragOff)
	ip[8] = 64
	ip[9] = proto
	copy(ip[12:16], src[:])
	copy(ip[16:20], dstIP[:])
	binary.BigEndian.PutUint16(ip[20:], sport)
	binary.BigEndian.PutUint16(ip[22:], dport)
	binary.BigEndian.PutUint32(ip[28:], seq)
	return f
}

// flowFrame is a TCP frame of flow number flow carrying seq.
func flowFrame(flow int, seq uint32) []byte {
	return ipv4Frame(ourMAC, wire.IPProtocolTCP, [4]byte{10, 0, 0, 2}, [4]byte{10, 0, 0, 1}, uint16(40000+flow), 80, 0, seq)
}

// arpFrame is a broadcast ARP frame (it always lands on shard 0) carrying seq.
func arpFrame(seq uint32) []byte {
	f := make([]byte, 14+28)
	copy(f[0:6], bcastMAC)
	copy(f[6:12], peerMAC)
	binary.BigEndian.PutUint16(f[12:], wire.EtherTypeARP)
	binary.BigEndian.PutUint32(f[14:], seq)
	return f
}

func buf(frame []byte) *pkt.Buffer {
	b := pkt.GetRx(len(frame))
	b.SetLen(copy(b.Store(), frame))
	return b
}

func newTestPipe(queues int) (link, peer *driver.PipeEnd) {
	big := driver.Impairment{QueueLimit: 1 << 20}
	return driver.NewPipe(
		driver.PipeConfig{MAC: ourMAC, Queues: queues, Impair: big},
		driver.PipeConfig{MAC: peerMAC, Queues: queues, Impair: big})
}

func counters(d *Device) map[string]uint64 {
	m := map[string]uint64{}
	d.Counters(func(name string, v uint64) { m[name] = v })
	return m
}

// waitFor waits until cond holds (testwait.Until: no time bound of its own).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.Until(t, what, cond)
}
