package tcp

import (
	"bytes"
	"testing"
)

// TestIdleConnectionKeepsNoBuffers: after a request is read and its reply
// acknowledged, both rings are back in the pool (an idle connection holds
// no buffer, as a Linux socket holds no skb), and the next exchange works
// from fresh storage with none of the last one's bytes showing.
func TestIdleConnectionKeepsNoBuffers(t *testing.T) {
	h := newHarness(t, nil)
	l := h.listen(8)
	c, iss, irs := h.estab(l, 5000, nil)
	seq, ack := irs+1, iss+1
	buf := make([]byte, 64)
	for round, msg := range []string{"first request", "second"} {
		h.inject(seg{src: 5000, dst: 80, seq: seq, ack: ack, flags: fA | fP, data: []byte(msg)})
		seq += uint32(len(msg))
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != msg {
			t.Fatalf("round %d: read %q %v", round, buf[:n], err)
		}
		if c.rcv.buf.cap() != 0 {
			t.Fatalf("round %d: receive ring of %d bytes kept after everything was read", round, c.rcv.buf.cap())
		}
		reply := bytes.Repeat([]byte{byte('a' + round)}, 100)
		if _, err := c.Write(reply); err != nil {
			t.Fatal(err)
		}
		h.drain()
		if c.snd.buf.cap() == 0 {
			t.Fatalf("round %d: no send ring while the reply is unacknowledged", round)
		}
		ack += uint32(len(reply))
		h.inject(seg{src: 5000, dst: 80, seq: seq, ack: ack, flags: fA})
		if c.snd.buf.cap() != 0 {
			t.Fatalf("round %d: send ring of %d bytes kept after the reply was acknowledged", round, c.snd.buf.cap())
		}
	}
}

// TestRingPoolClears: storage taken from the pool is zeroed, whatever the
// ring that gave it back held.
func TestRingPoolClears(t *testing.T) {
	var r ring
	r.reserve(minRing, 0)
	r.writeAt(0, bytes.Repeat([]byte{0xee}, minRing))
	r.n = minRing
	r.consume(minRing)
	r.release()
	for range 4 {
		b := getRingBuf(minRing)
		if i := bytes.IndexByte(b, 0xee); i >= 0 {
			t.Fatalf("pooled ring storage shows an old byte at %d", i)
		}
		putRingBuf(b)
	}
	if ringClass(3000) != -1 || ringClass(4096) != 2 {
		t.Fatalf("ringClass(3000)=%d ringClass(4096)=%d", ringClass(3000), ringClass(4096))
	}
}
