package tcp

import (
	"testing"
	"unsafe"
)

// TestConnSizeClass guards what an idle connection costs: Conn must stay
// within the allocator's 1152-byte size class (the next is 1280). Group a
// new field with others of its size, or make it lazily allocated.
func TestConnSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Conn{}); n > 1152 {
		t.Fatalf("Conn is %d bytes, past the 1152-byte size class", n)
	}
}
