package wire

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/tapstack/tapstack/internal/pkt"
)

func TestICMPv4Echo(t *testing.T) {
	raw := serialize(t, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 0x1234, Seq: 7}, gopacket.Payload("ping"))
	m, err := ParseICMPv4(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !m.ChecksumValid() || m.Type() != ICMPv4Echo || m.Code() != 0 || m.Ident() != 0x1234 || m.Seq() != 7 ||
		string(m.Payload()) != "ping" || m.IsError() {
		t.Fatalf("parsed %x", []byte(m))
	}
	b := pkt.Get(4)
	defer b.Release()
	copy(b.Append(4), "ping")
	out := PrependICMPv4(b, &ICMPv4Repr{Type: ICMPv4Echo, Rest: EchoRest(0x1234, 7)})
	if !bytes.Equal(out, raw) {
		t.Fatalf("emit %x want %x", []byte(out), raw)
	}
}

func TestICMPv4Table(t *testing.T) {
	quoted := serialize(t, &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment,
		SrcIP: net.IP{10, 0, 0, 2}, DstIP: net.IP{10, 0, 0, 1}}, gopacket.Payload("12345678rest"))
	fragNeeded := serialize(t, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 4), Seq: 1400}, gopacket.Payload(quoted[:28]))
	short := serialize(t, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 1)}, gopacket.Payload(quoted[:27]))
	tests := []struct {
		name     string
		in       []byte
		err      error
		quoteErr error
		mtu      uint16
	}{
		{"empty", nil, ErrICMPv4Truncated, nil, 0},
		{"seven", make([]byte, 7), ErrICMPv4Truncated, nil, 0},
		{"frag needed", fragNeeded, nil, nil, 1400},
		{"quote too short", short, nil, ErrICMPv4Quote, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseICMPv4(tc.in)
			if err != tc.err {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if !m.ChecksumValid() || !m.IsError() {
				t.Fatal("checksum or IsError")
			}
			h, rest, err := m.Quoted()
			if err != tc.quoteErr {
				t.Fatalf("quote err = %v, want %v", err, tc.quoteErr)
			}
			if err == nil {
				if m.NextHopMTU() != tc.mtu || h.Dst() != netip.MustParseAddr("10.0.0.1") || h.Protocol() != IPProtocolTCP || string(rest) != "12345678" {
					t.Fatalf("mtu %d quote %v %d %q", m.NextHopMTU(), h.Dst(), h.Protocol(), rest)
				}
			}
		})
	}
}
