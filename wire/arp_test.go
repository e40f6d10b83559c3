package wire

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket/layers"

	"github.com/tapstack/tapstack/internal/pkt"
)

func TestParseARPTable(t *testing.T) {
	good := serialize(t, &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: 1,
		SourceHwAddress: []byte{2, 0, 0, 0, 0, 1}, SourceProtAddress: []byte{10, 0, 0, 1},
		DstHwAddress: []byte{0, 0, 0, 0, 0, 0}, DstProtAddress: []byte{10, 0, 0, 2}})
	mod := func(i int, v byte) []byte { b := bytes.Clone(good); b[i] = v; return b }
	tests := []struct {
		name string
		in   []byte
		err  error
	}{
		{"valid", good, nil},
		{"padded", append(bytes.Clone(good), make([]byte, 18)...), nil},
		{"short", good[:27], ErrARPTruncated},
		{"htype", mod(1, 6), ErrARPUnsupported},
		{"ptype", mod(2, 0x86), ErrARPUnsupported},
		{"hlen", mod(4, 8), ErrARPUnsupported},
		{"plen", mod(5, 16), ErrARPUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseARP(tc.in)
			if err != tc.err {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if len(a) != ARPLen || a.Op() != ARPRequest || a.SenderIP() != netip.MustParseAddr("10.0.0.1") ||
				a.TargetIP() != netip.MustParseAddr("10.0.0.2") || !bytes.Equal(a.SenderMAC(), net.HardwareAddr{2, 0, 0, 0, 0, 1}) {
				t.Fatalf("parsed %x", []byte(a))
			}
		})
	}
}

func TestARPEmitAgainstGopacket(t *testing.T) {
	r := ARPRepr{Op: ARPReply, SenderMAC: net.HardwareAddr{2, 1, 2, 3, 4, 5}, TargetMAC: net.HardwareAddr{2, 9, 8, 7, 6, 5},
		SenderIP: netip.MustParseAddr("192.0.2.1"), TargetIP: netip.MustParseAddr("192.0.2.200")}
	b := pkt.Get(0)
	defer b.Release()
	PrependARP(b, &r)
	want := serialize(t, &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: 2,
		SourceHwAddress: r.SenderMAC, SourceProtAddress: []byte{192, 0, 2, 1},
		DstHwAddress: r.TargetMAC, DstProtAddress: []byte{192, 0, 2, 200}})
	if !bytes.Equal(b.Bytes(), want) {
		t.Fatalf("got %x want %x", b.Bytes(), want)
	}
}
