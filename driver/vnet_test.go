package driver

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// tcpFrame builds an Ethernet+IPv4+TCP frame with payload bytes and
// correct checksums.
func tcpFrame(t testing.TB, payload int, cwr bool) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
		EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IP{10, 0, 0, 2}, DstIP: net.IP{10, 0, 0, 1}}
	tcp := &layers.TCP{SrcPort: 80, DstPort: 40000, Seq: 1, Ack: 1, ACK: true, CWR: cwr, Window: 100}
	tcp.SetNetworkLayerForChecksum(ip)
	data := make([]byte, payload)
	for i := range data {
		data[i] = byte(i * 13)
	}
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, tcp, gopacket.Payload(data)); err != nil {
		t.Fatal(err)
	}
	return sb.Bytes()
}

// TestGSOHeaderThenComplete: the header WriteGSO builds describes the
// frame (virtio_net_hdr_from_skb), and completing its partial checksum the
// way ReadFrame does yields the checksum gopacket computed.
func TestGSOHeaderThenComplete(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload int
		cwr     bool
		gsoType uint8
		gsoSize int
	}{
		{"super-frame", 20000, false, vnetGSOTCPv4, 1448},
		{"super-frame with CWR", 5000, true, vnetGSOTCPv4 | vnetGSOECN, 1448},
		{"fits one segment", 1000, false, vnetGSONone, 0},
		{"empty ACK", 0, false, vnetGSONone, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frame := tcpFrame(t, tc.payload, tc.cwr)
			frame = frame[:14+binary.BigEndian.Uint16(frame[16:])] // drop Ethernet padding
			want := binary.BigEndian.Uint16(frame[14+20+16:])
			h := vnetHdr(make([]byte, vnetHdrLen))
			if err := gsoHeader(h, frame, 1448); err != nil {
				t.Fatal(err)
			}
			if h.flags() != vnetFlagNeedsCsum || h.gsoType() != tc.gsoType || h.gsoSize() != tc.gsoSize ||
				h.csumStart() != 34 || h.csumOffset() != 16 || binary.LittleEndian.Uint16(h[2:]) != 54 {
				t.Fatalf("header % x", []byte(h))
			}
			if err := completeChecksum(h, frame); err != nil {
				t.Fatal(err)
			}
			if got := binary.BigEndian.Uint16(frame[14+20+16:]); got != want {
				t.Fatalf("completed checksum %#04x, want %#04x", got, want)
			}
		})
	}
}

func TestVnetRejects(t *testing.T) {
	good := tcpFrame(t, 100, false)
	udp := append([]byte(nil), good...)
	udp[14+9] = 17
	short := append([]byte(nil), good...)
	binary.BigEndian.PutUint16(short[16:], 1000) // IPv4 length beyond the frame
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"not IPv4", good[:12]},
		{"UDP", udp},
		{"length mismatch", short},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := gsoHeader(vnetHdr(make([]byte, vnetHdrLen)), tc.frame, 1448); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	h := vnetHdr(make([]byte, vnetHdrLen))
	h.setFlags(vnetFlagNeedsCsum)
	h.setCsumStart(50)
	h.setCsumOffset(16)
	if err := completeChecksum(h, make([]byte, 60)); err == nil {
		t.Fatal("checksum field beyond the frame accepted")
	}
}

func BenchmarkCompleteChecksum64K(b *testing.B) {
	frame := tcpFrame(b, 65000, false)
	h := vnetHdr(make([]byte, vnetHdrLen))
	if err := gsoHeader(h, frame[:14+binary.BigEndian.Uint16(frame[16:])], 1448); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		binary.BigEndian.PutUint16(frame[50:], 0)
		completeChecksum(h, frame)
	}
}
