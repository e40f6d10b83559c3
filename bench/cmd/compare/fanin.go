package main

import (
	"net"
	"sync"
)

// fanIn merges the accept loops of a SO_REUSEPORT group into one
// net.Listener for the serving code: a goroutine accepts on each member,
// as a worker per listener would (nginx's reuseport), and hands what it
// accepted on. Close closes every member.
func fanIn(lns []net.Listener) net.Listener {
	f := &fanInListener{lns: lns, conns: make(chan net.Conn), done: make(chan struct{})}
	for _, ln := range lns {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					f.fail(err)
					return
				}
				select {
				case f.conns <- c:
				case <-f.done:
					c.Close()
					return
				}
			}
		}()
	}
	return f
}

type fanInListener struct {
	lns   []net.Listener
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	mu    sync.Mutex
	err   error
}

func (f *fanInListener) fail(err error) {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
	f.Close()
}

func (f *fanInListener) Accept() (net.Conn, error) {
	select {
	case c := <-f.conns:
		return c, nil
	case <-f.done:
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.err != nil {
			return nil, f.err
		}
		return nil, net.ErrClosed
	}
}

func (f *fanInListener) Close() error {
	f.once.Do(func() {
		close(f.done)
		for _, ln := range f.lns {
			ln.Close()
		}
	})
	return nil
}

func (f *fanInListener) Addr() net.Addr { return f.lns[0].Addr() }
