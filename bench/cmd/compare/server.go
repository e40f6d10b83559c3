package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Addresses of the two topologies. The userspace stacks sit behind a TAP
// whose kernel side is the client's; the kernel server sits across a veth.
var (
	tapKernelAddr = netip.MustParsePrefix("10.77.0.1/24") // kernel side of the TAP (client)
	tapStackAddr  = netip.MustParsePrefix("10.77.0.2/24") // userspace stack
	vethClient    = netip.MustParsePrefix("10.78.0.1/24")
	vethServer    = netip.MustParsePrefix("10.78.0.2/24")
	spoofed       = netip.MustParsePrefix("198.18.0.0/15") // flood sources, blackholed in the client netns
)

const (
	tapName    = "tsb0"
	serverPort = 5201
)

// stackDef is one contender. Listen runs inside the server process, already
// in the server netns; for TAP stacks it creates the TAP and configures its
// kernel side.
type stackDef struct {
	Name, Label string
	TAP         bool
	Listen      func(c serverConfig) (net.Listener, served, error)
	// ListenPacket is Listen for the UDP workloads: a UDP socket on c.Addr.
	ListenPacket func(c serverConfig) (net.PacketConn, served, error)
	// Raw marks the TAP frame ceiling (udp.go): no stack, a reader that
	// only counts frames; it serves the udpsink workloads only.
	Raw bool
	// CheckCC fails clearly when the stack cannot run a congestion
	// control; DefaultCC names its own default (-cc default).
	CheckCC   func(name string) error
	DefaultCC func() string
	// Forward builds the stack with its TCP forwarder taking every
	// connection into fwdRange and handing it to h (fwdmem.go); nil: the
	// stack has none.
	Forward func(c serverConfig, h *fwdHolder) (served, error)
}

// served is what a stack's Listen leaves to the server: how to close the
// stack, its TCP counters under nstat names (TcpOutSegs, ...), and how to
// read the congestion control a connection it accepted runs.
type served struct {
	Close    func()
	Counters func() map[string]uint64
	ConnCC   func(net.Conn) (string, error)
}

type serverConfig struct {
	Addr    netip.AddrPort
	Backlog int
	Queues  int
	Reuse   int    // SO_REUSEPORT listeners, accepted from in one loop each (fanIn)
	Offload bool   // the TAP with virtio-net offloads (tapstack only)
	CC      string // congestion control (-cc; "default": the stack's own)
	// TxQueueLen is the kernel's queue of frames for the TAP's reader
	// (txqueuelen; 0: the kernel's default, 1000).
	TxQueueLen int
}

var stackOrder = []string{"tapstack", "gvisor", "kernel"}
var stackDefs = map[string]*stackDef{}

func registerStack(d *stackDef) { stackDefs[d.Name] = d }

func stackNames() []string {
	var out []string
	for _, n := range stackOrder {
		if stackDefs[n] != nil {
			out = append(out, n)
		}
	}
	return out
}

func (d *stackDef) serverAddr() netip.AddrPort {
	if d.TAP {
		return netip.AddrPortFrom(tapStackAddr.Addr(), serverPort)
	}
	return netip.AddrPortFrom(vethServer.Addr(), serverPort)
}

// configureTAPPeer gives the kernel end of the TAP its address, and its
// queue length when txqlen > 0, once the stack holds the device open.
func configureTAPPeer(txqlen int) error {
	cmds := [][]string{{"addr", "add", tapKernelAddr.String(), "dev", tapName}}
	if txqlen > 0 {
		cmds = append(cmds, []string{"link", "set", tapName, "txqueuelen", strconv.Itoa(txqlen)})
	}
	cmds = append(cmds, []string{"link", "set", tapName, "up"})
	for _, args := range cmds {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

type serverFlags struct {
	stack   string
	mode    string
	backlog int
	expect  int
	queues  int
	reuse   int
	offload bool
	cc      string
	txqlen  int
}

func (f *serverFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.stack, "server-stack", "kernel", "internal: server stack")
	fs.StringVar(&f.mode, "server-mode", "echo", "internal: echo | sink | source | hold | http | fwdmem")
	fs.IntVar(&f.backlog, "server-backlog", 4096, "internal: listen backlog")
	fs.IntVar(&f.expect, "server-expect", 0, "internal: hold, fwdmem: connections to wait for")
	fs.IntVar(&f.queues, "server-queues", 1, "internal: TAP queues")
	fs.IntVar(&f.reuse, "server-reuseport", 1, "internal: SO_REUSEPORT listeners")
	fs.BoolVar(&f.offload, "server-offload", false, "internal: offload TAP (tapstack)")
	fs.StringVar(&f.cc, "server-cc", ccDefault, "internal: congestion control")
	fs.IntVar(&f.txqlen, "server-txqueuelen", 0, "internal: TAP txqueuelen (0: the kernel's)")
}

// serverReport is the one JSON line a server prints after "READY" when it
// has something to say (hold mode).
type serverReport struct {
	RSSBefore, RSSAfter int64
	Accepted            int
}

// serverFinish is the line a server prints as it stops.
type serverFinish struct {
	Counters map[string]float64
	CC       string `json:",omitempty"` // of the first accepted connection
}

// runServer serves one workload until stdin closes.
func runServer(f serverFlags) error {
	if env := gomaxprocsEnv(f.stack); os.Getenv(env) != "" {
		n, err := strconv.Atoi(os.Getenv(env))
		if err != nil || n < 1 {
			return fmt.Errorf("%s=%q: want a number ≥ 1", env, os.Getenv(env))
		}
		runtime.GOMAXPROCS(n)
	}
	d := stackDefs[f.stack]
	if d == nil {
		return fmt.Errorf("unknown stack %q", f.stack)
	}
	cfg := serverConfig{Addr: d.serverAddr(), Backlog: f.backlog, Queues: f.queues, Reuse: max(f.reuse, 1), Offload: f.offload, CC: f.cc, TxQueueLen: f.txqlen}
	if isUDPMode(f.mode) {
		return runUDPServer(d, f, cfg)
	}
	if f.mode == "fwdmem" {
		return runForwardServer(d, f, cfg)
	}
	if d.Listen == nil {
		return fmt.Errorf("%s serves the UDP sink only, not %q", f.stack, f.mode)
	}
	base, st, err := d.Listen(cfg)
	if err != nil {
		return fmt.Errorf("%s listen: %w", f.stack, err)
	}
	defer st.Close()
	ln := &ccListener{Listener: base, read: st.ConnCC}
	defer ln.Close()
	stopProfile, err := maybeProfile(f)
	if err != nil {
		return err
	}
	defer stopProfile()

	out := bufio.NewWriter(os.Stdout)
	rssBefore := settledRSS()
	counters0 := st.Counters()
	fmt.Fprintln(out, "READY")
	out.Flush()

	stdinClosed := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(stdinClosed) }()
	err = serveMode(f, ln, out, rssBefore, stdinClosed)
	// What this server's TCP sent and retransmitted, and the congestion
	// control its first connection ran, for the run log, the loss table
	// and the report's header; the orchestrator waits for this line.
	b, _ := json.Marshal(serverFinish{Counters: counterDelta("srv_", counters0, st.Counters()), CC: ln.measured()})
	fmt.Fprintf(out, "COUNTERS %s\n", b)
	out.Flush()
	return err
}

// maybeProfile starts the profiles of COMPARE_PROFILE_DIR, if set; the
// returned func stops them.
func maybeProfile(f serverFlags) (func(), error) {
	dir := os.Getenv("COMPARE_PROFILE_DIR")
	if dir == "" {
		return func() {}, nil
	}
	return startProfile(dir, f.stack+"-"+f.mode)
}

// serveMode accepts and serves connections as f.mode says until stdin
// closes.
func serveMode(f serverFlags, ln net.Listener, out *bufio.Writer, rssBefore int64, stdinClosed chan struct{}) error {
	switch f.mode {
	case "http":
		return serveHTTP(ln, stdinClosed)
	case "hold":
		conns := make([]net.Conn, 0, f.expect)
		accepted := make(chan struct{})
		go func() {
			for len(conns) < f.expect {
				c, err := ln.Accept()
				if err != nil {
					break
				}
				conns = append(conns, c)
			}
			close(accepted)
		}()
		select {
		case <-accepted:
		case <-stdinClosed:
			return nil
		}
		time.Sleep(300 * time.Millisecond)
		r := serverReport{RSSBefore: rssBefore, RSSAfter: settledRSS(), Accepted: len(conns)}
		b, _ := json.Marshal(r)
		fmt.Fprintf(out, "RESULT %s\n", b)
		out.Flush()
		<-stdinClosed
		for _, c := range conns {
			c.Close()
		}
		return nil
	case "echo", "sink", "source":
		var wg sync.WaitGroup
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer c.Close()
					switch f.mode {
					case "echo":
						serveEcho(c)
					case "sink":
						serveSink(c)
					default:
						serveSource(c)
					}
				}()
			}
		}()
		<-stdinClosed
		return nil
	default:
		return fmt.Errorf("unknown server mode %q", f.mode)
	}
}

// serveEcho writes back whatever arrives.
func serveEcho(c net.Conn) {
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// serveSink discards everything and, at EOF, reports the byte count so the
// client's clock stops when the data has really arrived.
func serveSink(c net.Conn) {
	buf := make([]byte, 256<<10)
	var total uint64
	for {
		n, err := c.Read(buf)
		total += uint64(n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return
		}
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], total)
	_, _ = c.Write(b[:])
}

// serveSource reads an 8-byte count and writes that many bytes, then
// closes: the download workload's sender.
func serveSource(c net.Conn) {
	var req [8]byte
	if _, err := io.ReadFull(c, req[:]); err != nil {
		return
	}
	buf := make([]byte, 256<<10)
	for left := int64(binary.BigEndian.Uint64(req[:])); left > 0; {
		n, err := c.Write(buf[:min(int64(len(buf)), left)])
		left -= int64(n)
		if err != nil {
			return
		}
	}
}

// settledRSS collects garbage, returns freed memory to the OS and reads
// VmRSS, so before/after differences show live memory.
func settledRSS() int64 {
	runtime.GC()
	debug.FreeOSMemory()
	return readRSS(os.Getpid())
}

// readRSS returns VmRSS of pid in bytes (0 if unreadable).
func readRSS(pid int) int64 { return procKB("/proc/"+strconv.Itoa(pid)+"/status", "VmRSS:") }

// procKB reads the "Name:  N kB" line named field of a /proc file, in
// bytes (0 if unreadable).
func procKB(file, field string) int64 {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// gomaxprocsEnv names the variable (COMPARE_GOMAXPROCS_TAPSTACK, ...) that
// sets GOMAXPROCS in one stack's server processes; the orchestrator sets it
// from -gomaxprocs.
func gomaxprocsEnv(stack string) string {
	return "COMPARE_GOMAXPROCS_" + strings.ToUpper(stack)
}
