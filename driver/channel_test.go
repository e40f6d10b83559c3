package driver

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/testenv/testwait"
)

func TestChannelCarriesPacketsBothWays(t *testing.T) {
	c := NewChannel(ChannelConfig{MTU: 1280, Queues: 2})
	defer c.Close()
	if c.MTU() != 1280 || c.Queues() != 2 || c.MAC() != nil || !IsL3(c) {
		t.Fatalf("mtu %d queues %d mac %v l3 %v", c.MTU(), c.Queues(), c.MAC(), IsL3(c))
	}
	in := []byte{0x45, 1, 2, 3}
	if err := c.InjectQueue(1, in); err != nil {
		t.Fatal(err)
	}
	in[1] = 0xff // Inject copied it
	buf := make([]byte, 2048)
	n, err := c.ReadFrame(1, buf)
	if err != nil || !bytes.Equal(buf[:n], []byte{0x45, 1, 2, 3}) {
		t.Fatalf("ReadFrame = % x, %v", buf[:n], err)
	}
	if _, ok := c.TryRead(buf); ok {
		t.Fatal("TryRead found a packet nobody sent")
	}
	if err := c.WriteFrame(1, []byte{0x60, 9}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Ready():
	default:
		t.Fatal("Ready did not ring for a sent packet")
	}
	n, err = c.Read(context.Background(), buf)
	if err != nil || !bytes.Equal(buf[:n], []byte{0x60, 9}) {
		t.Fatalf("Read = % x, %v", buf[:n], err)
	}
	if err := c.WriteFrame(0, make([]byte, 1281)); !errors.Is(err, errFrameSize) {
		t.Fatalf("WriteFrame over the MTU: %v", err)
	}
	if err := c.Inject(make([]byte, 1281)); !errors.Is(err, errFrameSize) {
		t.Fatalf("Inject over the MTU: %v", err)
	}
	if err := c.InjectQueue(2, in); err == nil {
		t.Fatal("InjectQueue accepted queue 2 of 2")
	}
	if st := c.Stats(); st != (ChannelStats{Injected: 1, Sent: 1}) {
		t.Fatalf("stats %+v", st)
	}
}

// TestChannelQueuesAreBounded: past its bound each direction drops and
// counts, and reading makes room again.
func TestChannelQueuesAreBounded(t *testing.T) {
	c := NewChannel(ChannelConfig{InboundLen: 2, OutboundLen: 3})
	defer c.Close()
	for i := range 5 {
		err := c.Inject([]byte{0x45, byte(i)})
		if want := i >= 2; errors.Is(err, ErrChannelFull) != want {
			t.Fatalf("inject %d: %v", i, err)
		}
		err = c.WriteFrame(0, []byte{0x45, byte(i)})
		if want := i >= 3; errors.Is(err, ErrChannelFull) != want {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	want := ChannelStats{Injected: 2, InjectDrops: 3, Sent: 3, SendDrops: 2, Inbound: 2, Outbound: 3}
	if st := c.Stats(); st != want {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
	buf := make([]byte, 64)
	for i := range 3 { // the oldest survive, in order
		if n, ok := c.TryRead(buf); !ok || n != 2 || buf[1] != byte(i) {
			t.Fatalf("TryRead %d: % x %v", i, buf[:n], ok)
		}
	}
	if err := c.WriteFrame(0, []byte{0x45}); err != nil {
		t.Fatalf("write after reading: %v", err)
	}
	if _, err := c.ReadFrame(0, buf); err != nil {
		t.Fatal(err)
	}
	if err := c.Inject([]byte{0x45}); err != nil {
		t.Fatalf("inject after reading: %v", err)
	}
}

func TestChannelReadEnds(t *testing.T) {
	c := NewChannel(ChannelConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := c.Read(ctx, make([]byte, 64)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read past its deadline: %v", err)
	}
	errs := make(chan error, 2)
	go func() {
		_, err := c.ReadFrame(0, make([]byte, 64))
		errs <- err
	}()
	go func() {
		_, err := c.Read(context.Background(), make([]byte, 64))
		errs <- err
	}()
	if err := c.Inject([]byte{0x45}); err != nil {
		t.Fatal(err)
	}
	if err := testwait.Recv(t, errs, "the reader of the injected packet"); err != nil {
		t.Fatal(err)
	}
	c.WriteFrame(0, []byte{0x45})
	if err := testwait.Recv(t, errs, "the reader of the sent packet"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	c.Inject([]byte{0x45})
	if _, err := c.ReadFrame(0, make([]byte, 64)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("ReadFrame after Close: %v", err)
	}
	if err := c.Inject([]byte{0x45}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Inject after Close: %v", err)
	}
	if err := c.WriteFrame(0, []byte{0x45}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("WriteFrame after Close: %v", err)
	}
	if _, err := c.Read(context.Background(), make([]byte, 64)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	c.Close()
}

// TestChannelCloseUnblocksReaders: a reader waiting on an empty queue
// returns net.ErrClosed when the channel closes.
func TestChannelCloseUnblocksReaders(t *testing.T) {
	c := NewChannel(ChannelConfig{})
	errs := make(chan error, 2)
	go func() { _, err := c.ReadFrame(0, make([]byte, 64)); errs <- err }()
	go func() { _, err := c.Read(context.Background(), make([]byte, 64)); errs <- err }()
	time.Sleep(5 * time.Millisecond)
	c.Close()
	for range 2 {
		if err := testwait.Recv(t, errs, "a reader unblocked by Close"); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("reader: %v", err)
		}
	}
}

func BenchmarkChannelInjectRead(b *testing.B) {
	c := NewChannel(ChannelConfig{})
	defer c.Close()
	p := make([]byte, 1400)
	p[0] = 0x45
	buf := make([]byte, 1500)
	b.ReportAllocs()
	for b.Loop() {
		c.Inject(p)
		c.ReadFrame(0, buf)
		c.WriteFrame(0, p)
		c.TryRead(buf)
	}
}

// TestPcapTeeOverL3 records an L3 link as LINKTYPE_RAW and stays L3.
func TestPcapTeeOverL3(t *testing.T) {
	var w bytes.Buffer
	tee, err := NewPcapTee(NewChannel(ChannelConfig{}), &w)
	if err != nil {
		t.Fatal(err)
	}
	defer tee.Close()
	if !IsL3(tee) || IsL3(Impair(tee, Impairment{}, Impairment{})) != true {
		t.Fatal("the wrappers of an L3 link are not L3")
	}
	if lt := binary.LittleEndian.Uint32(w.Bytes()[20:]); lt != 101 {
		t.Fatalf("pcap link type %d, want 101 (LINKTYPE_RAW)", lt)
	}
	a, _ := NewPipe(PipeConfig{}, PipeConfig{})
	defer a.Close()
	if IsL3(a) {
		t.Fatal("a pipe end is L3")
	}
}
