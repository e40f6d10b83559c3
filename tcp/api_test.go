package tcp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"golang.org/x/net/nettest"
	"io"
	"math/rand"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/pkt"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
)

// chanLink delivers packets on a goroutine in real time (real clock), so
// the blocking net.Conn API is exercised as applications use it.
type chanLink struct {
	stacks map[netip.Addr]*Stack
	ch     chan chanPkt
	done   chan struct{}
	wg     sync.WaitGroup
}

type chanPkt struct {
	src, dst netip.Addr
	b        *pkt.Buffer
}

type chanEnd struct {
	l    *chanLink
	addr netip.Addr
}

func (e *chanEnd) Route(netip.Addr) (netip.Addr, int, error) { return e.addr, 1500, nil }
func (e *chanEnd) Output(src, dst netip.Addr, _ uint8, b *pkt.Buffer) error {
	select {
	case e.l.ch <- chanPkt{src, dst, b}:
	default:
		b.Release() // a full queue drops, like a NIC ring
	}
	return nil
}

func newChanLink(t testing.TB) (*chanLink, *Stack, *Stack) {
	l := &chanLink{stacks: map[netip.Addr]*Stack{}, ch: make(chan chanPkt, 4096), done: make(chan struct{})}
	for _, a := range []netip.Addr{addrA, addrB} {
		l.stacks[a] = New(Config{Network: &chanEnd{l, a}, Rand: rand.New(rand.NewSource(int64(a.As4()[3])))})
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for {
			select {
			case p := <-l.ch:
				l.stacks[p.dst].Deliver(p.src, p.dst, p.b.Bytes(), 0, false)
				p.b.Release()
			case <-l.done:
				return
			}
		}
	}()
	t.Cleanup(func() {
		for _, s := range l.stacks {
			s.Close()
		}
		close(l.done)
		l.wg.Wait()
	})
	return l, l.stacks[addrA], l.stacks[addrB]
}

func TestNetConnEcho(t *testing.T) {
	_, a, b := newChanLink(t)
	ln, err := b.Listen(netip.AddrPortFrom(addrB, 7), 16)
	if err != nil {
		t.Fatal(err)
	}
	var _ net.Listener = ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := a.Dial(context.Background(), netip.AddrPort{}, netip.AddrPortFrom(addrB, 7))
			if err != nil {
				t.Error(err)
				return
			}
			var _ net.Conn = c
			data := make([]byte, 1<<20)
			rand.New(rand.NewSource(int64(i))).Read(data)
			go func() {
				c.Write(data)
				c.CloseWrite()
			}()
			got, err := io.ReadAll(c)
			if err != nil || sha256.Sum256(got) != sha256.Sum256(data) {
				t.Errorf("echo %d: %d bytes, err %v", i, len(got), err)
			}
			c.Close()
		}(i)
	}
	wg.Wait()
	// Nothing listens on port 8: refused.
	_, err = a.Dial(context.Background(), netip.AddrPort{}, netip.AddrPortFrom(addrB, 8))
	var oe *net.OpError
	if !errors.As(err, &oe) || !errors.Is(err, errRefused()) {
		t.Fatalf("dial to closed port: %v", err)
	}
	ln.Close()
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("accept after close: %v", err)
	}
}

func TestNetConnReadDeadlineRealClock(t *testing.T) {
	_, a, b := newChanLink(t)
	ln, _ := b.Listen(netip.AddrPortFrom(addrB, 7), 16)
	timedOut := make(chan struct{})
	go func() { // the data comes only after the deadline has done its work
		c, _ := ln.Accept()
		<-timedOut
		c.Write([]byte("late"))
	}()
	c, err := a.Dial(context.Background(), netip.AddrPort{}, netip.AddrPortFrom(addrB, 7))
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err = c.Read(make([]byte, 4))
	close(timedOut)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	c.SetReadDeadline(time.Time{})
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || !bytes.Equal(buf, []byte("late")) {
		t.Fatalf("read %q %v", buf, err)
	}
	// A pending Read is woken by Close.
	readErr := make(chan error, 1)
	go func() { _, err := c.Read(buf); readErr <- err }()
	testwait.Parked(t, "tcp.(*Conn).Read")
	c.Close()
	if err := testwait.Recv(t, readErr, "Close to wake the Read"); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read during close: %v", err)
	}
}

func errRefused() error { return syscall.ECONNREFUSED }

// BenchmarkNetConnBulk streams through the blocking net.Conn API between
// two stacks joined by a goroutine-driven link (real clock): it includes
// the wakeups an application pays for.
func BenchmarkNetConnBulk(b *testing.B) {
	_, a, srv := newChanLink(b)
	ln, _ := srv.Listen(netip.AddrPortFrom(addrB, 9), 16)
	done := make(chan int64)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- 0
			return
		}
		n, _ := io.Copy(io.Discard, c)
		done <- n
	}()
	c, err := a.Dial(context.Background(), netip.AddrPort{}, netip.AddrPortFrom(addrB, 9))
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	c.CloseWrite()
	if n := <-done; n != int64(b.N)*int64(len(chunk)) {
		b.Fatalf("received %d", n)
	}
}

// TestNetConnConformance runs golang.org/x/net/nettest's net.Conn suite on
// a connection between two stacks (real clock): basic and racy I/O, Close
// waking blocked calls, and deadlines in the past, present and future,
// moved while Read and Write block, from many goroutines at once.
func TestNetConnConformance(t *testing.T) {
	nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
		_, a, b := newChanLink(t)
		ln, err := b.Listen(netip.AddrPortFrom(addrB, 7), 1)
		if err != nil {
			return nil, nil, nil, err
		}
		accepted := make(chan net.Conn, 1)
		go func() {
			c, _ := ln.Accept()
			accepted <- c
		}()
		c1, err := a.Dial(context.Background(), netip.AddrPort{}, netip.AddrPortFrom(addrB, 7))
		if err != nil {
			return nil, nil, nil, err
		}
		c2 := <-accepted
		if c2 == nil {
			return nil, nil, nil, errors.New("accept failed")
		}
		return c1, c2, func() { c1.Close(); c2.Close(); ln.Close() }, nil
	})
}
