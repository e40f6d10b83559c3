package netdev

import (
	"testing"

	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/wire"
)

// BenchmarkReceiveProcess: Receive (checks, flow hash, enqueue_to_backlog)
// plus one poll delivering the frame to a no-op handler. Must be 0 allocs/op.
func BenchmarkReceiveProcess(b *testing.B) {
	link, peer := newTestPipe(1)
	defer peer.Close()
	d := New(link, Config{Shards: 4})
	defer d.Close()
	d.Handle(wire.EtherTypeIPv4, func(*pkt.Buffer) {})
	frame := flowFrame(1, 1)
	s := d.shards[0]
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		p := pkt.GetRx(1514)
		p.SetLen(copy(p.Store(), frame))
		if !d.Receive(p) {
			b.Fatal("dropped")
		}
		s = d.shards[p.Shard]
		s.netRxAction()
	}
}

// BenchmarkReceiveWithWorkers feeds Receive from the benchmark goroutine
// while the started workers drain the backlogs (drops are possible when
// the producer outruns them; they are reported).
func BenchmarkReceiveWithWorkers(b *testing.B) {
	link, peer := newTestPipe(1)
	defer peer.Close()
	d := New(link, Config{Shards: 2})
	d.Handle(wire.EtherTypeIPv4, func(*pkt.Buffer) {})
	d.Start()
	frames := [][]byte{flowFrame(1, 1), flowFrame(2, 1), flowFrame(3, 1), flowFrame(4, 1)}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		f := frames[i%len(frames)]
		i++
		p := pkt.GetRx(1514)
		p.SetLen(copy(p.Store(), f))
		d.Receive(p)
	}
	b.StopTimer()
	d.Close()
	c := counters(d)
	b.ReportMetric(float64(c["SoftnetDropped"])/float64(b.N), "drops/op")
}
