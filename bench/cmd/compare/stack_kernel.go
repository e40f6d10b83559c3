package main

import (
	"context"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

func init() {
	registerStack(&stackDef{Name: "kernel", Label: "Linux kernel (veth)", Listen: listenKernel})
}

// listenKernel listens with kernel sockets; a second listen(2) on the
// listening socket sets the backlog (Go always passes somaxconn).
func listenKernel(c serverConfig) (net.Listener, served, error) {
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp4", c.Addr.String())
	if err != nil {
		return nil, served{}, err
	}
	raw, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		ln.Close()
		return nil, served{}, err
	}
	var lerr error
	if err := raw.Control(func(fd uintptr) { lerr = unix.Listen(int(fd), c.Backlog) }); err != nil {
		lerr = err
	}
	if lerr != nil {
		ln.Close()
		return nil, served{}, fmt.Errorf("listen backlog %d: %w", c.Backlog, lerr)
	}
	// The server netns has no other TCP than this server's.
	return ln, served{Close: func() {}, Counters: readKernelTCPCounters}, nil
}
