package driver

import (
	"fmt"
	"net"

	"github.com/songgao/water"
)

// TAP is a Linux TAP device opened through github.com/songgao/water, one
// file descriptor per queue. The device lives in the network namespace of
// the thread that called OpenTAP (the fds keep it for their whole life) and
// disappears when the TAP is closed.
type TAP struct {
	waterLink
	mac net.HardwareAddr
}

var _ Link = (*TAP)(nil)

// OpenTAP creates (or attaches to) the TAP device name with the given number
// of queues (IFF_MULTI_QUEUE when queues > 1), in the calling thread's
// network namespace. An empty name lets the kernel pick one (tapN). The
// stack's side gets a random locally administered MAC, distinct from the
// kernel's MAC on the interface.
func OpenTAP(name string, queues int) (*TAP, error) {
	t := &TAP{mac: RandomMAC()}
	if err := t.open("tap", water.TAP, name, queues); err != nil {
		return nil, err
	}
	return t, nil
}

// MAC is the stack's address on this link (not the kernel interface's).
func (t *TAP) MAC() net.HardwareAddr { return t.mac }

// waterLink is what TAP and TUN share: a device opened through water with
// IFF_NO_PI, one non-blocking fd per queue read and written through the Go
// poller (water opens /dev/net/tun with O_NONBLOCK and never calls Fd).
type waterLink struct {
	name   string
	queues []*water.Interface
	mtu    int

	life tapLife
}

// open creates or attaches to the device (TUNSETIFF), one fd per queue.
func (w *waterLink) open(kind string, typ water.DeviceType, name string, queues int) error {
	if queues < 1 {
		return fmt.Errorf("driver: open %s %q: %d queues", kind, name, queues)
	}
	w.name, w.mtu, w.life.kind = name, 1500, kind
	for q := range queues {
		cfg := water.Config{DeviceType: typ}
		cfg.Name = w.name
		cfg.MultiQueue = queues > 1
		ifce, err := water.New(cfg)
		if err != nil {
			for _, open := range w.queues {
				open.Close()
			}
			return fmt.Errorf("driver: open %s %q queue %d: %w", kind, name, q, err)
		}
		// The first queue names the device; the others attach to it.
		w.name = ifce.Name()
		w.queues = append(w.queues, ifce)
	}
	return nil
}

// Name is the kernel's interface name.
func (w *waterLink) Name() string { return w.name }

// Queues is the number of queues (file descriptors).
func (w *waterLink) Queues() int { return len(w.queues) }

// MTU is 1500, the kernel's default for a TAP or a TUN.
func (w *waterLink) MTU() int { return w.mtu }

// ReadFrame reads one frame from queue q; a frame longer than b is
// truncated by the kernel. After Close it returns net.ErrClosed.
func (w *waterLink) ReadFrame(q int, b []byte) (int, error) {
	if q < 0 || q >= len(w.queues) {
		return 0, fmt.Errorf("driver: %s %s: no queue %d", w.life.kind, w.name, q)
	}
	n, err := w.queues[q].Read(b)
	if err != nil {
		return 0, w.ioError("read", q, err)
	}
	return n, nil
}

// WriteFrame writes one whole frame on queue q.
func (w *waterLink) WriteFrame(q int, b []byte) error {
	if q < 0 || q >= len(w.queues) {
		return fmt.Errorf("driver: %s %s: no queue %d", w.life.kind, w.name, q)
	}
	if _, err := w.queues[q].Write(b); err != nil {
		return w.ioError("write", q, err)
	}
	return nil
}

func (w *waterLink) ioError(op string, q int, err error) error {
	return w.life.ioError(w.name, op, q, err)
}

// Close closes every queue, which unblocks their readers (they get
// net.ErrClosed) and removes the device. It is idempotent.
func (w *waterLink) Close() error {
	return w.life.closeQueues(w.name, len(w.queues), func(q int) error { return w.queues[q].Close() })
}
