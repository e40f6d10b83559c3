package driver

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func udpFrame(t *testing.T, src, dst net.HardwareAddr, port uint16, payload string) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2}}
	udp := &layers.UDP{SrcPort: layers.UDPPort(port), DstPort: 9}
	udp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, udp, gopacket.Payload(payload))
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readPcap parses a classic pcap file (independently of the writer's code
// paths) and decodes each record with gopacket.
func readPcap(t *testing.T, file []byte) []gopacket.Packet {
	t.Helper()
	if len(file) < 24 || binary.LittleEndian.Uint32(file) != 0xa1b2c3d4 ||
		binary.LittleEndian.Uint32(file[20:]) != uint32(layers.LinkTypeEthernet) {
		t.Fatalf("bad pcap header % x", file[:min(24, len(file))])
	}
	var pkts []gopacket.Packet
	for rest := file[24:]; len(rest) > 0; {
		if len(rest) < 16 {
			t.Fatalf("truncated record header")
		}
		caplen, origlen := binary.LittleEndian.Uint32(rest[8:]), binary.LittleEndian.Uint32(rest[12:])
		if caplen != origlen || int(caplen) > len(rest)-16 {
			t.Fatalf("record caplen %d origlen %d, %d bytes left", caplen, origlen, len(rest)-16)
		}
		pkts = append(pkts, gopacket.NewPacket(rest[16:16+caplen], layers.LayerTypeEthernet, gopacket.Default))
		rest = rest[16+caplen:]
	}
	return pkts
}

func TestPcapTeeRecordsBothDirections(t *testing.T) {
	a, b := NewPipe(PipeConfig{}, PipeConfig{})
	defer b.Close()
	var out bytes.Buffer
	tee, err := NewPcapTee(a, &out)
	if err != nil {
		t.Fatal(err)
	}
	defer tee.Close()
	sent := udpFrame(t, a.MAC(), b.MAC(), 1000, "out")
	if err := tee.WriteFrame(0, sent); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteFrame(0, udpFrame(t, b.MAC(), a.MAC(), 2000, "in")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	if _, err := tee.ReadFrame(0, buf); err != nil {
		t.Fatal(err)
	}
	pkts := readPcap(t, out.Bytes())
	if len(pkts) != 2 {
		t.Fatalf("%d records, want 2", len(pkts))
	}
	for i, want := range []struct {
		port    layers.UDPPort
		payload string
	}{{1000, "out"}, {2000, "in"}} {
		udp, ok := pkts[i].Layer(layers.LayerTypeUDP).(*layers.UDP)
		if !ok || udp.SrcPort != want.port || string(udp.Payload) != want.payload {
			t.Fatalf("record %d: %v", i, pkts[i])
		}
	}
	if tee.MAC().String() != a.MAC().String() || tee.Queues() != 1 || tee.MTU() != 1500 {
		t.Fatal("tee does not pass through the link's properties")
	}

	checkWithTools(t, out.Bytes(), 2)
}

// checkWithTools has tcpdump and tshark, each when installed, read the
// capture: both must see n UDP records and tshark must find none malformed.
func checkWithTools(t *testing.T, file []byte, n int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tee.pcap")
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("tcpdump"); err == nil {
		text, err := exec.Command("tcpdump", "-nn", "-r", path).CombinedOutput()
		if err != nil || strings.Count(string(text), "UDP, length") != n {
			t.Fatalf("tcpdump -r: %v\n%s", err, text)
		}
	}
	if _, err := exec.LookPath("tshark"); err == nil {
		text, err := exec.Command("tshark", "-n", "-r", path).CombinedOutput()
		if err != nil || strings.Contains(string(text), "Malformed") || strings.Count(string(text), " UDP ") != n {
			t.Fatalf("tshark -r: %v\n%s", err, text)
		}
	}
}

func TestPcapTeeConcurrent(t *testing.T) {
	a, b := NewPipe(PipeConfig{Queues: 4}, PipeConfig{Queues: 4})
	var out bytes.Buffer
	tee, err := NewPcapTee(a, &out)
	if err != nil {
		t.Fatal(err)
	}
	const perQueue = 200
	var wg sync.WaitGroup
	for q := range 4 {
		wg.Add(2)
		go func() { // writer through the tee
			defer wg.Done()
			for i := range perQueue {
				if err := tee.WriteFrame(q, udpFrame(t, a.MAC(), b.MAC(), uint16(q), strings.Repeat("x", i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		go func() { // reader through the tee, fed by the peer
			defer wg.Done()
			buf := make([]byte, 2048)
			for i := range perQueue {
				if err := b.WriteFrame(q, udpFrame(t, b.MAC(), a.MAC(), uint16(100+q), strings.Repeat("y", i))); err != nil {
					t.Error(err)
					return
				}
				if _, err := tee.ReadFrame(q, buf); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	tee.Close()
	b.Close()
	pkts := readPcap(t, out.Bytes())
	if len(pkts) != 8*perQueue {
		t.Fatalf("%d records, want %d", len(pkts), 8*perQueue)
	}
	for _, p := range pkts {
		if p.ErrorLayer() != nil || p.Layer(layers.LayerTypeUDP) == nil {
			t.Fatalf("garbled record: %v", p)
		}
	}
	if tee.WriteErrors() != 0 {
		t.Fatal("write errors")
	}
	checkWithTools(t, out.Bytes(), 8*perQueue)
}
