package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Congestion control (-cc NAME, default cubic): every TCP of a run uses
// the named algorithm — the server stack under test and every kernel
// client, which is the sender of the bulk workload for all three stacks.
// This machine's kernel defaults to bbr, which does not take loss as a
// congestion signal: with every kernel socket on its default, the loss
// tables compared algorithms, not loss recovery. -cc default leaves each
// stack its own default (the kernel's net.ipv4.tcp_congestion_control,
// gVisor's reno, tapstack's cubic).
//
// How each is set and read back from a live connection:
//   - tapstack: its sysctl net.ipv4.tcp_congestion_control in
//     stack.Config.Sysctls; read back from the stack's sysctl when a
//     connection is accepted (the library has no per-connection accessor;
//     a connection takes the sysctl's value when it is created).
//   - gVisor: tcpip.CongestionControlOption on the stack; read back from
//     the accepted connection's endpoint.
//   - the kernel server: TCP_CONGESTION on the listener (accepted sockets
//     inherit it, tcp_ca_openreq_child); getsockopt on the accepted socket.
//   - kernel clients of Go workloads: TCP_CONGESTION before connect;
//     getsockopt on the connected socket.
//   - h2load and ab (no setsockopt): a host route to the server with
//     `congctl NAME` in the client's netns (tcp_ca_dst_init applies it at
//     connect); `ss -tin` on their live connections reads it back.

// ccDefault keeps every stack's own default algorithm.
const ccDefault = "default"

var ccName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,15}$`)

// parseCC reads -cc: an algorithm name as Linux spells it (TCP_CA_NAME_MAX
// is 16 with the NUL) or "default".
func parseCC(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == ccDefault || ccName.MatchString(s) {
		return s, nil
	}
	return "", fmt.Errorf("-cc %q: want an algorithm name (cubic, reno, bbr, ...) or %q", s, ccDefault)
}

// ccChosen reports whether name asks for an algorithm (not the defaults).
func ccChosen(name string) bool { return name != "" && name != ccDefault }

// kernelAvailableCC lists the kernel's loaded algorithms.
func kernelAvailableCC() []string {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_available_congestion_control")
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}

// setKernelCC sets TCP_CONGESTION on a kernel socket.
func setKernelCC(fd int, name string) error {
	if err := unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION, name); err != nil {
		return fmt.Errorf("the kernel cannot run congestion control %q: setsockopt TCP_CONGESTION: %w (available: %s)",
			name, err, strings.Join(kernelAvailableCC(), " "))
	}
	return nil
}

// ccControl is a net.ListenConfig / net.Dialer Control that sets name on
// the socket before bind (listener) or connect (client).
func ccControl(name string) func(network, address string, c syscall.RawConn) error {
	if !ccChosen(name) {
		return nil
	}
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = setKernelCC(int(fd), name) }); err != nil {
			return err
		}
		return serr
	}
}

// kernelConnCC reads TCP_CONGESTION of a live kernel connection.
func kernelConnCC(c net.Conn) (string, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return "", fmt.Errorf("%T is not a kernel TCP connection", c)
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return "", err
	}
	var name string
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		name, gerr = unix.GetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION)
	}); err != nil {
		return "", err
	}
	return name, gerr
}

// checkKernelCC sets name on a socket that is never bound or connected,
// so -cc fails before any run when the kernel (every client is a kernel
// socket) cannot run it. setsockopt as root also loads a tcp_NAME module.
func checkKernelCC(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return setKernelCC(fd, name)
}

// firstCC keeps the congestion control of the first connection it is
// shown.
type firstCC struct {
	once sync.Once
	name atomic.Value // string
}

func (f *firstCC) record(c net.Conn, read func(net.Conn) (string, error)) {
	f.once.Do(func() {
		name, err := read(c)
		if err != nil {
			name = "unread (" + err.Error() + ")"
		}
		f.name.Store(name)
	})
}

// measured is the recorded algorithm, "" if no connection was shown.
func (f *firstCC) measured() string {
	s, _ := f.name.Load().(string)
	return s
}

// ccListener records the congestion control of the first connection it
// accepts, read by the stack's own means (served.ConnCC).
type ccListener struct {
	net.Listener
	read func(net.Conn) (string, error)
	firstCC
}

func (l *ccListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil && l.read != nil {
		l.record(c, l.read)
	}
	return c, err
}

// ccDialer dials the Go workloads' kernel client sockets with one
// algorithm and reads back what the first connection runs.
type ccDialer struct {
	name string // the -cc value
	firstCC
}

// kernelClients is this client process's dialer (runClient sets its name).
var kernelClients = &ccDialer{}

func (d *ccDialer) dial(target netip.AddrPort, timeout time.Duration) (net.Conn, error) {
	c, err := (&net.Dialer{Timeout: timeout, Control: ccControl(d.name)}).Dial("tcp4", target.String())
	if err != nil {
		return nil, err
	}
	d.record(c, kernelConnCC)
	return c, nil
}

// routeCongctlArgs are the `ip` arguments that give the host route to
// target the algorithm name, keeping the device, gateway and source that
// `ip -o route get target` (routeGet) shows.
func routeCongctlArgs(target netip.Addr, routeGet, name string) ([]string, error) {
	f := strings.Fields(routeGet)
	if len(f) == 0 || f[0] != target.String() {
		return nil, fmt.Errorf("ip route get %s: unexpected %q", target, strings.TrimSpace(routeGet))
	}
	args := []string{"route", "replace", target.String() + "/32"}
	for _, key := range []string{"via", "dev", "src"} {
		if i := slices.Index(f, key); i >= 0 && i+1 < len(f) {
			args = append(args, key, f[i+1])
		}
	}
	if !slices.Contains(args, "dev") {
		return nil, fmt.Errorf("ip route get %s: no device in %q", target, strings.TrimSpace(routeGet))
	}
	return append(args, "congctl", name), nil
}

// routeCongctl makes connections from this netns to target run name, for
// tools that cannot setsockopt; the returned func removes the route.
func routeCongctl(target netip.Addr, name string) (undo func(), err error) {
	out, err := exec.Command("ip", "-o", "route", "get", target.String()).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ip route get %s: %v: %s", target, err, strings.TrimSpace(string(out)))
	}
	args, err := routeCongctlArgs(target, string(out), name)
	if err != nil {
		return nil, err
	}
	if err := run("ip", args...); err != nil {
		return nil, fmt.Errorf("route congctl %s (h2load and ab cannot setsockopt): %w", name, err)
	}
	return func() { _ = run("ip", "route", "del", target.String()+"/32") }, nil
}

// parseSSCongestion counts, in `ss -tin` output, the connections running
// each known algorithm: ss prints it among the first words of a
// connection's info line ("\t ts sack cubic wscale:7,7 rto:204 ...").
func parseSSCongestion(out string, known []string) map[string]int {
	m := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "\t") && !strings.HasPrefix(line, " ") {
			continue // a socket's address line or the header
		}
		for _, w := range strings.Fields(line) {
			if slices.Contains(known, w) {
				m[w]++
				break
			}
		}
	}
	return m
}

// ssCongestion polls `ss -tin` for live connections to target until it
// sees some or ctx ends, and names what they run ("cubic", "cubic ×3,
// bbr ×1" if mixed, "" if it saw none).
func ssCongestion(ctx context.Context, target netip.AddrPort) string {
	known := append(kernelAvailableCC(), "reno", "cubic", "bbr")
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		out, err := exec.Command("ss", "-tinH", "state", "established", "dst", target.String()).Output()
		if err == nil {
			if m := parseSSCongestion(string(out), known); len(m) > 0 {
				return ccCounts(m)
			}
		}
		select {
		case <-ctx.Done():
			return ""
		case <-tick.C:
		}
	}
}

// ccCounts renders algorithm counts: one name alone, else each with its
// count, most frequent first.
func ccCounts(m map[string]int) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		if m[a] != m[b] {
			return m[b] - m[a]
		}
		return strings.Compare(a, b)
	})
	if len(names) == 1 {
		return names[0]
	}
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s ×%d", n, m[n])
	}
	return strings.Join(parts, ", ")
}

// checkCC fails before any run if a selected stack, or the kernel (every
// client is a kernel socket), cannot run name.
func checkCC(name string, stacks []string) error {
	if !ccChosen(name) {
		return nil
	}
	if err := checkKernelCC(name); err != nil {
		return fmt.Errorf("-cc %s: every client is a kernel socket: %w", name, err)
	}
	for _, s := range stacks {
		if d := stackDefs[s]; d.CheckCC != nil {
			if err := d.CheckCC(name); err != nil {
				return fmt.Errorf("-cc %s: %w", name, err)
			}
		}
	}
	return nil
}
