package netdev_test

import (
	"bytes"
	"io"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/internal/testenv/netnstest"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
	"github.com/tapstack/tapstack/netdev"
)

// TestDeviceOverOffloadTAP runs a kernel TCP client against a hand-played
// peer (10.0.0.2) through netdev over an offload TAP: the handshake and the
// ACKs go out through Transmit, the kernel's TSO super-frames come up
// through the readers, backlogs and workers whole (longer than the MTU),
// and a 30000-byte super-frame sent with TransmitGSO reaches the socket.
func TestDeviceOverOffloadTAP(t *testing.T) {
	ns := netnstest.New(t)
	var tap *driver.OffloadTAP
	if err := ns.Do(func() (err error) { tap, err = driver.OpenTAPOffload("tsg0", 2); return err }); err != nil {
		t.Fatal(err)
	}
	d := netdev.New(tap, netdev.Config{Shards: 2})
	defer d.Close()
	if d.GSOMax() != driver.MaxGSOFrameSize || d.MaxFrameSize() != driver.MaxGSOFrameSize {
		t.Fatalf("GSOMax %d MaxFrameSize %d", d.GSOMax(), d.MaxFrameSize())
	}
	pkts := make(chan []byte, 4096)
	d.Handle(0x0800, func(b *pkt.Buffer) {
		if p := b.Bytes(); len(p) >= 40 && p[9] == 6 {
			pkts <- slices.Clone(p)
		}
	})
	d.Start()
	ns.AddrAdd("tsg0", "10.0.0.1/24")
	ns.LinkUp("tsg0")
	ns.MustIP("neigh", "add", "10.0.0.2", "lladdr", tap.MAC().String(), "dev", "tsg0")
	out, err := ns.Run("cat", "/sys/class/net/tsg0/address")
	if err != nil {
		t.Fatal(err)
	}
	kernelMAC, err := net.ParseMAC(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}

	connc := make(chan net.Conn, 1)
	go ns.Do(func() error {
		c, err := net.Dial("tcp", "10.0.0.2:5010")
		if err == nil {
			connc <- c
		}
		return err
	})
	next := func() (ip *layers.IPv4, tcp *layers.TCP, raw []byte) {
		t.Helper()
		p := testwait.Recv(t, pkts, "a TCP packet")
		pk := gopacket.NewPacket(p, layers.LayerTypeIPv4, gopacket.Default)
		ip, _ = pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tcp, _ = pk.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if ip == nil || tcp == nil {
			t.Fatalf("undecodable packet of %d bytes", len(p))
		}
		return ip, tcp, p
	}
	var kPort layers.TCPPort
	var snd, rcv uint32 = 5000, 0
	send := func(tcp *layers.TCP, payload []byte, gso bool) {
		t.Helper()
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment,
			SrcIP: net.IP{10, 0, 0, 2}, DstIP: net.IP{10, 0, 0, 1}}
		tcp.SrcPort, tcp.DstPort, tcp.Seq, tcp.Ack, tcp.Window = 5010, kPort, snd, rcv, 65535
		tcp.ACK = true
		tcp.SetNetworkLayerForChecksum(ip)
		sb := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
			ip, tcp, gopacket.Payload(payload)); err != nil {
			t.Fatal(err)
		}
		b := pkt.Get(len(sb.Bytes()))
		copy(b.Append(len(sb.Bytes())), sb.Bytes())
		if gso {
			err = d.TransmitGSO(kernelMAC, 0x0800, b, 1448)
		} else {
			err = d.Transmit(kernelMAC, 0x0800, b)
		}
		if err != nil {
			t.Fatal(err)
		}
	}

	_, syn, _ := next()
	if !syn.SYN {
		t.Fatalf("expected SYN, got %v", syn)
	}
	kPort, rcv = syn.SrcPort, syn.Seq+1
	send(&layers.TCP{SYN: true, Options: []layers.TCPOption{
		{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
		{OptionType: layers.TCPOptionKindNop},
		{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
	}}, nil, false)
	snd++
	conn := <-connc
	defer conn.Close()

	want := make([]byte, 512<<10)
	for i := range want {
		want[i] = byte(i * 31)
	}
	go conn.Write(want)
	var got []byte
	largest := 0
	for len(got) < len(want) {
		ip, tcp, raw := next()
		largest = max(largest, len(raw))
		if int(ip.Length) != len(raw) {
			t.Fatalf("IPv4 length %d, packet %d bytes", ip.Length, len(raw))
		}
		if tcp.Seq == rcv && len(tcp.Payload) > 0 {
			got = append(got, tcp.Payload...)
			rcv += uint32(len(tcp.Payload))
		}
		send(&layers.TCP{}, nil, false)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("stream differs")
	}
	if largest <= 1500 {
		t.Fatalf("largest packet %d bytes: no super-frame reached the handler", largest)
	}
	t.Logf("largest packet through netdev: %d bytes; offload stats %+v", largest, tap.Stats())

	data := want[:30000]
	send(&layers.TCP{PSH: true}, data, true)
	back := make([]byte, len(data))
	if _, err := io.ReadFull(conn, back); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, data) || tap.Stats().TxGSO != 1 {
		t.Fatalf("TransmitGSO: bytes equal %v, stats %+v", bytes.Equal(back, data), tap.Stats())
	}
}
