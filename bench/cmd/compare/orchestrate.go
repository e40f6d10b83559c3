package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// runRecord is one (round, stack, workload) run.
type runRecord struct {
	Round    int
	Stack    string
	Workload string
	Busy     float64 // CPU busy fraction measured just before
	Flagged  bool    // ran although the CPU was busier than -max-busy
	Metrics  map[string]float64
	Note     string
	Err      error
	// The congestion control the server's and the clients' connections
	// ran, read back from live connections ("" if none was read).
	ServerCC, ClientCC string
}

func orchestrate(o Options, argv []string) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, TAP devices, raw sockets)")
	}
	stacks := o.Stacks
	if len(stacks) == 0 {
		stacks = stackNames()
	}
	for _, s := range stacks {
		if stackDefs[s] == nil {
			return fmt.Errorf("stack %q not available in this build (have %s)", s, strings.Join(stackNames(), ","))
		}
		if stackDefs[s].Raw {
			return fmt.Errorf("-stacks %s: the raw TAP reader runs by itself with the UDP sink workloads (%s)", s, strings.Join(udpSinkNames(), ","))
		}
	}
	var (
		wls []workload
		err error
	)
	for _, w := range workloads {
		if w.selected(o.Only) {
			wls = append(wls, w)
		}
	}
	if len(wls) == 0 {
		return fmt.Errorf("no workload matches -only %v (have %s)", o.Only, strings.Join(workloadNames(), ","))
	}
	if o.Quick && !flagSet("busy-wait") {
		o.BusyWait = 2 * time.Second
	}
	if len(o.Loss) > 0 {
		if o.Offload {
			return errors.New("-loss with -offload: the offload TAP exchanges 64 KB super-frames, which iptables would drop as a unit; run -loss on the plain TAP")
		}
		if err := checkLossTools(); err != nil {
			return err
		}
		if o.Quick && !flagSet("loss-time") {
			o.LossTime = 2 * time.Second
		}
	}
	if wls, err = withLoss(wls, o.Loss); err != nil {
		return err
	}
	if err := checkCC(o.CC, stacks); err != nil {
		return err
	}
	if slices.ContainsFunc(wls, func(w workload) bool { return w.ServerMode == "http" }) {
		if err := ensureHTTPTools(); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	topo, err := newTopology()
	if err != nil {
		return err
	}
	defer topo.Close()
	if len(o.Loss) > 0 {
		if err := topo.buildLossPath(); err != nil {
			return err
		}
	}

	var records []runRecord
	for round := 1; round <= o.Rounds; round++ {
		for _, w := range wls {
			for _, s := range runStacks(w, stacks) {
				busy, flagged := waitQuiet(o)
				rec := runRecord{Round: round, Stack: s, Workload: w.Name, Busy: busy, Flagged: flagged}
				rec.Metrics, rec.Note, rec.Err = runOne(topo, self, stackDefs[s], w, o, &rec)
				logRecord(rec)
				records = append(records, rec)
			}
		}
	}
	report := renderReport(o, argv, stacks, wls, records)
	fmt.Print(report)
	if o.Out != "" {
		return os.WriteFile(o.Out, []byte(report), 0o644)
	}
	return nil
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func logRecord(r runRecord) {
	fmt.Fprintln(os.Stderr, r.line())
}

// child is a re-executed compare process inside a netns.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // stdout lines
	topo  *topology
}

func startChild(topo *topology, ns, self, tag string, env []string, args ...string) (*child, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, self}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	// If compare dies, its children die too (survives the exec by ip).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = &prefixWriter{prefix: tag + ": ", w: os.Stderr}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	topo.track(cmd.Process)
	c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 16), topo: topo}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	return c, nil
}

// expect waits for a line starting with prefix and returns its remainder.
func (c *child) expect(prefix string, timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				return "", fmt.Errorf("exited before %q", prefix)
			}
			if rest, ok := strings.CutPrefix(l, prefix); ok {
				return strings.TrimSpace(rest), nil
			}
		case <-t.C:
			return "", fmt.Errorf("no %q within %v", prefix, timeout)
		}
	}
}

// finish closes a server's stdin and reads what it prints as it stops:
// its TCP counters (srv_segs, srv_retrans, srv_rto: see tcpCounters) and
// the congestion control it ran.
func (c *child) finish() (serverFinish, error) {
	c.stdin.Close()
	line, err := c.expect("COUNTERS", 10*time.Second)
	if err != nil {
		return serverFinish{}, err
	}
	var f serverFinish
	if err := json.Unmarshal([]byte(line), &f); err != nil {
		return serverFinish{}, fmt.Errorf("server counters %q: %w", line, err)
	}
	return f, nil
}

// stop closes stdin and waits; a child that lingers is killed.
func (c *child) stop() {
	c.stdin.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
	c.topo.untrack(c.cmd.Process)
}

// runOne starts the server, runs the client against it and gathers
// metrics; it notes in rec the congestion control both ends ran.
func runOne(topo *topology, self string, d *stackDef, w workload, o Options, rec *runRecord) (map[string]float64, string, error) {
	srvNS, cliNS, routerNS := topo.namespaces(d, w.LossRun)
	srvArgs := []string{"-serve", "-server-stack", d.Name, "-server-mode", w.ServerMode,
		"-server-backlog", strconv.Itoa(w.Backlog), "-server-queues", strconv.Itoa(o.Queues), "-server-reuseport", strconv.Itoa(o.Reuse), "-server-offload=" + strconv.FormatBool(o.Offload),
		"-server-cc", o.CC, "-server-txqueuelen", strconv.Itoa(o.TxQueueLen)}
	hold, forward := 0, 0
	if w.Hold != nil {
		hold = w.Hold(o)
		srvArgs = append(srvArgs, "-server-expect", strconv.Itoa(hold))
	}
	if w.Forward != nil {
		forward = w.Forward(o)
		srvArgs = append(srvArgs, "-server-expect", strconv.Itoa(forward))
	}
	var env []string
	if n, ok := o.GOMAXPROCS[d.Name]; ok {
		env = append(env, gomaxprocsEnv(d.Name)+"="+strconv.Itoa(n))
	}
	srv, err := startChild(topo, srvNS, self, "server "+d.Name, env, srvArgs...)
	if err != nil {
		return nil, "", err
	}
	defer srv.stop()
	if _, err := srv.expect("READY", 20*time.Second); err != nil {
		return nil, "", fmt.Errorf("server: %w", err)
	}
	if w.LossRun {
		if err := installLoss(routerNS, w.Loss); err != nil {
			return nil, "", err
		}
		defer removeLoss(routerNS)
	}
	var tapDrops0 uint64
	if d.TAP {
		if tapDrops0, err = tapTxDropped(srvNS); err != nil {
			return nil, "", err
		}
	}
	var link0 linkCounters
	linkNS, linkDev := udpLink(d, srvNS, cliNS)
	if w.UDP {
		if link0, err = readLinkCounters(linkNS, linkDev); err != nil {
			return nil, "", err
		}
	}
	pid := srv.cmd.Process.Pid
	rss0 := readRSS(pid)
	slab0 := readSlab()

	var peak int64
	var killed atomic.Bool
	stopSampler := make(chan struct{})
	var samplerDone sync.WaitGroup
	if w.SampleRSS {
		samplerDone.Add(1)
		go func() {
			defer samplerDone.Done()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stopSampler:
					return
				case <-tick.C:
					peak = max(peak, readRSS(pid))
					if o.MaxServerRSS > 0 && peak > o.MaxServerRSS<<20 && !killed.Swap(true) {
						// A stack whose memory runs away must not take the shared machine with it.
						_ = srv.cmd.Process.Kill()
					}
				}
			}
		}()
	}

	cliArgs := append([]string{"-client", "-client-target", d.serverAddr().String(), "-client-cc", o.CC}, w.ClientArgs(o)...)
	cli, err := startChild(topo, cliNS, self, "client "+d.Name, nil, cliArgs...)
	if err != nil {
		close(stopSampler)
		return nil, "", err
	}
	defer cli.stop()
	line, err := cli.expect("RESULT", 240*time.Second)
	close(stopSampler)
	samplerDone.Wait()
	if killed.Load() {
		return nil, "", fmt.Errorf("server killed: RSS %d MB over -max-server-rss", peak>>20)
	}
	if err != nil {
		return nil, "", fmt.Errorf("client: %w", err)
	}
	var cr clientResult
	if err := json.Unmarshal([]byte(line), &cr); err != nil {
		return nil, "", fmt.Errorf("client result %q: %w", line, err)
	}
	rec.ClientCC = cr.CC
	m := cr.Metrics
	if d.TAP {
		// Frames the kernel dropped because the TAP's queue was full: the
		// stack's reader had not taken them yet (the hop before netdev).
		n, err := tapTxDropped(srvNS)
		if err != nil {
			return nil, cr.Note, err
		}
		m["tap_tx_dropped"] = float64(n - tapDrops0)
	}
	if w.UDP {
		// The client has sent its last datagram: what the link passed on
		// and dropped is final.
		link1, err := readLinkCounters(linkNS, linkDev)
		if err != nil {
			return nil, cr.Note, err
		}
		maps.Copy(m, link0.metrics(link1))
	}
	if w.LossRun {
		in, out, err := readLoss(routerNS)
		if err != nil {
			return nil, cr.Note, err
		}
		lossMetrics(m, in, out)
	}
	if w.SampleRSS {
		m["rss_growth_mb"] = float64(max(peak-rss0, 0)) / (1 << 20)
	}
	if hold > 0 {
		if int(m["held"]) < hold {
			return nil, cr.Note, fmt.Errorf("client held %.0f of %d connections", m["held"], hold)
		}
		line, err := srv.expect("RESULT", 30*time.Second)
		if err != nil {
			return nil, cr.Note, fmt.Errorf("server: %w", err)
		}
		var sr serverReport
		if err := json.Unmarshal([]byte(line), &sr); err != nil {
			return nil, "", fmt.Errorf("server result %q: %w", line, err)
		}
		delta := float64(sr.RSSAfter - sr.RSSBefore)
		if !d.TAP {
			// The kernel keeps sockets in slab, not in the process. Slab grew
			// for both ends (client and server sockets): count half of it.
			slabDelta := float64(readSlab() - slab0)
			delta += slabDelta / 2
			cr.Note = strings.TrimSpace(cr.Note + fmt.Sprintf(" kernel: process %.1f MB + slab delta %.1f MB (half counted)",
				float64(sr.RSSAfter-sr.RSSBefore)/(1<<20), slabDelta/(1<<20)))
		}
		m["mb_per_10k"] = delta / float64(hold) * 10000 / (1 << 20)
	}
	if forward > 0 {
		if err := forwardResult(srv, m, forward); err != nil {
			return nil, cr.Note, err
		}
		// The client closes first, while the server can still answer
		// (fwdmem.go: runForwardServer).
		cli.stop()
	}
	fin, err := srv.finish()
	if err != nil {
		return nil, cr.Note, fmt.Errorf("server: %w", err)
	}
	rec.ServerCC = fin.CC
	maps.Copy(m, fin.Counters)
	if forward > 0 && int(m["srv_fwd_closed"]) != forward {
		return nil, cr.Note, fmt.Errorf("the server saw %.0f of %d forwarded connections closed by the client", m["srv_fwd_closed"], forward)
	}
	return m, cr.Note, nil
}

// readSlab returns Slab from /proc/meminfo in bytes.
func readSlab() int64 { return procKB("/proc/meminfo", "Slab:") }

// prefixWriter prefixes each line a child writes to stderr.
type prefixWriter struct {
	mu     sync.Mutex
	prefix string
	w      io.Writer
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := slices.Index(p.buf, '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i])
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

// tapTxDropped reads the kernel's transmit drops on the TAP in ns (ip -s
// link: tx_dropped), the frames the TAP's full queue turned away.
func tapTxDropped(ns string) (uint64, error) {
	out, err := exec.Command("ip", "-n", ns, "-s", "-j", "link", "show", "dev", tapName).Output()
	if err != nil {
		return 0, fmt.Errorf("ip -n %s -s link show %s: %w", ns, tapName, err)
	}
	var links []struct {
		Stats64 struct {
			Tx struct {
				Dropped uint64 `json:"dropped"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		return 0, fmt.Errorf("ip -s -j link show %s: %q: %v", tapName, out, err)
	}
	return links[0].Stats64.Tx.Dropped, nil
}
