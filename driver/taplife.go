package driver

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tapLife is what both TAP drivers share about their lifetime: the closed
// flag that turns I/O errors into net.ErrClosed, and a Close that closes
// every queue once and keeps the first error.
type tapLife struct {
	kind      string // "tap" or "offload tap", for messages
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

func (l *tapLife) ioError(name, op string, q int, err error) error {
	if l.closed.Load() || errors.Is(err, os.ErrClosed) {
		return net.ErrClosed
	}
	return fmt.Errorf("driver: %s %s queue %d %s: %w", l.kind, name, q, op, err)
}

// closeQueues closes queues 0..n-1 with closeQueue, once.
func (l *tapLife) closeQueues(name string, n int, closeQueue func(q int) error) error {
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		for q := range n {
			if err := closeQueue(q); err != nil && l.closeErr == nil {
				l.closeErr = fmt.Errorf("driver: close %s %s: %w", l.kind, name, err)
			}
		}
	})
	return l.closeErr
}

// iovSyscall runs readv or writev (trap) of two iovecs on a non-blocking
// fd, retrying EINTR; again reports EAGAIN (the poller must wait).
func iovSyscall(trap, fd uintptr, iov *[2]unix.Iovec) (n int, err error, again bool) {
	for {
		r, _, errno := unix.Syscall(trap, fd, uintptr(unsafe.Pointer(&iov[0])), 2)
		switch errno {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, nil, true
		case 0:
			return int(r), nil, false
		default:
			return 0, errno, false
		}
	}
}
