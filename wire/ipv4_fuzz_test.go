package wire

import (
	"bytes"
	"testing"
)

// FuzzIPv4 parses arbitrary bytes; where the parse succeeds it checks the
// view's invariants and that re-emitting the parsed form reproduces the
// header bytes (with a recomputed checksum).
func FuzzIPv4(f *testing.F) {
	f.Add(validIPv4())
	f.Add([]byte{0x46, 0, 0, 28, 0, 1, 0x20, 0x01, 1, 6, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0x94, 4, 0, 0, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		hdr, herr := ParseIPv4Header(b)
		h, err := ParseIPv4(b)
		if err != nil {
			if herr == nil && err != ErrIPv4TotalLen && err != ErrIPv4TotalLenLong {
				t.Fatalf("header ok but ParseIPv4: %v", err)
			}
			return
		}
		if herr != nil || len(hdr) != len(b) {
			t.Fatalf("ParseIPv4 ok but header: %v", herr)
		}
		if len(h) != int(h.TotalLen()) || h.HeaderLen() < 20 || h.HeaderLen() > len(h) || h.Version() != 4 {
			t.Fatalf("invariants: len %d total %d hl %d", len(h), h.TotalLen(), h.HeaderLen())
		}
		_ = h.Src()
		_ = h.Dst()
		_ = h.ChecksumValid()
		var r IPv4Repr
		ParseIPv4Repr(h, &r)
		if r.PayloadLen != len(h.Payload()) || len(r.Options) != h.HeaderLen()-20 {
			t.Fatalf("repr %+v", r)
		}
		// Plain slices, not pooled buffers (stable coverage for the fuzzer).
		out := IPv4(make([]byte, len(h)))
		r.Emit(out)
		copy(out[r.HeaderLen():], h.Payload())
		if !out.ChecksumValid() {
			t.Fatal("emitted checksum invalid")
		}
		want := bytes.Clone(h)
		want[6] &^= 0x80 // the reserved flag bit is not part of the repr
		IPv4(want).SetChecksum()
		if !bytes.Equal(out, want) {
			t.Fatalf("re-emit\n got %x\nwant %x", []byte(out), want)
		}
	})
}

// FuzzICMP parses arbitrary bytes as ICMPv4 and, for errors, the quote.
func FuzzICMP(f *testing.F) {
	f.Add([]byte{8, 0, 0xf7, 0xff, 0, 0, 0, 0})
	f.Add(append([]byte{3, 4, 0, 0, 0, 0, 5, 0x78}, validIPv4()...))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseICMPv4(b)
		if err != nil {
			if len(b) >= 8 {
				t.Fatal(err)
			}
			return
		}
		_ = m.ChecksumValid()
		if q, rest, err := m.Quoted(); err == nil {
			if len(rest) < 8 || q.HeaderLen() < 20 || q.HeaderLen()+len(rest) != len(m.Payload()) {
				t.Fatalf("quote hl %d rest %d", q.HeaderLen(), len(rest))
			}
			_ = q.Src()
		}
		out := ICMPv4(bytes.Clone(m))
		out.SetType(m.Type())
		out.SetCode(m.Code())
		out.SetRestOfHeader(m.RestOfHeader())
		out.SetChecksum()
		if !out.ChecksumValid() || !bytes.Equal(out[4:], m[4:]) || out[0] != m[0] || out[1] != m[1] {
			t.Fatalf("re-emit %x from %x", []byte(out), []byte(m))
		}
		// A valid original checksum equals ours, up to one's-complement ±0.
		if m.ChecksumValid() && out.Checksum() != m.Checksum() && out.Checksum()^m.Checksum() != 0xffff {
			t.Fatalf("checksum %#x, original %#x", out.Checksum(), m.Checksum())
		}
	})
}
