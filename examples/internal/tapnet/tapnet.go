// Package tapnet holds what every example shares: the TAP flags (-tap,
// -addr, -peer, -queues, -offload, -pcap, -sysctl, -netns), bringing a
// stack up on a TAP device, and printing counters and sockets on SIGUSR1
// and at exit.
package tapnet

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tapstack/tapstack/admin"
	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/internal/testenv/netns"
	"github.com/tapstack/tapstack/stack"
)

// Flags are the TAP options shared by the examples.
type Flags struct {
	Tap     string
	Addr    string
	Peer    string
	Queues  int
	TapQlen int
	Offload bool
	Pcap    string
	NetNS   string
	Admin   string
	Sysctls sysctlFlag
}

type sysctlFlag []string

func (s *sysctlFlag) String() string     { return strings.Join(*s, ",") }
func (s *sysctlFlag) Set(v string) error { *s = append(*s, v); return nil }

// Register adds the shared flags to fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.Tap, "tap", "tap0", "TAP device to create or attach to")
	fs.StringVar(&f.Addr, "addr", "10.0.0.2/24", "the stack's address (CIDR)")
	fs.StringVar(&f.Peer, "peer", "10.0.0.1/24", "address to give the kernel side of the TAP (CIDR); empty leaves it alone")
	fs.IntVar(&f.Queues, "queues", 1, "TAP queues (one reader goroutine each)")
	fs.IntVar(&f.TapQlen, "tap-qlen", 0, "frames the kernel holds for the stack's reader, per queue (the TAP's txqueuelen; past it the kernel drops, ip -s link: tx_dropped); 0 leaves the kernel's 1000. Raise it for bursts from many connections")
	fs.BoolVar(&f.Offload, "offload", false, "open the TAP with a virtio-net header and TSO/checksum offloads: the kernel exchanges 64 KB TCP super-frames with the stack")
	fs.StringVar(&f.Pcap, "pcap", "", "write every frame in and out to this pcap file")
	fs.StringVar(&f.NetNS, "netns", "", "create the TAP inside this network namespace (made if missing, deleted at exit if made)")
	fs.StringVar(&f.Admin, "admin", "", "serve /metrics, /debug/nstat, /debug/ss and pprof on this host address, e.g. 127.0.0.1:9090")
	fs.Var(&f.Sysctls, "sysctl", "set a knob by its Linux name, e.g. net.core.somaxconn=128 (repeatable)")
}

// ListenTCP opens the examples' TCP listener on addr: one, or with
// reuseport > 1 that many SO_REUSEPORT listeners sharing addr, each with
// its own SYN and accept queues, for an accept loop apiece (nginx's
// per-worker reuseport). Connections are spread over them by flow hash;
// when there are as many listeners as the stack has shards, listener i also
// sets SO_INCOMING_CPU to shard i, so it takes the connections that shard
// receives (the per-RX-queue workers of a tuned nginx).
func (env *Env) ListenTCP(addr netip.AddrPort, backlog, reuseport int) ([]net.Listener, error) {
	if reuseport < 1 || reuseport > 1024 {
		return nil, UsageError{Err: fmt.Errorf("-reuseport %d: want 1..1024", reuseport)}
	}
	if reuseport == 1 {
		ln, err := env.Stack.ListenTCP(addr, backlog)
		if err != nil {
			return nil, err
		}
		return []net.Listener{ln}, nil
	}
	lc := &stack.ListenConfig{Stack: env.Stack, Backlog: backlog, ReusePort: true}
	var lns []net.Listener
	for range reuseport {
		ln, err := lc.Listen(context.Background(), "tcp", addr.String())
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, err
		}
		lns = append(lns, ln)
	}
	if reuseport == env.Stack.Shards() {
		for i, ln := range lns {
			ln.(*stack.Listener).SetIncomingCPU(i)
		}
	}
	return lns, nil
}

// Env is a stack running on a TAP device.
type Env struct {
	Stack   *stack.Stack
	Addr    netip.Prefix
	Dev     string // the TAP's name
	NetNS   string // the namespace that holds it ("": the process's)
	cleanup []func()
}

// IP runs ip(8) with args on the kernel's side of the TAP: in -netns when
// one was given (ip -n NS ...).
func (env *Env) IP(args ...string) error {
	if env.NetNS != "" {
		args = append([]string{"-n", env.NetNS}, args...)
	}
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// UsageError marks a bad flag value; the examples exit 2 on it.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Up validates the flags, creates the stack and attaches it to the TAP.
func (f *Flags) Up() (*Env, error) {
	addr, err := netip.ParsePrefix(f.Addr)
	if err != nil || !addr.Addr().Is4() {
		return nil, UsageError{fmt.Errorf("-addr %q: want an IPv4 CIDR such as 10.0.0.2/24", f.Addr)}
	}
	var peer netip.Prefix
	if f.Peer != "" {
		if peer, err = netip.ParsePrefix(f.Peer); err != nil || !peer.Addr().Is4() {
			return nil, UsageError{fmt.Errorf("-peer %q: want an IPv4 CIDR such as 10.0.0.1/24, or empty", f.Peer)}
		}
		if peer.Addr() == addr.Addr() {
			return nil, UsageError{fmt.Errorf("-peer %s and -addr %s must differ", peer.Addr(), addr.Addr())}
		}
	}
	if f.Queues < 1 || f.Queues > 256 {
		return nil, UsageError{fmt.Errorf("-queues %d: want 1..256", f.Queues)}
	}
	if f.TapQlen < 0 || f.TapQlen > 1<<20 {
		return nil, UsageError{fmt.Errorf("-tap-qlen %d: want 0 (the kernel's) to %d", f.TapQlen, 1<<20)}
	}
	sysctls := map[string]string{}
	for _, kv := range f.Sysctls {
		name, value, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, UsageError{fmt.Errorf("-sysctl %q: want name=value", kv)}
		}
		sysctls[strings.TrimSpace(name)] = strings.TrimSpace(value)
	}
	// Notable events (overflows, cookies, ARP failures) go to stderr,
	// rate-limited; nothing is logged per packet.
	st, err := stack.New(stack.Config{Sysctls: sysctls, Logger: slog.Default()})
	if err != nil {
		return nil, UsageError{err}
	}
	env := &Env{Stack: st, Addr: addr}
	if err := env.up(f, peer); err != nil {
		env.Close()
		return nil, err
	}
	if f.Admin != "" {
		// The admin endpoint listens on the host's network, not on the stack.
		ln, err := net.Listen("tcp", f.Admin)
		if err != nil {
			env.Close()
			return nil, UsageError{fmt.Errorf("-admin %s: %w", f.Admin, err)}
		}
		srv := &http.Server{Handler: admin.Handler(st), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		env.cleanup = append(env.cleanup, func() { srv.Close() })
		log.Printf("admin endpoint: http://%s/metrics /debug/nstat /debug/ss /debug/pprof/", ln.Addr())
	}
	return env, nil
}

func (env *Env) up(f *Flags, peer netip.Prefix) error {
	env.NetNS, env.Dev = f.NetNS, f.Tap
	ip := env.IP
	// A plain TAP (water) or, with -offload, one with a virtio-net header
	// over which the kernel exchanges 64 KB TCP super-frames.
	var tap interface {
		driver.Link
		Name() string
	}
	open := func() error {
		if f.Offload {
			t, err := driver.OpenTAPOffload(f.Tap, f.Queues)
			if err == nil {
				tap = t
			}
			return err
		}
		t, err := driver.OpenTAP(f.Tap, f.Queues)
		if err == nil {
			tap = t
		}
		return err
	}
	if f.NetNS != "" {
		if !netns.Exists(f.NetNS) {
			if err := netns.Create(f.NetNS); err != nil {
				return err
			}
			name := f.NetNS
			env.cleanup = append(env.cleanup, func() { netns.Delete(name) })
		}
		if err := netns.Do(f.NetNS, open); err != nil {
			return fmt.Errorf("open TAP %s in netns %s: %w", f.Tap, f.NetNS, err)
		}
	} else if err := open(); err != nil {
		return fmt.Errorf("open TAP %s: %w (creating a TAP needs root or CAP_NET_ADMIN)", f.Tap, err)
	}
	var link driver.Link = tap
	if f.Pcap != "" {
		file, err := os.Create(f.Pcap)
		if err != nil {
			tap.Close()
			return err
		}
		tee, err := driver.NewPcapTee(tap, file)
		if err != nil {
			tap.Close()
			file.Close()
			return err
		}
		link = tee
		env.cleanup = append(env.cleanup, func() { file.Close() })
	}
	if err := env.Stack.Attach(link, env.Addr); err != nil {
		link.Close()
		return err
	}
	if peer.IsValid() {
		// The kernel side may already carry the address from an earlier run.
		if err := ip("addr", "replace", peer.String(), "dev", tap.Name()); err != nil {
			return err
		}
	}
	if f.TapQlen > 0 {
		if err := ip("link", "set", tap.Name(), "txqueuelen", strconv.Itoa(f.TapQlen)); err != nil {
			return err
		}
	}
	return ip("link", "set", tap.Name(), "up")
}

// Close stops the stack and removes what Up created.
func (env *Env) Close() {
	env.Stack.Close()
	for i := len(env.cleanup) - 1; i >= 0; i-- {
		env.cleanup[i]()
	}
}

// Report prints every counter in nstat style and the socket listing.
func (env *Env) Report(w io.Writer) {
	env.Stack.Stats().WriteNstat(w)
	fmt.Fprintln(w)
	env.Stack.WriteSockets(w)
}

// Wait blocks until SIGINT or SIGTERM, printing a report on every SIGUSR1.
func (env *Env) Wait(w io.Writer) os.Signal {
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, syscall.SIGUSR1, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(ch)
	for sig := range ch {
		if sig == syscall.SIGUSR1 {
			env.Report(w)
			continue
		}
		return sig
	}
	return nil
}

// Exit prints err and exits: 2 for a usage error, 1 otherwise.
func Exit(prog string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
	var ue UsageError
	if errors.As(err, &ue) {
		os.Exit(2)
	}
	os.Exit(1)
}
