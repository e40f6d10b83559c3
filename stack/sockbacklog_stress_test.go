package stack_test

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/testenv/testwait"
)

// TestSocketBacklogStress runs under -race: eight connections over the pipe
// carry 256 KB each way at once, a reader and a writer on each end, while
// other goroutines keep taking the same sockets (setters, deadlines, the ss
// listing), so that segments keep finding them owned and go through the
// socket backlog. Every byte must arrive, in order.
func TestSocketBacklogStress(t *testing.T) {
	const conns, size = 8, 256 << 10
	p := newBoundPair(t, nil, nil)
	ln, err := p.a.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pattern := func(i, k int) byte { return byte(k*7 + k>>11 + i) }
	deadline := time.Now().Add(time.Until(testwait.Deadline(t)) * 3 / 4)
	var pumps, users sync.WaitGroup
	errs := make(chan error, 4*conns)
	stop := make(chan struct{})
	// pump writes the pattern on c and reads the peer's, checking each
	// byte; a third goroutine keeps owning the socket with setters.
	pump := func(c net.Conn, i int) {
		c.SetDeadline(deadline)
		pumps.Add(2)
		go func() {
			defer pumps.Done()
			buf := make([]byte, 7000)
			for off := 0; off < size; {
				n := min(len(buf), size-off)
				for k := range n {
					buf[k] = pattern(i, off+k)
				}
				if _, err := c.Write(buf[:n]); err != nil {
					errs <- fmt.Errorf("conn %d write at %d: %w", i, off, err)
					return
				}
				off += n
			}
		}()
		go func() {
			defer pumps.Done()
			buf := make([]byte, 5000)
			for off := 0; off < size; {
				n, err := c.Read(buf)
				for k := range n {
					if buf[k] != pattern(i, off+k) {
						errs <- fmt.Errorf("conn %d: byte %d is %d, want %d", i, off+k, buf[k], pattern(i, off+k))
						return
					}
				}
				off += n
				if err != nil {
					errs <- fmt.Errorf("conn %d read at %d: %w", i, off, err)
					return
				}
			}
		}()
		users.Add(1)
		go func() {
			defer users.Done()
			tc := c.(interface{ SetNoDelay(bool) error })
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				tc.SetNoDelay(k%2 == 0)
				c.SetReadDeadline(deadline)
				if k%64 == 0 {
					time.Sleep(100 * time.Microsecond)
				}
			}
		}()
	}
	accepted := make(chan net.Conn, conns)
	go func() {
		for range conns {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	var all []net.Conn
	defer func() {
		for _, c := range all {
			c.Close()
		}
	}()
	for i := range conns {
		c, err := p.b.Dial("tcp", "10.1.0.1:80")
		if err != nil {
			t.Fatal(err)
		}
		s := testwait.Recv(t, accepted, "accept")
		all = append(all, c, s)
		pump(c, i)
		pump(s, i)
	}
	users.Add(1)
	go func() { // the ss listing takes every socket in turn
		defer users.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			p.a.Sockets()
			p.b.Sockets()
			time.Sleep(200 * time.Microsecond)
		}
	}()
	pumps.Wait()
	close(stop)
	users.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("TCPBacklogCoalesce a %d b %d, TCPBacklogDrop a %d b %d, DelayedACKLocked a %d b %d",
		counter(t, p.a, "TcpExtTCPBacklogCoalesce"), counter(t, p.b, "TcpExtTCPBacklogCoalesce"),
		counter(t, p.a, "TcpExtTCPBacklogDrop"), counter(t, p.b, "TcpExtTCPBacklogDrop"),
		counter(t, p.a, "TcpExtDelayedACKLocked"), counter(t, p.b, "TcpExtDelayedACKLocked"))
}
