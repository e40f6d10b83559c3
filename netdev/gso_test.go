package netdev

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/wire"
)

// jumboLink is a pipe end that carries frames up to 9014 bytes while
// reporting a 1500-byte MTU, as an offload TAP does with super-frames, and
// records WriteGSO calls.
type jumboLink struct {
	*driver.PipeEnd
	gso []gsoWrite
}

type gsoWrite struct {
	q     int
	frame []byte
	mss   int
}

func (l *jumboLink) MTU() int          { return 1500 }
func (l *jumboLink) MaxFrameSize() int { return 9014 }
func (l *jumboLink) GSOMax() int       { return 9014 }
func (l *jumboLink) WriteGSO(q int, frame []byte, mss int) error {
	l.gso = append(l.gso, gsoWrite{q, slices.Clone(frame), mss})
	return nil
}

func newJumboPipe() (*jumboLink, *driver.PipeEnd) {
	big := driver.Impairment{QueueLimit: 1 << 10}
	a, b := driver.NewPipe(
		driver.PipeConfig{MAC: ourMAC, MTU: 9000, Impair: big},
		driver.PipeConfig{MAC: peerMAC, MTU: 9000, Impair: big})
	return &jumboLink{PipeEnd: a}, b
}

// bigFrame is a TCP/IPv4 frame to us with size bytes in all.
func bigFrame(size int) []byte {
	f := flowFrame(1, 7)
	f = append(f, make([]byte, size-len(f))...)
	binary.BigEndian.PutUint16(f[14+2:], uint16(size-14))
	for i := 14 + 44; i < size; i++ {
		f[i] = byte(i)
	}
	return f
}

// TestLargeFrameLinkReceive: over a LargeFrameLink the readers deliver
// frames longer than MTU+14 whole, and small ones intact too.
func TestLargeFrameLinkReceive(t *testing.T) {
	link, peer := newJumboPipe()
	defer peer.Close()
	d := New(link, Config{Shards: 1})
	if d.MaxFrameSize() != 9014 {
		t.Fatalf("MaxFrameSize %d", d.MaxFrameSize())
	}
	got := make(chan []byte, 8)
	d.Handle(wire.EtherTypeIPv4, func(b *pkt.Buffer) { got <- slices.Clone(b.Bytes()) })
	d.Start()
	defer d.Close()
	for _, size := range []int{9014, 60, 3000, 1514} {
		f := bigFrame(max(size, 60))
		if err := peer.WriteFrame(0, f); err != nil {
			t.Fatal(err)
		}
		if p := <-got; !slices.Equal(p, f[14:]) {
			t.Fatalf("%d-byte frame: delivered %d bytes, differs", size, len(p))
		}
	}
	if c := counters(d); c["NetdevRxFrames"] != 4 || c["SoftnetDropped"] != 0 {
		t.Fatalf("counters %v", c)
	}
}

func TestTransmitGSO(t *testing.T) {
	plain, peer := newTestPipe(1)
	defer peer.Close()
	d := New(plain, Config{Shards: 1})
	defer d.Close()
	if d.GSOMax() != 0 {
		t.Fatalf("plain pipe GSOMax %d", d.GSOMax())
	}
	b := pkt.Get(3000)
	b.Append(3000)
	if err := d.TransmitGSO(peerMAC, wire.EtherTypeIPv4, b, 1448); !errors.Is(err, ErrNoGSO) {
		t.Fatalf("TransmitGSO on a plain link: %v", err)
	}

	link, peer2 := newJumboPipe()
	defer peer2.Close()
	g := New(link, Config{Shards: 2})
	defer g.Close()
	if g.GSOMax() != 9014 {
		t.Fatalf("GSOMax %d", g.GSOMax())
	}
	payload := bigFrame(8000)[14:]
	for _, tc := range []struct {
		name  string
		size  int
		ether uint16
		mss   int
		ok    bool
	}{
		{"super-frame", len(payload), wire.EtherTypeIPv4, 1448, true},
		{"beyond GSOMax", 9001, wire.EtherTypeIPv4, 1448, false},
		{"not IPv4", len(payload), wire.EtherTypeARP, 1448, false},
		{"no mss", len(payload), wire.EtherTypeIPv4, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := pkt.Get(tc.size)
			copy(b.Append(tc.size), payload)
			b.Shard = 1
			err := g.TransmitGSO(peerMAC, tc.ether, b, tc.mss)
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
		})
	}
	if len(link.gso) != 1 {
		t.Fatalf("%d GSO writes", len(link.gso))
	}
	w := link.gso[0]
	if w.mss != 1448 || w.q != 0 || !slices.Equal(w.frame[14:], payload) ||
		!slices.Equal(w.frame[0:6], peerMAC) || !slices.Equal(w.frame[6:12], ourMAC) {
		t.Fatalf("GSO write q %d mss %d, %d bytes", w.q, w.mss, len(w.frame))
	}
	// Plain Transmit still holds to the MTU.
	b = pkt.Get(3000)
	b.Append(3000)
	if err := g.Transmit(peerMAC, wire.EtherTypeIPv4, b); !errors.Is(err, errTooBig) {
		t.Fatalf("Transmit beyond MTU: %v", err)
	}
	if c := counters(g); c["NetdevTxFrames"] != 1 || c["NetdevTxErrors"] != 4 {
		t.Fatalf("counters %v", c)
	}
}
