package driver_test

import (
	"encoding/binary"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/internal/testenv/netnstest"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
)

// The fake peer plays 10.0.0.2 behind a TAP whose kernel side is
// 10.0.0.1/24, with a static neighbour entry for our MAC so no ARP is
// needed. It answers one kernel SYN with a hand-built SYN-ACK (no SACK,
// no timestamps, window scale 7), then sends and acknowledges data by hand.
var (
	kernelIP = net.IP{10, 0, 0, 1}
	peerIP   = net.IP{10, 0, 0, 2}
)

const peerISN = 1000

type fakePeer struct {
	t       testing.TB
	link    driver.Link
	buf     []byte
	dog     *time.Timer // closes the link when the kernel goes silent
	peerMAC net.HardwareAddr
	kernMAC net.HardwareAddr
	port    uint16 // ours
	kPort   uint16 // the kernel's
	snd     uint32 // our next sequence number
	rcv     uint32 // next byte expected from the kernel
	// withInfo reads through ReadFrameInfo (the link must be a
	// driver.RxInfoLink); info is the last frame's.
	withInfo bool
	info     driver.RxInfo
}

// kernelTCPPeer sets up the namespace side of link (device dev) and
// returns a peer listening on port that reads link's queue 0 itself.
func kernelTCPPeer(t testing.TB, ns *netnstest.NS, dev string, link driver.Link, port uint16) *fakePeer {
	ns.AddrAdd(dev, "10.0.0.1/24")
	ns.LinkUp(dev)
	ns.MustIP("neigh", "add", "10.0.0.2", "lladdr", link.MAC().String(), "dev", dev)
	p := &fakePeer{t: t, link: link, buf: make([]byte, driver.MaxFrameSize(link)),
		peerMAC: link.MAC(), port: port, snd: peerISN}
	p.dog = time.AfterFunc(time.Hour, func() { link.Close() })
	p.dog.Stop()
	t.Cleanup(func() { p.dog.Stop() })
	return p
}

// nextFrame returns the next IPv4 frame from the kernel's address, a view
// valid until the next call. If none has come by the test's deadline
// (testwait.Deadline) it closes the link (unblocking the read) and fails
// the test: the kernel went silent.
func (p *fakePeer) nextFrame() []byte {
	p.t.Helper()
	if end := testwait.Deadline(p.t); !end.IsZero() {
		p.dog.Reset(time.Until(end))
		defer p.dog.Stop()
	}
	for {
		var n int
		var err error
		if p.withInfo {
			n, p.info, err = p.link.(driver.RxInfoLink).ReadFrameInfo(0, p.buf)
		} else {
			n, err = p.link.ReadFrame(0, p.buf)
		}
		if err != nil {
			p.t.Fatalf("no frame from the kernel: %v", err)
		}
		f := p.buf[:n]
		if n > 34 && binary.BigEndian.Uint16(f[12:]) == 0x0800 && net.IP(f[26:30]).Equal(kernelIP) {
			if p.kernMAC == nil {
				p.kernMAC = slices.Clone(f[6:12])
			}
			return f
		}
	}
}

// next returns the next TCP segment from the kernel to our port.
func (p *fakePeer) next() (frame []byte, ip *layers.IPv4, tcp *layers.TCP) {
	p.t.Helper()
	for {
		f := p.nextFrame()
		pk := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.NoCopy)
		ip, _ := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tcp, _ := pk.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if ip != nil && tcp != nil && uint16(tcp.DstPort) == p.port {
			return f, ip, tcp
		}
	}
}

// accept answers the kernel's SYN with a SYN-ACK.
func (p *fakePeer) accept() {
	p.t.Helper()
	_, _, syn := p.next()
	if !syn.SYN || syn.ACK {
		p.t.Fatalf("expected a SYN, got %v", syn)
	}
	p.kPort = uint16(syn.SrcPort)
	p.rcv = syn.Seq + 1
	p.send(p.segment(&layers.TCP{SYN: true, ACK: true, Options: []layers.TCPOption{
		{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
		{OptionType: layers.TCPOptionKindNop},
		{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
	}}, nil))
	p.snd++
}

// segment builds a frame from us to the kernel with correct checksums.
func (p *fakePeer) segment(tcp *layers.TCP, payload []byte) []byte {
	eth := &layers.Ethernet{SrcMAC: p.peerMAC, DstMAC: p.kernMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment,
		SrcIP: peerIP, DstIP: kernelIP}
	tcp.SrcPort, tcp.DstPort = layers.TCPPort(p.port), layers.TCPPort(p.kPort)
	tcp.Seq, tcp.Ack, tcp.Window = p.snd, p.rcv, 65535
	if !tcp.SYN {
		tcp.ACK = true
	}
	tcp.SetNetworkLayerForChecksum(ip)
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, tcp, gopacket.Payload(payload)); err != nil {
		p.t.Fatal(err)
	}
	return sb.Bytes()
}

func (p *fakePeer) send(frame []byte) {
	p.t.Helper()
	if err := p.link.WriteFrame(0, frame); err != nil {
		p.t.Fatal(err)
	}
}

// ack acknowledges everything received so far.
func (p *fakePeer) ack() { p.send(p.segment(&layers.TCP{}, nil)) }

// tcpChecksumOK verifies an IPv4 TCP frame's header and TCP checksums over
// the whole frame, as a receiver of the super-segment would.
func tcpChecksumOK(frame []byte) bool {
	ipHdr := frame[14:]
	ihl := int(ipHdr[0]&0x0f) * 4
	totLen := int(binary.BigEndian.Uint16(ipHdr[2:]))
	if totLen != len(frame)-14 || onesSum(ipHdr[:ihl], 0) != 0xffff {
		return false
	}
	seg := ipHdr[ihl:totLen]
	var pseudo [12]byte
	copy(pseudo[0:8], ipHdr[12:20])
	pseudo[9] = 6
	binary.BigEndian.PutUint16(pseudo[10:], uint16(len(seg)))
	return onesSum(seg, onesSum(pseudo[:], 0)) == 0xffff
}

// onesSum is a plain RFC 1071 sum, independent of wire.Checksum.
func onesSum(b []byte, initial uint16) uint16 {
	s := uint32(initial)
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}
