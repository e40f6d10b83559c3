// Command backlog demonstrates, step by step and with numbers, how Linux's
// listen backlogs behave, on tapstack's faithful model of them. It needs
// root: it creates its own network namespace (deleted at exit, also on
// Ctrl-C) with a TAP device, runs the stack on it with a listener of
// backlog -backlog, and drives it from kernel clients in the namespace:
//
//  1. The application does not accept: the accept queue fills to backlog+1,
//     later SYNs are dropped (TcpExtListenOverflows, TcpExtListenDrops).
//  2. The application accepts: the queue drains and the waiting clients'
//     retransmitted SYNs succeed.
//  3. tcp_syncookies=0 and a spoofed SYN flood: the SYN queue fills to its
//     bound, SYNs are dropped (TcpExtTCPReqQFullDrop), a real client cannot
//     connect.
//  4. tcp_syncookies=1 and the same flood: SYN-ACKs carry cookies
//     (TcpExtSyncookiesSent/Recv) and real clients connect.
//  5. A UDP flood from a kernel socket at a tapstack socket that does not
//     read, every datagram accounted for hop by hop (qdisc, TAP ring,
//     netdev backlog, socket queue): with Linux's defaults the socket's
//     SO_RCVBUF queue drops (UdpRcvbufErrors) and the netdev backlog
//     drops nothing; with a tiny netdev_max_backlog, a large SO_RCVBUF and
//     threaded NAPI the backlog drops (softnet_stat dropped) and the
//     socket nothing.
//
// At the end it draws the queues and counters over time as an SVG (-plot).
// -steps runs some steps only (step 2 needs step 1).
//
//	sudo go run ./examples/backlog [-backlog 8] [-plot backlog.svg] [-flood-rate 50000] [-steps 1,2,3,4,5] [-quick]
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/internal/testenv/netns"
	"github.com/tapstack/tapstack/internal/testenv/synflood"
	"github.com/tapstack/tapstack/stack"
)

var (
	stackAddr  = netip.MustParsePrefix("10.0.0.2/24")
	kernelAddr = netip.MustParsePrefix("10.0.0.1/24")
	// Spoofed flood sources, blackholed in the namespace: the SYN-ACKs the
	// stack sends them die there.
	floodSources = netip.MustParsePrefix("198.18.0.0/15")
	listenAddr   = netip.AddrPortFrom(stackAddr.Addr(), 8080)
)

// The counters the narration and the plot follow, in print order.
var watched = []string{
	"TcpPassiveOpens", "TcpExtListenOverflows", "TcpExtListenDrops",
	"TcpExtTCPReqQFullDrop", "TcpExtTCPReqQFullDoCookies",
	"TcpExtSyncookiesSent", "TcpExtSyncookiesRecv", "TcpExtSyncookiesFailed",
	"TcpExtTCPSynRetrans", "TcpInSegs", "TcpOutSegs", "SoftnetDropped",
}

type options struct {
	backlog   int
	plot      string
	floodRate int
	quick     bool
	steps     []int
}

// timing holds the step lengths; -quick shortens them for tests.
type timing struct {
	spacing  time.Duration // between step-1 clients
	flood    time.Duration // each flood
	legit    int           // real clients during each flood
	lingerAt time.Duration // pause after each step so the plot shows it
	udpCount int           // datagrams of the UDP flood in step 5
}

func main() {
	if raw := os.Getenv(clientEnv); raw != "" {
		os.Exit(runClients(raw))
	}
	var o options
	fs := flag.NewFlagSet("backlog", flag.ContinueOnError)
	fs.IntVar(&o.backlog, "backlog", 8, "listen(2) backlog of the demo listener (1..64)")
	fs.StringVar(&o.plot, "plot", "backlog.svg", "write the plot (SVG) here; empty: no plot")
	fs.IntVar(&o.floodRate, "flood-rate", 50000, "spoofed SYNs per second in steps 3 and 4")
	fs.BoolVar(&o.quick, "quick", false, "shorter steps (for tests)")
	stepList := fs.String("steps", "1,2,3,4,5", "the steps to run, comma-separated (step 2 needs step 1)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	var err error
	if o.steps, err = parseSteps(*stepList); err != nil {
		fmt.Fprintf(os.Stderr, "backlog: -steps %s: %v\n", *stepList, err)
		os.Exit(2)
	}
	if o.backlog < 1 || o.backlog > 64 {
		fmt.Fprintf(os.Stderr, "backlog: -backlog %d: want 1..64\n", o.backlog)
		os.Exit(2)
	}
	if o.floodRate < 100 || o.floodRate > 1_000_000 {
		fmt.Fprintf(os.Stderr, "backlog: -flood-rate %d: want 100..1000000\n", o.floodRate)
		os.Exit(2)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "backlog: needs root (it creates a network namespace and a TAP device)")
		os.Exit(1)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "backlog:", err)
		os.Exit(1)
	}
}

// demo is the running demonstration.
type demo struct {
	o      options
	tm     timing
	out    io.Writer
	ctx    context.Context
	ns     string
	st     *stack.Stack
	ln     *stack.Listener
	rec    *recorder
	marks  counterSnap // counters at the start of the current step
	accept sync.Once

	held    *clients          // step 1's clients, kept connected through step 2
	pending map[int]time.Time // step 1 clients still waiting for a SYN-ACK

	linksMu  sync.Mutex
	udpLinks []*udpLink // step 5's TAPs and stacks, closed at teardown too
}

func run(o options) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := &demo{o: o, out: os.Stdout, ctx: ctx}
	d.tm = timing{spacing: 250 * time.Millisecond, flood: 5 * time.Second, legit: 5, lingerAt: time.Second, udpCount: 5000}
	if o.quick {
		d.tm = timing{spacing: 120 * time.Millisecond, flood: 2500 * time.Millisecond, legit: 3, lingerAt: 300 * time.Millisecond, udpCount: 3000}
	}

	// Ctrl-C: stop the clients and the flood (ctx), tear everything down.
	var teardown sync.Once
	cleanup := func() { teardown.Do(d.close) }
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	go func() {
		if s, ok := <-sig; ok {
			fmt.Fprintf(os.Stderr, "\nbacklog: %v: cleaning up namespace %s\n", s, d.ns)
			cancel()
			cleanup()
			os.Exit(130)
		}
	}()
	defer cleanup()

	if err := d.setup(); err != nil {
		return err
	}
	d.rec = startRecorder(d.st, d.ln)
	steps := []func() error{d.step1, d.step2, d.step3, d.step4, d.step5}
	for _, n := range o.steps {
		if err := steps[n-1](); err != nil {
			return err
		}
	}
	series := d.rec.stop()
	d.say("\n== summary ==")
	d.say("result summary backlog=%d samples=%d duration=%.1fs", o.backlog, len(series.samples), series.duration().Seconds())
	if o.plot != "" {
		f, err := os.Create(o.plot)
		if err != nil {
			return err
		}
		if err := writePlot(f, series, o.backlog); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		d.say("plot written to %s (accept queue, SYN queue and counters every %v)", o.plot, sampleEvery)
	}
	return nil
}

// setup makes the namespace, the TAP, the stack and the listener.
func (d *demo) setup() error {
	var r [4]byte
	rand.Read(r[:])
	d.ns = "tsB" + hex.EncodeToString(r[:])
	if err := netns.Create(d.ns); err != nil {
		return fmt.Errorf("%w (are you root?)", err)
	}
	var tap *driver.TAP
	if err := netns.Do(d.ns, func() (err error) { tap, err = driver.OpenTAP("tap0", 1); return err }); err != nil {
		return err
	}
	st, err := stack.New(stack.Config{})
	if err != nil {
		tap.Close()
		return err
	}
	d.st = st
	if err := st.Attach(tap, stackAddr); err != nil {
		tap.Close()
		return err
	}
	for _, args := range [][]string{
		{"addr", "add", kernelAddr.String(), "dev", "tap0"},
		{"link", "set", "tap0", "up"},
		{"route", "add", "blackhole", floodSources.String()},
	} {
		if err := d.ip(args...); err != nil {
			return err
		}
	}
	if err := st.AddRoute(netip.MustParsePrefix("0.0.0.0/0"), kernelAddr.Addr()); err != nil {
		return err
	}
	d.ln, err = st.ListenTCP(listenAddr, d.o.backlog)
	if err != nil {
		return err
	}
	d.say("namespace %s: tapstack at %s on tap0, the kernel at %s; spoofed %s blackholed",
		d.ns, stackAddr.Addr(), kernelAddr.Addr(), floodSources)
	d.say("listener %s with backlog %d (sk_max_ack_backlog); the application is not calling Accept yet", listenAddr, d.o.backlog)
	return nil
}

// parseSteps reads -steps: step numbers 1 to 5, in order, each once.
func parseSteps(list string) ([]int, error) {
	var steps []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 5 {
			return nil, fmt.Errorf("%q: want step numbers 1 to 5", f)
		}
		if len(steps) > 0 && n <= steps[len(steps)-1] {
			return nil, fmt.Errorf("want each step once, in order")
		}
		if n == 2 && (len(steps) == 0 || steps[len(steps)-1] != 1) {
			return nil, fmt.Errorf("step 2 accepts the connections step 1 left waiting: it needs step 1")
		}
		steps = append(steps, n)
	}
	return steps, nil
}

func (d *demo) ip(args ...string) error {
	out, err := exec.Command("ip", append([]string{"-n", d.ns}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip -n %s %s: %v: %s", d.ns, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (d *demo) close() {
	d.linksMu.Lock()
	for _, l := range d.udpLinks {
		l.close()
	}
	d.linksMu.Unlock()
	if d.ln != nil {
		d.ln.Close()
	}
	if d.st != nil {
		d.st.Close()
	}
	if d.ns != "" {
		// Processes still in the namespace would keep it (and tap0) alive.
		if out, err := exec.Command("ip", "netns", "pids", d.ns).Output(); err == nil {
			for _, pid := range strings.Fields(string(out)) {
				exec.Command("kill", "-9", pid).Run()
			}
		}
		if err := netns.Delete(d.ns); err != nil {
			fmt.Fprintln(os.Stderr, "backlog:", err)
		}
	}
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format+"\n", args...) }

// begin starts a step: a heading, a mark on the plot, a counter baseline.
func (d *demo) begin(n int, title string) {
	d.say("\n== step %d: %s ==", n, title)
	d.rec.mark(fmt.Sprintf("%d: %s", n, title))
	d.marks = snap(d.st)
}

// report prints the ss listing and the watched counters that moved in
// this step.
func (d *demo) report() counterSnap {
	d.say("  ss -tln (Recv-Q = accept queue, Send-Q = backlog; synq = SYN queue):")
	var b strings.Builder
	d.st.WriteSockets(&b)
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	shown := 0
	for _, l := range lines {
		if shown < 12 || strings.HasPrefix(l, "LISTEN") {
			d.say("    %s", l)
			shown++
		}
	}
	if len(lines) > shown {
		d.say("    ... %d more sockets", len(lines)-shown)
	}
	now := snap(d.st)
	moved := now.delta(d.marks)
	d.say("  counters that moved in this step (nstat names):")
	for _, name := range watched {
		if v := moved[name]; v != 0 {
			d.say("    %-28s +%d", name, v)
		}
	}
	return moved
}

// counterSnap is a snapshot of named counters.
type counterSnap map[string]uint64

func snap(st *stack.Stack) counterSnap {
	s := st.Stats()
	m := counterSnap{}
	for _, c := range s.Counters {
		m[c.Name] = c.Value
	}
	return m
}

func (a counterSnap) delta(b counterSnap) counterSnap {
	d := counterSnap{}
	for k, v := range a {
		d[k] = v - b[k]
	}
	return d
}

// startAccepting runs the application's accept loop: an echo server.
func (d *demo) startAccepting() {
	d.accept.Do(func() {
		go func() {
			for {
				c, err := d.ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					io.Copy(c, c)
				}()
			}
		}()
	})
}

// flood sends spoofed SYNs from inside the namespace for the step's flood
// time and returns how many went out.
func (d *demo) flood() (int, error) {
	var sent int
	err := netns.Do(d.ns, func() (err error) {
		sent, err = synflood.Flood(d.ctx, synflood.Config{Target: listenAddr, Sources: floodSources,
			Rate: d.o.floodRate, Duration: d.tm.flood})
		return err
	})
	if err == nil && d.ctx.Err() != nil {
		err = d.ctx.Err()
	}
	return sent, err
}

var errInterrupted = errors.New("interrupted")

// wait sleeps unless the demo is being torn down.
func (d *demo) wait(t time.Duration) error {
	select {
	case <-time.After(t):
		return nil
	case <-d.ctx.Done():
		return errInterrupted
	}
}
