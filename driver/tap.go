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
	name   string
	queues []*water.Interface
	mac    net.HardwareAddr
	mtu    int

	life tapLife
}

var _ Link = (*TAP)(nil)

// OpenTAP creates (or attaches to) the TAP device name with the given number
// of queues (IFF_MULTI_QUEUE when queues > 1), in the calling thread's
// network namespace. An empty name lets the kernel pick one (tapN). The
// stack's side gets a random locally administered MAC, distinct from the
// kernel's MAC on the interface.
func OpenTAP(name string, queues int) (*TAP, error) {
	if queues < 1 {
		return nil, fmt.Errorf("driver: open tap %q: %d queues", name, queues)
	}
	t := &TAP{name: name, mac: RandomMAC(), mtu: 1500}
	t.life.kind = "tap"
	for q := range queues {
		cfg := water.Config{DeviceType: water.TAP}
		cfg.Name = t.name
		cfg.MultiQueue = queues > 1
		ifce, err := water.New(cfg)
		if err != nil {
			for _, open := range t.queues {
				open.Close()
			}
			return nil, fmt.Errorf("driver: open tap %q queue %d: %w", name, q, err)
		}
		// The first queue names the device; the others attach to it.
		t.name = ifce.Name()
		t.queues = append(t.queues, ifce)
	}
	return t, nil
}

// Name is the kernel's interface name.
func (t *TAP) Name() string { return t.name }

// Queues is the number of queues (file descriptors).
func (t *TAP) Queues() int { return len(t.queues) }

// MTU is 1500, the kernel's default for a TAP.
func (t *TAP) MTU() int { return t.mtu }

// MAC is the stack's address on this link (not the kernel interface's).
func (t *TAP) MAC() net.HardwareAddr { return t.mac }

// ReadFrame reads one frame from queue q; a frame longer than b is
// truncated by the kernel. After Close it returns net.ErrClosed.
func (t *TAP) ReadFrame(q int, b []byte) (int, error) {
	if q < 0 || q >= len(t.queues) {
		return 0, fmt.Errorf("driver: tap %s: no queue %d", t.name, q)
	}
	n, err := t.queues[q].Read(b)
	if err != nil {
		return 0, t.ioError("read", q, err)
	}
	return n, nil
}

// WriteFrame writes one whole frame on queue q.
func (t *TAP) WriteFrame(q int, b []byte) error {
	if q < 0 || q >= len(t.queues) {
		return fmt.Errorf("driver: tap %s: no queue %d", t.name, q)
	}
	if _, err := t.queues[q].Write(b); err != nil {
		return t.ioError("write", q, err)
	}
	return nil
}

func (t *TAP) ioError(op string, q int, err error) error {
	return t.life.ioError(t.name, op, q, err)
}

// Close closes every queue, which unblocks their readers (they get
// net.ErrClosed) and removes the device. It is idempotent.
func (t *TAP) Close() error {
	return t.life.closeQueues(t.name, len(t.queues), func(q int) error { return t.queues[q].Close() })
}
