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

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// validIPv4 is a 20-byte header (checksum correct) + 4 bytes payload.
func validIPv4() []byte {
	b := []byte{0x45, 0x00, 0x00, 0x18, 0x12, 0x34, 0x40, 0x00, 0x40, 0x01, 0, 0,
		10, 0, 0, 1, 10, 0, 0, 2, 0xde, 0xad, 0xbe, 0xef}
	IPv4(b).SetChecksum()
	return b
}

func TestParseIPv4Table(t *testing.T) {
	mod := func(f func(b []byte) []byte) []byte { return f(validIPv4()) }
	tests := []struct {
		name    string
		in      []byte
		hdrErr  error // from ParseIPv4Header
		fullErr error // from ParseIPv4
		wantLen int
	}{
		{"valid", validIPv4(), nil, nil, 24},
		{"empty", nil, ErrIPv4Truncated, ErrIPv4Truncated, 0},
		{"19 bytes", validIPv4()[:19], ErrIPv4Truncated, ErrIPv4Truncated, 0},
		{"version 6", mod(func(b []byte) []byte { b[0] = 0x65; return b }), ErrIPv4Version, ErrIPv4Version, 0},
		{"IHL 4", mod(func(b []byte) []byte { b[0] = 0x44; return b }), ErrIPv4HeaderLen, ErrIPv4HeaderLen, 0},
		{"IHL beyond packet", mod(func(b []byte) []byte { b[0] = 0x47; return b }), ErrIPv4Truncated, ErrIPv4Truncated, 0},
		{"total below IHL", mod(func(b []byte) []byte { b[3] = 19; return b }), nil, ErrIPv4TotalLen, 0},
		{"total beyond frame", mod(func(b []byte) []byte { b[3] = 25; return b }), nil, ErrIPv4TotalLenLong, 0},
		{"padding trimmed", append(validIPv4(), 0, 0, 0, 0, 0, 0), nil, nil, 24},
		{"header only", mod(func(b []byte) []byte { b[3] = 20; return b }), nil, nil, 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseIPv4Header(tc.in); err != tc.hdrErr {
				t.Errorf("ParseIPv4Header err = %v, want %v", err, tc.hdrErr)
			}
			h, err := ParseIPv4(tc.in)
			if err != tc.fullErr {
				t.Fatalf("ParseIPv4 err = %v, want %v", err, tc.fullErr)
			}
			if err == nil && len(h) != tc.wantLen {
				t.Errorf("len = %d, want %d", len(h), tc.wantLen)
			}
		})
	}
}

func TestIPv4Accessors(t *testing.T) {
	h, err := ParseIPv4(validIPv4())
	if err != nil {
		t.Fatal(err)
	}
	if !h.ChecksumValid() {
		t.Error("checksum invalid")
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"version", h.Version(), uint8(4)},
		{"ihl", h.IHL(), uint8(5)},
		{"total", h.TotalLen(), uint16(24)},
		{"id", h.ID(), uint16(0x1234)},
		{"df", h.DF(), true},
		{"mf", h.MF(), false},
		{"frag", h.IsFragment(), false},
		{"ttl", h.TTL(), uint8(64)},
		{"proto", h.Protocol(), IPProtocolICMP},
		{"src", h.Src(), netip.MustParseAddr("10.0.0.1")},
		{"dst", h.Dst(), netip.MustParseAddr("10.0.0.2")},
		{"payload", string(h.Payload()), "\xde\xad\xbe\xef"},
		{"options", len(h.Options()), 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	h[11]++
	if h.ChecksumValid() {
		t.Error("corrupted checksum verifies")
	}
}

func TestIPv4AgainstGopacket(t *testing.T) {
	tests := []struct {
		name string
		ip   layers.IPv4
	}{
		{"plain", layers.IPv4{Version: 4, TTL: 64, Id: 7, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment}},
		{"fragment", layers.IPv4{Version: 4, TTL: 3, Id: 0xffff, Protocol: layers.IPProtocolUDP, Flags: layers.IPv4MoreFragments, FragOffset: 185, TOS: 0xb8}},
		{"options", layers.IPv4{Version: 4, TTL: 1, Protocol: 99, Options: []layers.IPv4Option{{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ip := tc.ip
			ip.SrcIP, ip.DstIP = net.IP{192, 168, 1, 1}, net.IP{172, 16, 0, 9}
			raw := serialize(t, &ip, gopacket.Payload("hello world"))
			h, err := ParseIPv4(raw)
			if err != nil {
				t.Fatal(err)
			}
			if !h.ChecksumValid() {
				t.Fatal("gopacket checksum does not verify with ours")
			}
			var r IPv4Repr
			ParseIPv4Repr(h, &r)
			if r.ID != ip.Id || r.TTL != ip.TTL || r.TOS != ip.TOS || r.Protocol != uint8(ip.Protocol) ||
				r.DF != (ip.Flags&layers.IPv4DontFragment != 0) || r.MF != (ip.Flags&layers.IPv4MoreFragments != 0) ||
				r.FragOffset != int(ip.FragOffset)*8 || r.Src != netip.MustParseAddr("192.168.1.1") ||
				r.Dst != netip.MustParseAddr("172.16.0.9") || string(h.Payload()) != "hello world" {
				t.Fatalf("repr %+v from %+v", r, ip)
			}
			// Re-emit with our builder and compare bytes-exact.
			b := pkt.Get(64)
			defer b.Release()
			copy(b.Append(len(h.Payload())), h.Payload())
			out := PrependIPv4(b, &r)
			if !bytes.Equal(out, raw) {
				t.Fatalf("emit\n got %x\nwant %x", []byte(out), raw)
			}
			// And gopacket decodes what we emitted.
			var back layers.IPv4
			if err := back.DecodeFromBytes(out, gopacket.NilDecodeFeedback); err != nil {
				t.Fatal(err)
			}
			if back.Checksum != h.HeaderChecksum() || back.Length != uint16(len(raw)) {
				t.Fatalf("gopacket read back %+v", back)
			}
		})
	}
}

func TestPrependIPv4Allocs(t *testing.T) {
	r := IPv4Repr{TTL: 64, Protocol: IPProtocolTCP, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), DF: true}
	n := testing.AllocsPerRun(100, func() {
		b := pkt.Get(100)
		b.Append(100)
		h := PrependIPv4(b, &r)
		if _, err := ParseIPv4(h); err != nil || h.Src() != r.Src {
			t.Fatal(err)
		}
		b.Release()
	})
	if n != 0 {
		t.Fatalf("%v allocs", n)
	}
}
