package stack_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/testenv/netnstest"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
)

// The kernel-side Go clients of the interop tests run in the test's network
// namespace. A socket lives in the namespace of the thread that made it, and
// Go moves goroutines between threads, so they run as a separate process:
// this test binary re-executed under `ip netns exec` with TAPSTACK_HELPER
// naming the role and TAPSTACK_HELPER_ARGS its JSON arguments.
func TestMain(m *testing.M) {
	if role := os.Getenv("TAPSTACK_HELPER"); role != "" {
		os.Exit(runHelper(role, []byte(os.Getenv("TAPSTACK_HELPER_ARGS"))))
	}
	os.Exit(m.Run())
}

// connectArgs drives the "connect" role: Sequential connects spaced by
// Spacing, then Burst connects at once; then, with Echo set, every
// connected socket writes it and waits for it to come back. No connect or
// echo has a timeout of its own: a SYN is retried as the kernel retries it
// (tcp_syn_retries), an echo is waited for as long as the test runs.
//
// Stepped puts the test in charge of the pace instead, through the
// helper's stdin (see stepper), so that each step can wait for the stack
// to have dealt with the last.
type connectArgs struct {
	Addr       string
	Sequential int
	Burst      int
	Spacing    time.Duration
	Echo       string // if set, write it and expect it back
	Stepped    bool
}

// connectResult is one connect's outcome: "ok", "timeout" (the kernel's SYN
// retries ran out), "pending" (a stepped connect still waiting when the
// test moved on), "refused", "reset", "eof" or an error text; and its
// probe's: "echo", "data", "live" (stepped: nothing there, the connection
// is up), "reset", "eof", ...
type connectResult struct {
	Connect string
	Probe   string
	Took    time.Duration
}

// httpArgs drives the "http" role: Conns clients, each with its own
// connection, issue Requests GETs of URL at the same time.
type httpArgs struct {
	URL      string
	Conns    int
	Requests int
}

type httpResult struct {
	OK, Failed int
	Errors     []string
}

func runHelper(role string, raw []byte) int {
	var out any
	switch role {
	case "connect":
		var a connectArgs
		if err := json.Unmarshal(raw, &a); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		out = helperConnect(a)
	case "http":
		var a httpArgs
		if err := json.Unmarshal(raw, &a); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		out = helperHTTP(a)
	default:
		fmt.Fprintln(os.Stderr, "unknown helper role", role)
		return 2
	}
	json.NewEncoder(os.Stdout).Encode(out)
	return 0
}

func classify(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, io.EOF):
		return "eof"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return err.Error()
}

// The commands of a stepped connect role, one per line on its stdin, in
// this order: "dial" once per Sequential connect (starts the next one),
// "burst" if Burst > 0 (starts them all) and "end": the connects still
// pending are given up, and each connected socket is probed once, without
// waiting (the test has waited for what it needed to happen: a RST it
// sent has been taken by the kernel), with a non-blocking read. The
// results follow on stdout. A stepped role sends no Echo.
const (
	stepDial  = "dial"
	stepBurst = "burst"
	stepEnd   = "end"
)

// stepper reads a stepped helper's commands; without Stepped every step is
// taken at once.
type stepper struct {
	in *bufio.Scanner
}

func (s *stepper) expect(cmd string) {
	if s.in == nil {
		return
	}
	if !s.in.Scan() || s.in.Text() != cmd {
		fmt.Fprintf(os.Stderr, "stepped helper: want command %q, got %q (%v)\n", cmd, s.in.Text(), s.in.Err())
		os.Exit(2)
	}
}

func helperConnect(a connectArgs) []connectResult {
	res := make([]connectResult, a.Sequential+a.Burst)
	conns := make([]net.Conn, len(res))
	var steps stepper
	if a.Stepped {
		steps.in = bufio.NewScanner(os.Stdin)
	}
	dialCtx, giveUp := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	dial := func(i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var d net.Dialer
			start := time.Now()
			c, err := d.DialContext(dialCtx, "tcp", a.Addr)
			res[i].Connect, res[i].Took, conns[i] = classify(err), time.Since(start), c
			if errors.Is(err, context.Canceled) {
				res[i].Connect = "pending"
			}
		}()
	}
	for i := 0; i < a.Sequential; i++ {
		steps.expect(stepDial)
		dial(i)
		if !a.Stepped {
			time.Sleep(a.Spacing)
		}
	}
	if a.Burst > 0 {
		steps.expect(stepBurst)
		for i := a.Sequential; i < len(res); i++ {
			dial(i)
		}
	}
	steps.expect(stepEnd)
	if a.Stepped {
		giveUp() // the test has seen what it waited for: the rest are pending
	}
	wg.Wait()
	giveUp()
	for i, c := range conns {
		switch {
		case c == nil:
		case a.Stepped:
			res[i].Probe = probeNow(c)
		case a.Echo != "":
			wg.Add(1)
			go func() {
				defer wg.Done()
				res[i].Probe = echoProbe(c, a.Echo)
			}()
		}
	}
	wg.Wait()
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	return res
}

// echoProbe writes msg on c and reads it back: "echo", or what came
// instead ("data", "eof", "reset", ...).
func echoProbe(c net.Conn, msg string) string {
	if _, err := c.Write([]byte(msg)); err != nil {
		return classify(err)
	}
	buf := make([]byte, len(msg)+1)
	n, err := io.ReadAtLeast(c, buf, len(msg))
	switch {
	case err != nil:
		return classify(err)
	case string(buf[:n]) == msg:
		return "echo"
	}
	return "data"
}

// probeNow reads from c once without waiting (read(2) on the socket, which
// Go's poller would not do past a deadline): "live" if nothing is there,
// else what is (data, eof, reset).
func probeNow(c net.Conn) string {
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		return err.Error()
	}
	var n int
	var rerr error
	buf := make([]byte, 1)
	if err := rc.Read(func(fd uintptr) bool { n, rerr = syscall.Read(int(fd), buf); return true }); err != nil {
		return err.Error()
	}
	switch {
	case errors.Is(rerr, syscall.EAGAIN):
		return "live"
	case rerr != nil:
		return classify(rerr)
	case n == 0:
		return "eof"
	}
	return "data"
}

func helperHTTP(a httpArgs) httpResult {
	var mu sync.Mutex
	var r httpResult
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < a.Conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
			defer client.CloseIdleConnections()
			<-start
			for j := 0; j < a.Requests; j++ {
				err := get(client, a.URL)
				mu.Lock()
				if err != nil {
					r.Failed++
					if len(r.Errors) < 10 {
						r.Errors = append(r.Errors, err.Error())
					}
				} else {
					r.OK++
				}
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	return r
}

func get(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}

// helperProc is a helper role running inside a namespace.
type helperProc struct {
	t     *testing.T
	role  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   bytes.Buffer
}

// startInNS starts the helper role inside ns. It lives at most as long as
// the test (testwait.Context): it has no time bound of its own.
func startInNS(t *testing.T, ns *netnstest.NS, role string, args any) *helperProc {
	t.Helper()
	raw, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	h := &helperProc{t: t, role: role, cmd: ns.Command(testwait.Context(t), os.Args[0])}
	h.cmd.Env = append(os.Environ(), "TAPSTACK_HELPER="+role, "TAPSTACK_HELPER_ARGS="+string(raw))
	h.cmd.Stderr = os.Stderr
	h.cmd.Stdout = &h.out
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("helper %s in netns: %v", role, err)
	}
	t.Cleanup(func() { h.stdin.Close(); h.cmd.Wait() })
	return h
}

// step sends a stepped helper its next command.
func (h *helperProc) step(cmd string) {
	h.t.Helper()
	if _, err := io.WriteString(h.stdin, cmd+"\n"); err != nil {
		h.t.Fatalf("helper %s: command %q: %v", h.role, cmd, err)
	}
}

// result waits for the helper to finish and decodes its JSON result.
func (h *helperProc) result(v any) {
	h.t.Helper()
	h.stdin.Close()
	if err := h.cmd.Wait(); err != nil {
		h.t.Fatalf("helper %s in netns: %v (stdout %q)", h.role, err, h.out.String())
	}
	if err := json.Unmarshal(h.out.Bytes(), v); err != nil {
		h.t.Fatalf("helper %s: bad output %q: %v", h.role, h.out.String(), err)
	}
}

// runInNS runs the helper role inside ns and decodes its JSON result.
func runInNS(t *testing.T, ns *netnstest.NS, role string, args, result any) {
	t.Helper()
	startInNS(t, ns, role, args).result(result)
}
