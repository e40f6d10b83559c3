package wire

import (
	"bytes"
	"testing"
)

// FuzzEthernet parses arbitrary bytes and re-emits the header.
func FuzzEthernet(f *testing.F) {
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 8, 6, 1, 2})
	f.Add(make([]byte, 13))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEthernet(b)
		if (err != nil) != (len(b) < EthernetHeaderLen) {
			t.Fatalf("len %d err %v", len(b), err)
		}
		if err != nil {
			return
		}
		// Plain slices, not pooled buffers: pool hits and misses would make
		// coverage unstable and stall the fuzzer in minimisation.
		out := Ethernet(make([]byte, len(b)))
		out.SetDst(e.Dst())
		out.SetSrc(e.Src())
		out.SetEtherType(e.EtherType())
		copy(out.Payload(), e.Payload())
		if !bytes.Equal(out, b) {
			t.Fatalf("re-emit %x from %x", []byte(out), b)
		}
		_ = IsMulticastMAC(e.Dst())
	})
}

// FuzzARP parses arbitrary bytes as ARP and re-emits the parsed form.
func FuzzARP(f *testing.F) {
	f.Add([]byte{0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2})
	f.Add([]byte{0, 1, 8, 0, 6, 4, 0, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseARP(b)
		if err != nil {
			return
		}
		if len(a) != ARPLen {
			t.Fatalf("len %d", len(a))
		}
		r := ARPRepr{Op: a.Op(), SenderMAC: a.SenderMAC(), TargetMAC: a.TargetMAC(), SenderIP: a.SenderIP(), TargetIP: a.TargetIP()}
		out := ARP(make([]byte, ARPLen))
		r.Emit(out)
		if !bytes.Equal(out, a) {
			t.Fatalf("re-emit %x from %x", []byte(out), []byte(a))
		}
	})
}
