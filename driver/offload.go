package driver

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// OffloadTAP is a TAP device opened with IFF_VNET_HDR and offloads
// (TUN_F_CSUM|TUN_F_TSO4): every frame crosses the fd behind a
// virtio_net_hdr, the kernel hands over TCP super-frames of up to 64 KB
// with a partial checksum, and accepts super-frames it segments itself
// (WriteGSO). water cannot set IFF_VNET_HDR, so this opens /dev/net/tun
// with golang.org/x/sys/unix; the fds are non-blocking and read and
// written through the Go poller (os.File.SyscallConn, never Fd()).
//
// ReadFrame returns a super-frame as one frame, its TCP checksum completed:
// what GRO would have built. Each queue must have at most one reader.
type OffloadTAP struct {
	name   string
	queues []*offloadQueue
	mac    net.HardwareAddr
	mtu    int

	life tapLife

	rxBad, rxGSO, txGSO atomic.Uint64
}

var (
	_ LargeFrameLink = (*OffloadTAP)(nil)
	_ GSOLink        = (*OffloadTAP)(nil)
)

// offloadQueue is one fd with the iovecs and header of its reader and its
// writers, preallocated so a frame costs no allocation.
type offloadQueue struct {
	file *os.File
	rc   syscall.RawConn

	rhdr   [vnetHdrLen]byte
	riov   [2]unix.Iovec
	rn     int
	rerr   error
	readFn func(fd uintptr) bool

	wmu     sync.Mutex
	whdr    [vnetHdrLen]byte
	wiov    [2]unix.Iovec
	werr    error
	writeFn func(fd uintptr) bool
}

// OpenTAPOffload creates (or attaches to) the TAP device name with the
// given number of queues (IFF_MULTI_QUEUE when queues > 1) in the calling
// thread's network namespace, with a 12-byte little-endian virtio-net
// header and checksum + TSO4 offloads. An empty name lets the kernel pick.
func OpenTAPOffload(name string, queues int) (*OffloadTAP, error) {
	if queues < 1 {
		return nil, fmt.Errorf("driver: open offload tap %q: %d queues", name, queues)
	}
	t := &OffloadTAP{name: name, mac: RandomMAC(), mtu: 1500}
	t.life.kind = "offload tap"
	for q := range queues {
		oq, ifname, err := openOffloadQueue(t.name, queues > 1)
		if err != nil {
			for _, open := range t.queues {
				open.file.Close()
			}
			return nil, fmt.Errorf("driver: open offload tap %q queue %d: %w", name, q, err)
		}
		t.name = ifname // the first queue names the device; the others attach
		t.queues = append(t.queues, oq)
	}
	return t, nil
}

func openOffloadQueue(name string, multi bool) (*offloadQueue, string, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", err
	}
	fail := func(op string, err error) (*offloadQueue, string, error) {
		unix.Close(fd)
		return nil, "", fmt.Errorf("%s: %w", op, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fail("ifreq", err)
	}
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if multi {
		flags |= unix.IFF_MULTI_QUEUE
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return fail("TUNSETIFF", err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, vnetHdrLen); err != nil {
		return fail("TUNSETVNETHDRSZ", err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETLE, 1); err != nil {
		return fail("TUNSETVNETLE", err)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, unix.TUN_F_CSUM|unix.TUN_F_TSO4); err != nil {
		return fail("TUNSETOFFLOAD", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return fail("set non-blocking", err)
	}
	// A non-blocking fd makes os.NewFile register it with the poller.
	q := &offloadQueue{file: os.NewFile(uintptr(fd), "/dev/net/tun")}
	if q.rc, err = q.file.SyscallConn(); err != nil {
		q.file.Close()
		return nil, "", err
	}
	q.riov[0] = unix.Iovec{Base: &q.rhdr[0], Len: vnetHdrLen}
	q.wiov[0] = unix.Iovec{Base: &q.whdr[0], Len: vnetHdrLen}
	q.readFn = q.readv
	q.writeFn = q.writev
	return q, ifr.Name(), nil
}

// readv is the RawConn.Read callback: false asks the poller to wait.
func (q *offloadQueue) readv(fd uintptr) bool {
	n, err, again := iovSyscall(unix.SYS_READV, fd, &q.riov)
	q.rn, q.rerr = n, err
	return !again
}

// writev is the RawConn.Write callback; a TAP write sends the whole frame
// or fails.
func (q *offloadQueue) writev(fd uintptr) bool {
	_, err, again := iovSyscall(unix.SYS_WRITEV, fd, &q.wiov)
	q.werr = err
	return !again
}

// Name is the kernel's interface name.
func (t *OffloadTAP) Name() string { return t.name }

// Queues is the number of queues (file descriptors).
func (t *OffloadTAP) Queues() int { return len(t.queues) }

// MTU is 1500, the kernel's default for a TAP; frames in either direction
// may still be super-frames of up to MaxGSOFrameSize bytes.
func (t *OffloadTAP) MTU() int { return t.mtu }

// MAC is the stack's address on this link (not the kernel interface's).
func (t *OffloadTAP) MAC() net.HardwareAddr { return t.mac }

// MaxFrameSize is MaxGSOFrameSize: the kernel sends TSO super-frames.
func (t *OffloadTAP) MaxFrameSize() int { return MaxGSOFrameSize }

// GSOMax is MaxGSOFrameSize.
func (t *OffloadTAP) GSOMax() int { return MaxGSOFrameSize }

// OffloadStats counts what the virtio-net headers carried.
type OffloadStats struct {
	RxGSO uint64 // super-frames received (gso_type TCPV4)
	RxBad uint64 // frames dropped: short, truncated by a small read buffer, or a checksum range outside the frame
	TxGSO uint64 // super-frames handed to the kernel to segment
}

// Stats returns the offload counters.
func (t *OffloadTAP) Stats() OffloadStats {
	return OffloadStats{RxGSO: t.rxGSO.Load(), RxBad: t.rxBad.Load(), TxGSO: t.txGSO.Load()}
}

// ReadFrame reads one frame from queue q into b (len(b) ≥ MaxFrameSize
// avoids truncating super-frames), completing a partial checksum. Bad
// frames are counted (Stats.RxBad) and skipped. After Close it returns
// net.ErrClosed.
func (t *OffloadTAP) ReadFrame(q int, b []byte) (int, error) {
	n, _, err := t.read(q, b, true)
	return n, err
}

// ReadFrameInfo is ReadFrame without completing partial checksums: a frame
// the kernel marked NEEDS_CSUM (CHECKSUM_PARTIAL: built by the local kernel
// and never checksummed) or DATA_VALID is returned with
// RxInfo.ChecksumValid, as Linux's own input path skips verifying such an
// skb (skb_csum_unnecessary). That saves a pass over every 64 KB frame.
func (t *OffloadTAP) ReadFrameInfo(q int, b []byte) (int, RxInfo, error) {
	return t.read(q, b, false)
}

func (t *OffloadTAP) read(q int, b []byte, complete bool) (int, RxInfo, error) {
	if q < 0 || q >= len(t.queues) {
		return 0, RxInfo{}, fmt.Errorf("driver: offload tap %s: no queue %d", t.name, q)
	}
	if len(b) == 0 {
		return 0, RxInfo{}, fmt.Errorf("driver: offload tap %s: empty read buffer", t.name)
	}
	oq := t.queues[q]
	for {
		oq.riov[1] = unix.Iovec{Base: &b[0]}
		oq.riov[1].SetLen(len(b))
		err := oq.rc.Read(oq.readFn)
		oq.riov[1].Base = nil // do not keep the caller's buffer alive
		if err == nil {
			err = oq.rerr
		}
		if err != nil {
			return 0, RxInfo{}, t.ioError("read", q, err)
		}
		n := oq.rn - vnetHdrLen
		hdr := vnetHdr(oq.rhdr[:])
		if n < 14 || truncated(hdr, b[:n]) {
			t.rxBad.Add(1)
			continue
		}
		var info RxInfo
		if complete {
			if completeChecksum(hdr, b[:n]) != nil {
				t.rxBad.Add(1)
				continue
			}
		} else if hdr.flags()&(vnetFlagNeedsCsum|vnetFlagDataValid) != 0 {
			if !partialChecksumInFrame(hdr, n) {
				t.rxBad.Add(1)
				continue
			}
			info.ChecksumValid = true
		}
		if hdr.gsoType()&^vnetGSOECN != vnetGSONone {
			t.rxGSO.Add(1)
		}
		return n, info, nil
	}
}

// WriteFrame writes one whole frame on queue q behind an empty virtio
// header (no offload: its checksums must be complete).
func (t *OffloadTAP) WriteFrame(q int, b []byte) error {
	return t.write(q, b, 0)
}

// WriteGSO writes a TCP/IPv4 super-frame (valid IPv4 header and total
// length) for the kernel to cut at mss; it overwrites the frame's TCP
// checksum field with the pseudo-header sum (a partial checksum).
func (t *OffloadTAP) WriteGSO(q int, frame []byte, mss int) error {
	if mss <= 0 || len(frame) > MaxGSOFrameSize {
		return fmt.Errorf("driver: offload tap %s: GSO frame of %d bytes, mss %d", t.name, len(frame), mss)
	}
	return t.write(q, frame, mss)
}

func (t *OffloadTAP) write(q int, b []byte, mss int) error {
	if q < 0 || q >= len(t.queues) {
		return fmt.Errorf("driver: offload tap %s: no queue %d", t.name, q)
	}
	if len(b) == 0 {
		return fmt.Errorf("driver: offload tap %s: empty frame", t.name)
	}
	oq := t.queues[q]
	oq.wmu.Lock()
	defer oq.wmu.Unlock()
	hdr := vnetHdr(oq.whdr[:])
	if mss == 0 {
		hdr.clear()
	} else {
		if err := gsoHeader(hdr, b, mss); err != nil {
			return fmt.Errorf("driver: offload tap %s: %w", t.name, err)
		}
		if hdr.gsoType() != vnetGSONone {
			t.txGSO.Add(1)
		}
	}
	oq.wiov[1] = unix.Iovec{Base: &b[0]}
	oq.wiov[1].SetLen(len(b))
	err := oq.rc.Write(oq.writeFn)
	oq.wiov[1].Base = nil
	if err == nil {
		err = oq.werr
	}
	if err != nil {
		return t.ioError("write", q, err)
	}
	return nil
}

// truncated reports an offloaded IPv4 frame cut short by a small read
// buffer: its checksum cannot be completed, so it is dropped, not passed on.
func truncated(h vnetHdr, frame []byte) bool {
	if h.flags()&vnetFlagNeedsCsum == 0 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 || len(frame) < 14+20 {
		return false
	}
	return int(binary.BigEndian.Uint16(frame[14+2:])) > len(frame)-14
}

func (t *OffloadTAP) ioError(op string, q int, err error) error {
	return t.life.ioError(t.name, op, q, err)
}

// Close closes every queue, which unblocks their readers (they get
// net.ErrClosed) and removes the device. It is idempotent.
func (t *OffloadTAP) Close() error {
	return t.life.closeQueues(t.name, len(t.queues), func(q int) error { return t.queues[q].file.Close() })
}
