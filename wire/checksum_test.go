package wire

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// naiveChecksum is RFC 1071's reference loop, used to cross-check the fast one.
func naiveChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}

func TestChecksumMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 300; n++ {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		if n%7 == 0 {
			for i := range b {
				b[i] = 0xff
			}
		}
		if got, want := Checksum(b, 0), naiveChecksum(b); got != want {
			t.Fatalf("len %d: got %#04x want %#04x", n, got, want)
		}
	}
}

func TestRFC1071Example(t *testing.T) {
	// RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
	if got := Checksum([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, 0); got != 0xddf2 {
		t.Fatalf("got %#04x", got)
	}
}

func TestPseudoHeaderSum(t *testing.T) {
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	b := []byte{10, 0, 0, 1, 10, 0, 0, 2, 0, 6, 0, 40}
	if got, want := PseudoHeaderSum(src, dst, 6, 40), naiveChecksum(b); got != want {
		t.Fatalf("got %#04x want %#04x", got, want)
	}
}

func BenchmarkChecksum1500(b *testing.B) {
	buf := make([]byte, 1500)
	b.SetBytes(1500)
	for range b.N {
		Checksum(buf, 0)
	}
}

func BenchmarkChecksum64K(b *testing.B) {
	buf := make([]byte, 65536)
	b.SetBytes(int64(len(buf)))
	for range b.N {
		Checksum(buf, 0)
	}
}

func TestChecksumInitialAndSplits(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, 3001)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	want := naiveChecksum(b)
	// Summing in two even-length pieces, the second seeded with the first,
	// must agree with one pass.
	for _, cut := range []int{0, 2, 64, 1000, 3000} {
		if got := Checksum(b[cut:], Checksum(b[:cut], 0)); got != want {
			t.Fatalf("cut %d: %#04x want %#04x", cut, got, want)
		}
	}
}

// TestPseudoHeaderSumIPv6: a TCP segment over IPv6 checksummed with
// PseudoHeaderSum matches gopacket's own computation (RFC 8200 §8.1), for
// several lengths, odd ones included.
func TestPseudoHeaderSumIPv6(t *testing.T) {
	src, dst := netip.MustParseAddr("fd00::2"), netip.MustParseAddr("fe80::1:ff:fe12:3456")
	for _, n := range []int{0, 1, 7, 1220} {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP,
			SrcIP: net.IP(src.AsSlice()), DstIP: net.IP(dst.AsSlice())}
		tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 12345, Ack: 678, ACK: true, Window: 500}
		tcp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		payload := make([]byte, n)
		for i := range payload {
			payload[i] = byte(i*7 + 3)
		}
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true},
			ip, tcp, gopacket.Payload(payload)); err != nil {
			t.Fatal(err)
		}
		seg := append([]byte(nil), buf.Bytes()[40:]...)
		want := binary.BigEndian.Uint16(seg[16:])
		seg[16], seg[17] = 0, 0
		if got := TCPChecksum(src, dst, seg); got != want {
			t.Errorf("%d-byte payload: checksum %#04x, gopacket %#04x", n, got, want)
		}
		binary.BigEndian.PutUint16(seg[16:], want)
		if !TCP(seg).VerifyChecksum(src, dst) {
			t.Errorf("%d-byte payload: gopacket's segment does not verify", n)
		}
	}
}
