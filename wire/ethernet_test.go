package wire

import (
	"bytes"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/tapstack/tapstack/internal/pkt"
)

func TestParseEthernet(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		err  error
		typ  uint16
	}{
		{"empty", nil, ErrEthernetTruncated, 0},
		{"13 bytes", make([]byte, 13), ErrEthernetTruncated, 0},
		{"header only", []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x06}, nil, EtherTypeARP},
		{"vlan", []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x81, 0x00, 0, 1, 8, 0}, nil, EtherTypeVLAN},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := ParseEthernet(tc.in)
			if err != tc.err {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err == nil && (e.EtherType() != tc.typ || len(e.Payload()) != len(tc.in)-14) {
				t.Fatalf("type %#x payload %d", e.EtherType(), len(e.Payload()))
			}
		})
	}
}

func TestEthernetAgainstGopacket(t *testing.T) {
	src := net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	dst := net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
	raw := serialize(t, &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}, gopacket.Payload("xyz"))
	e, err := ParseEthernet(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e.Src(), src) || !bytes.Equal(e.Dst(), dst) || e.EtherType() != EtherTypeIPv4 {
		t.Fatalf("parsed %v %v %#x", e.Src(), e.Dst(), e.EtherType())
	}
	b := pkt.Get(3)
	defer b.Release()
	copy(b.Append(3), "xyz")
	PrependEthernet(b, dst, src, EtherTypeIPv4)
	// gopacket pads to 60 bytes; compare the header and payload we wrote.
	if !bytes.Equal(b.Bytes(), raw[:len(b.Bytes())]) {
		t.Fatalf("emit %x want %x", b.Bytes(), raw)
	}
}

func TestMACClasses(t *testing.T) {
	tests := []struct {
		mac       net.HardwareAddr
		bcast, mc bool
	}{
		{BroadcastMAC, true, true},
		{net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 1}, false, true},
		{net.HardwareAddr{0x02, 0, 0, 0, 0, 1}, false, false},
		{net.HardwareAddr{0xff, 0xff}, false, false},
	}
	for _, tc := range tests {
		if IsBroadcastMAC(tc.mac) != tc.bcast || IsMulticastMAC(tc.mac) != tc.mc {
			t.Errorf("%v: broadcast %v multicast %v", tc.mac, IsBroadcastMAC(tc.mac), IsMulticastMAC(tc.mac))
		}
	}
}
