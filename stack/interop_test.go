package stack_test

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/testenv/netnstest"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
	"github.com/tapstack/tapstack/stack"
)

var (
	stackAddr  = netip.MustParsePrefix("10.0.0.2/24")
	kernelAddr = netip.MustParsePrefix("10.0.0.1/24")
)

// tapStack starts a stack on a TAP inside a fresh namespace whose kernel
// side is 10.0.0.1/24; the stack is 10.0.0.2.
func tapStack(t *testing.T, sysctls map[string]string) (*netnstest.NS, *stack.Stack) {
	t.Helper()
	return tapStackWrapped(t, sysctls, nil)
}

// tapStackWrapped is tapStack with the TAP wrapped by wrap (e.g. in an
// impairment) before the stack attaches to it.
func tapStackWrapped(t *testing.T, sysctls map[string]string, wrap func(stack.Link) stack.Link) (*netnstest.NS, *stack.Stack) {
	t.Helper()
	ns := netnstest.New(t)
	tap, err := ns.OpenTAP("tap0", 1)
	if err != nil {
		t.Fatal(err)
	}
	var link stack.Link = tap
	if wrap != nil {
		link = wrap(tap)
	}
	st, err := stack.New(stack.Config{Sysctls: sysctls})
	if err != nil {
		tap.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Attach(link, stackAddr); err != nil {
		t.Fatal(err)
	}
	ns.AddrAdd("tap0", kernelAddr.String())
	ns.LinkUp("tap0")
	return ns, st
}

func counter(t *testing.T, st *stack.Stack, name string) uint64 {
	t.Helper()
	v, ok := st.Stats().Get(name)
	if !ok {
		t.Fatalf("no counter %s", name)
	}
	return v
}

func echoServer(t *testing.T, ln net.Listener) {
	t.Helper()
	serve(t, ln, func(c net.Conn) { io.Copy(c, c) })
}

// serve accepts on ln until the test ends and runs handle on each
// connection in its own goroutine, closing the connection after it.
func serve(t *testing.T, ln net.Listener, handle func(net.Conn)) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
}

func TestInteropPingAndARP(t *testing.T) {
	ns, st := tapStack(t, nil)
	// -w: wait for all three replies however long they take (up to the
	// test's deadline), rather than count a late one as lost.
	out, err := ns.Run("ping", "-c", "3", "-i", "0.2", "-w", waitSeconds(t), stackAddr.Addr().String())
	if err != nil || !strings.Contains(out, "3 received") {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	// The kernel resolved us (ARP reply from the stack) ...
	neigh, _ := ns.IP("neigh", "show", stackAddr.Addr().String())
	if !strings.Contains(neigh, "lladdr") {
		t.Fatalf("kernel has no neighbour entry for the stack: %q", neigh)
	}
	// ... and the stack resolved the kernel (ARP request from the stack) to
	// send its replies.
	if v := counter(t, st, "IcmpOutEchoReps"); v != 3 {
		t.Fatalf("IcmpOutEchoReps = %d, want 3", v)
	}
}

func TestInteropNcEcho(t *testing.T) {
	ns, st := tapStack(t, nil)
	ln, err := st.Listen("tcp", ":7")
	if err != nil {
		t.Fatal(err)
	}
	echoServer(t, ln)
	cmd := ns.Command(testwait.Context(t), "nc", "-N", stackAddr.Addr().String(), "7")
	cmd.Stdin = strings.NewReader("hello over tapstack\n")
	out, err := cmd.Output()
	if err != nil || string(out) != "hello over tapstack\n" {
		t.Fatalf("nc: %v, got %q", err, out)
	}
}

func TestInteropCurl(t *testing.T) {
	ns, st := tapStack(t, nil)
	ln, err := st.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<h1>Hello from tapstack</h1>") })
	mux.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) { w.Write(pattern(1 << 20)) })
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	out, err := ns.Run("curl", "-sS", "--max-time", waitSeconds(t), "http://10.0.0.2/")
	if err != nil || out != "<h1>Hello from tapstack</h1>" {
		t.Fatalf("curl /: %v: %q", err, out)
	}
	out, err = ns.Run("sh", "-c", "curl -sS --max-time "+waitSeconds(t)+" http://10.0.0.2/bytes | sha256sum")
	if want := fmt.Sprintf("%x", sha256.Sum256(pattern(1<<20))); err != nil || !strings.HasPrefix(out, want) {
		t.Fatalf("curl /bytes: %v: %q, want sha256 %s", err, out, want)
	}
}

// waitSeconds is testwait.SecondsLeft for a command line.
func waitSeconds(t *testing.T) string { return strconv.Itoa(testwait.SecondsLeft(t)) }

// pattern returns n deterministic pseudo-random bytes.
func pattern(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 7))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// patternReader streams n deterministic bytes without holding them.
type patternReader struct {
	r *rand.Rand
	n int64
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.n <= 0 {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.n)]
	for i := range b {
		b[i] = byte(p.r.Uint32())
	}
	p.n -= int64(len(b))
	return len(b), nil
}

func newPattern(seed uint64, n int64) io.Reader {
	return &patternReader{r: rand.New(rand.NewPCG(seed, 1)), n: n}
}

// transfer has the stack upload size bytes to a kernel server in the
// namespace (the server answers with their SHA-256) and then download size
// bytes from it, checking both digests.
func transfer(t *testing.T, ns *netnstest.NS, st *stack.Stack, size int64) {
	t.Helper()
	kernelServer(t, ns, "", size)
	up := timedTransfer(t, st, size, 'u')
	down := timedTransfer(t, st, size, 'd')
	t.Logf("%d MB up in %v, down in %v; RetransSegs %d", size>>20, up.Round(time.Millisecond),
		down.Round(time.Millisecond), counter(t, st, "TcpRetransSegs"))
}

func TestInteropDialKernel100MB(t *testing.T) {
	ns, st := tapStack(t, nil)
	transfer(t, ns, st, 100<<20)
}

func TestInteropHTTP1000Connections(t *testing.T) {
	ns, st := tapStack(t, nil)
	ln, err := st.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(pattern(4096))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	var res httpResult
	runInNS(t, ns, "http", httpArgs{URL: "http://10.0.0.2/", Conns: 1000, Requests: 3}, &res)
	if res.Failed != 0 || res.OK != 3000 {
		t.Fatalf("1000 connections × 3 requests: ok %d failed %d: %v", res.OK, res.Failed, res.Errors)
	}
}
