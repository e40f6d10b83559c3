package pkt

import (
	"bytes"
	"testing"
)

func TestPrependAppend(t *testing.T) {
	b := Get(100)
	defer b.Release()
	copy(b.Append(3), "abc")
	copy(b.Prepend(2), "xy")
	copy(b.Prepend(1), "<")
	if got := b.Bytes(); !bytes.Equal(got, []byte("<xyabc")) {
		t.Fatalf("window = %q", got)
	}
	b.TrimFront(3)
	if got := string(b.Bytes()); got != "abc" {
		t.Fatalf("after TrimFront: %q", got)
	}
	if b.Headroom() != Headroom-3+3 {
		t.Fatalf("headroom = %d", b.Headroom())
	}
}

func TestGetChoosesSizeClass(t *testing.T) {
	for _, tc := range []struct{ n, store int }{{1514, SmallSize}, {9000, LargeSize}, {65536, LargeSize}, {LargeSize, LargeSize + Headroom}} {
		b := Get(tc.n)
		if len(b.store) != tc.store {
			t.Errorf("Get(%d): store %d, want %d", tc.n, len(b.store), tc.store)
		}
		if b.Tailroom() < tc.n {
			t.Errorf("Get(%d): tailroom %d", tc.n, b.Tailroom())
		}
		b.Release()
	}
}

func BenchmarkGetRelease(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		p := Get(1500)
		p.Append(1500)
		p.Release()
	}
}
