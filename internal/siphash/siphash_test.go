package siphash

import (
	"encoding/binary"
	"testing"
)

func TestSipHashPaperVectors(t *testing.T) {
	var kb [16]byte
	var msg [16]byte
	for i := range kb {
		kb[i] = byte(i)
		msg[i] = byte(i)
	}
	k := KeyFrom(kb[:])
	// Reference implementation vectors (key 00..0f, message 00..len-1);
	// 15 bytes is the paper's Appendix A example.
	tests := []struct {
		n    int
		want uint64
	}{
		{0, 0x726fdb47dd0e0e31},
		{1, 0x74f839c593dc67fd},
		{2, 0x0d6c8009d9a94f5a},
		{3, 0x85676696d7fb7e2d},
		{4, 0xcf2794e0277187b7},
		{8, 0x93f5f5799a932462},
		{15, 0xa129ca6149be45e5},
	}
	for _, tc := range tests {
		if got := Sum64(k, msg[:tc.n]); got != tc.want {
			t.Errorf("len %d: got %#x want %#x", tc.n, got, tc.want)
		}
	}
	a, b := binary.LittleEndian.Uint32(msg[0:]), binary.LittleEndian.Uint32(msg[4:])
	c, d := binary.LittleEndian.Uint32(msg[8:]), binary.LittleEndian.Uint32(msg[12:])
	if got, want := Sum4u32(k, a, b, c, d), Sum64(k, msg[:]); got != want {
		t.Errorf("Sum4u32 %#x != Sum64 of the same 16 bytes %#x", got, want)
	}
}
