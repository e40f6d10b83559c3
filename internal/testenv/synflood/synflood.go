// Package synflood sends spoofed TCP SYNs from a raw socket (IPPROTO_RAW,
// which implies IP_HDRINCL) for tests and benchmarks. Sources are drawn at
// random from a prefix that the caller routes back into its own network
// namespace and blackholes there, so the victim's SYN-ACKs go nowhere.
//
// The flood runs in the calling thread's network namespace: call it from a
// process started with `ip netns exec`, or from inside netnstest's ns.Do.
package synflood

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tapstack/tapstack/wire"
)

// Config bounds a flood. At least one of Count, Duration or the context
// must end it.
type Config struct {
	Target  netip.AddrPort // IPv4 listener under attack
	Sources netip.Prefix   // spoofed source addresses are drawn from here
	// Dests, if valid, spreads the SYNs over destination addresses drawn
	// from it (Target's port stays); they go out by Target's route, so
	// the prefix must be routed the same way (a forwarder's range).
	Dests    netip.Prefix
	Rate     int           // SYN/s; 0 sends as fast as the socket takes them
	Count    int           // stop after this many SYNs; 0 = no count bound
	Duration time.Duration // stop after this long; 0 = no time bound
	Seed     uint64        // 0 → random; otherwise replayable addresses, ports and ISNs
}

// batchSize is the number of SYNs handed to one sendmmsg(2).
const batchSize = 64

const (
	ipHeaderLen  = 20
	tcpHeaderLen = 24 // 20 + the MSS option, like a minimal real SYN
	synLen       = ipHeaderLen + tcpHeaderLen
)

// ErrUnbounded is returned when neither Count, Duration nor a context
// deadline would ever stop the flood.
var ErrUnbounded = errors.New("synflood: no Count, Duration or context deadline")

// Flood sends SYNs to cfg.Target until Count SYNs are sent, Duration has
// passed or ctx is done, paced to cfg.Rate with a token bucket refilled
// per batch. It returns the number of SYNs the kernel accepted.
func Flood(ctx context.Context, cfg Config) (sent int, err error) {
	if err := cfg.validate(ctx); err != nil {
		return 0, err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return 0, fmt.Errorf("synflood: raw socket: %w", err)
	}
	defer unix.Close(fd)
	// A large send buffer keeps sendmmsg from stopping early on bursts.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)

	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	g := newGenerator(cfg, seed)

	// One sendmmsg batch: packets, iovecs, headers and the destination.
	var (
		pkts [batchSize][synLen]byte
		iovs [batchSize]unix.Iovec
		hdrs [batchSize]mmsghdr
		dst  = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: cfg.Target.Addr().As4()}
	)
	for i := range hdrs {
		iovs[i].Base = &pkts[i][0]
		iovs[i].SetLen(synLen)
		hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&dst))
		hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet4
		hdrs[i].Hdr.Iov = &iovs[i]
		hdrs[i].Hdr.SetIovlen(1)
	}

	start := time.Now()
	var deadline time.Time
	if cfg.Duration > 0 {
		deadline = start.Add(cfg.Duration)
	}
	// Timer sleeps overshoot by up to a millisecond or more on a busy
	// machine, so the bucket holds 20 ms of tokens to catch up afterwards.
	bucket := tokenBucket{rate: float64(cfg.Rate), burst: max(batchSize, float64(cfg.Rate)/50), last: start}
	for {
		if cfg.Count > 0 && sent >= cfg.Count {
			return sent, nil
		}
		if ctx.Err() != nil {
			return sent, nil
		}
		now := time.Now()
		if !deadline.IsZero() && !now.Before(deadline) {
			return sent, nil
		}
		n := batchSize
		if cfg.Count > 0 && cfg.Count-sent < n {
			n = cfg.Count - sent
		}
		if cfg.Rate > 0 {
			n = bucket.take(now, n)
			if n == 0 {
				sleepFor(ctx, bucket.wait(batchSize))
				continue
			}
		}
		for i := 0; i < n; i++ {
			g.fill(pkts[i][:])
		}
		k, err := sendmmsg(fd, hdrs[:n])
		sent += k
		switch {
		case errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN):
			runtime.Gosched() // qdisc or socket buffer full: back off a moment
		case err != nil:
			return sent, fmt.Errorf("synflood: sendmmsg: %w", err)
		}
	}
}

func (c Config) validate(ctx context.Context) error {
	if !c.Target.Addr().Is4() {
		return fmt.Errorf("synflood: target %v is not IPv4", c.Target)
	}
	if !c.Sources.IsValid() || !c.Sources.Addr().Is4() {
		return fmt.Errorf("synflood: sources %v is not an IPv4 prefix", c.Sources)
	}
	if c.Rate < 0 || c.Count < 0 || c.Duration < 0 {
		return errors.New("synflood: negative Rate, Count or Duration")
	}
	if _, ok := ctx.Deadline(); c.Count == 0 && c.Duration == 0 && !ok {
		return ErrUnbounded
	}
	return nil
}

// tokenBucket paces batches: tokens accrue at rate per second up to burst.
type tokenBucket struct {
	rate, tokens, burst float64
	last                time.Time
}

func (b *tokenBucket) take(now time.Time, want int) int {
	b.tokens += now.Sub(b.last).Seconds() * b.rate
	b.last = now
	if b.tokens > b.burst {
		b.tokens = b.burst
	}
	n := int(b.tokens)
	if n > want {
		n = want
	}
	b.tokens -= float64(n)
	return n
}

// wait is how long until want tokens are there.
func (b *tokenBucket) wait(want int) time.Duration {
	missing := float64(want) - b.tokens
	if missing <= 0 {
		return 0
	}
	return time.Duration(missing / b.rate * float64(time.Second))
}

func sleepFor(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// generator writes SYNs with random spoofed source address, port and ISN.
type generator struct {
	rng      *rand.Rand
	base     uint32 // first address of Sources
	size     uint32 // number of addresses in Sources (≥ 1)
	dst      [4]byte
	dstBase  uint32 // first address of Dests, with dstSize > 0
	dstSize  uint32
	dstPort  uint16
	template [synLen]byte
}

func newGenerator(cfg Config, seed uint64) *generator {
	p := cfg.Sources.Masked()
	a := p.Addr().As4()
	g := &generator{
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		base:    binary.BigEndian.Uint32(a[:]),
		size:    uint32(1) << (32 - p.Bits()),
		dst:     cfg.Target.Addr().As4(),
		dstPort: cfg.Target.Port(),
	}
	if p.Bits() == 0 {
		g.size = 0 // 2^32: the whole space; Uint32 below covers it
	}
	if d := cfg.Dests.Masked(); d.IsValid() && d.Addr().Is4() && d.Bits() > 0 {
		da := d.Addr().As4()
		g.dstBase, g.dstSize = binary.BigEndian.Uint32(da[:]), uint32(1)<<(32-d.Bits())
	}
	t := g.template[:]
	t[0] = 0x45 // version 4, IHL 5
	binary.BigEndian.PutUint16(t[2:], synLen)
	binary.BigEndian.PutUint16(t[6:], 0x4000) // DF, like Linux SYNs
	t[8] = 64                                 // TTL
	t[9] = unix.IPPROTO_TCP
	copy(t[16:20], g.dst[:])
	tcp := t[ipHeaderLen:]
	binary.BigEndian.PutUint16(tcp[2:], g.dstPort)
	tcp[12] = (tcpHeaderLen / 4) << 4
	tcp[13] = 0x02 // SYN
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	tcp[20], tcp[21] = 2, 4 // MSS option
	binary.BigEndian.PutUint16(tcp[22:], 1460)
	return g
}

// fill writes one SYN with fresh random fields and correct checksums into b.
func (g *generator) fill(b []byte) {
	copy(b, g.template[:])
	r := g.rng.Uint64()
	var src uint32
	if g.size == 0 {
		src = uint32(r)
	} else {
		src = g.base + uint32(r)%g.size
	}
	binary.BigEndian.PutUint32(b[12:16], src)
	dst := g.dst
	if g.dstSize > 0 {
		binary.BigEndian.PutUint32(dst[:], g.dstBase+g.rng.Uint32()%g.dstSize)
		copy(b[16:20], dst[:])
	}
	binary.BigEndian.PutUint16(b[4:6], uint16(r>>32)) // IP ID
	binary.BigEndian.PutUint16(b[10:12], ^wire.Checksum(b[:ipHeaderLen], 0))

	tcp := b[ipHeaderLen:synLen]
	port := uint16(r>>48)%(65535-1024) + 1024
	binary.BigEndian.PutUint16(tcp[0:], port)
	binary.BigEndian.PutUint32(tcp[4:], g.rng.Uint32()) // ISN
	var s [4]byte
	binary.BigEndian.PutUint32(s[:], src)
	ph := wire.PseudoHeaderSum(netip.AddrFrom4(s), netip.AddrFrom4(dst), unix.IPPROTO_TCP, tcpHeaderLen)
	binary.BigEndian.PutUint16(tcp[16:], ^wire.Checksum(tcp, ph))
}

// mmsghdr is struct mmsghdr from sendmmsg(2).
type mmsghdr struct {
	Hdr unix.Msghdr
	Len uint32
	_   [4]byte
}

// sendmmsg sends the batch, returning how many messages went out. A batch
// cut short by a full buffer reports the partial count and the error.
func sendmmsg(fd int, hdrs []mmsghdr) (int, error) {
	for len(hdrs) > 0 {
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd),
			uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), 0, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		return int(n), nil
	}
	return 0, nil
}
