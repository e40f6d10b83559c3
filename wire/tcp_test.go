package wire

import (
	"net/netip"
	"testing"
)

func TestParseTCPOptions(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want TCPOptions
		err  error
	}{
		{"empty", nil, TCPOptions{WScale: -1}, nil},
		{"mss", []byte{2, 4, 0x05, 0xb4}, TCPOptions{WScale: -1, MSS: 1460, HasMSS: true}, nil},
		{"nop-wscale", []byte{1, 3, 3, 7}, TCPOptions{WScale: 7}, nil},
		{"wscale-clamped", []byte{3, 3, 20, 0}, TCPOptions{WScale: 14}, nil},
		{"sackok-ts", []byte{4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}, TCPOptions{WScale: -1, SACKPermitted: true, HasTS: true, TSVal: 1, TSEcr: 2}, nil},
		{"sack-1", []byte{1, 1, 5, 10, 0, 0, 0, 10, 0, 0, 0, 20}, TCPOptions{WScale: -1, NumSACK: 1, SACK: [4]SACKBlock{{10, 20}}}, nil},
		{"eol-stops", []byte{0, 2, 1}, TCPOptions{WScale: -1}, nil},
		{"unknown-skipped", []byte{30, 3, 9, 1}, TCPOptions{WScale: -1}, nil},
		{"zero-len", []byte{30, 0}, TCPOptions{WScale: -1}, ErrTCPOption},
		{"len-one", []byte{30, 1}, TCPOptions{WScale: -1}, ErrTCPOption},
		{"truncated", []byte{2, 4, 5}, TCPOptions{WScale: -1}, ErrTCPOption},
		{"lonely-kind", []byte{2}, TCPOptions{WScale: -1}, ErrTCPOption},
		{"mss-bad-len", []byte{2, 3, 5}, TCPOptions{WScale: -1}, ErrTCPOption},
		{"ts-bad-len", []byte{8, 6, 0, 0, 0, 0}, TCPOptions{WScale: -1}, ErrTCPOption},
		{"sack-bad-len", []byte{5, 6, 0, 0, 0, 0}, TCPOptions{WScale: -1}, ErrTCPOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o TCPOptions
			err := ParseTCPOptions(tt.in, &o)
			if err != tt.err {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err == nil && o != tt.want {
				t.Fatalf("got %+v, want %+v", o, tt.want)
			}
		})
	}
}

func TestTCPOptionsRoundTrip(t *testing.T) {
	opts := []TCPOptions{
		{WScale: -1},
		{MSS: 1460, HasMSS: true, WScale: 7, SACKPermitted: true, HasTS: true, TSVal: 9, TSEcr: 8},
		{MSS: 536, HasMSS: true, WScale: -1, SACKPermitted: true},
		{WScale: -1, HasTS: true, TSVal: 1, TSEcr: 2, NumSACK: 3, SACK: [4]SACKBlock{{1, 2}, {3, 4}, {5, 6}}},
	}
	for i, o := range opts {
		b := make([]byte, 60)
		n := EncodeTCPOptions(b, &o)
		if n != TCPOptionsLen(&o) || n%4 != 0 {
			t.Fatalf("%d: wrote %d, len says %d", i, n, TCPOptionsLen(&o))
		}
		var got TCPOptions
		if err := ParseTCPOptions(b[:n], &got); err != nil || got != o {
			t.Fatalf("%d: got %+v err %v, want %+v", i, got, err, o)
		}
	}
}

func TestTCPHeaderBuildAndChecksum(t *testing.T) {
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	o := TCPOptions{MSS: 1460, HasMSS: true, WScale: 7}
	hl := TCPMinHeaderLen + TCPOptionsLen(&o)
	seg := make([]byte, hl+5)
	f := TCPFields{SrcPort: 1234, DstPort: 80, Seq: 100, Ack: 200, Flags: TCPFlagSYN | TCPFlagACK, Window: 65535}
	f.Encode(seg[:hl])
	EncodeTCPOptions(seg[TCPMinHeaderLen:hl], &o)
	copy(seg[hl:], "hello")
	TCP(seg).SetChecksum(TCPChecksum(src, dst, seg))
	v := TCP(seg)
	if err := v.Valid(); err != nil {
		t.Fatal(err)
	}
	if v.SrcPort() != 1234 || v.DstPort() != 80 || v.Seq() != 100 || v.Ack() != 200 || v.Flags() != TCPFlagSYN|TCPFlagACK ||
		v.Window() != 65535 || string(v.Payload()) != "hello" || v.HeaderLen() != hl {
		t.Fatalf("bad view %x", seg)
	}
	if !v.VerifyChecksum(src, dst) {
		t.Fatal("checksum does not verify")
	}
	seg[hl] ^= 1
	if v.VerifyChecksum(src, dst) {
		t.Fatal("corrupted segment verifies")
	}
}

func FuzzTCPHeader(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 2, 0xff, 0xff, 0, 0, 0, 0, 2, 4, 5, 0xb4})
	f.Add([]byte{0, 1, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0xf0, 2, 0xff, 0xff, 0, 0, 0, 0})
	f.Add(make([]byte, 60))
	f.Fuzz(func(t *testing.T, b []byte) {
		v := TCP(b)
		if v.Valid() != nil {
			return
		}
		_ = v.Payload()
		var o TCPOptions
		if ParseTCPOptions(v.Options(), &o) == nil {
			if o.NumSACK > TCPMaxSACKBlocks || o.WScale > MaxWindowShift {
				t.Fatalf("bad parse %+v", o)
			}
		}
	})
}
