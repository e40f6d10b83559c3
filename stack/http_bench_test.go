package stack_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime/trace"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/stack"
	xtrace "golang.org/x/exp/trace"
)

// BenchmarkHTTPKeepAlive is request/response as users run it: net/http
// serving a 100-byte body on one stack, many keep-alive connections from a
// second stack over the in-memory pipe, each sending its next request as
// soon as the response is in (the bench's `http` workload without the TAP
// and the kernel). Per request it reports the time, heap allocations (both
// ends: the client side allocates nothing), TCP segments on the wire, and
// goroutine wake-ups — every goroutine made runnable from a wait, counted
// from an execution trace of a separate pass of 20 requests per connection.
func BenchmarkHTTPKeepAlive(b *testing.B) {
	for _, conns := range []int{50, 1000} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) { benchHTTP(b, conns) })
	}
}

var httpBody = bytes.Repeat([]byte("x"), 100)

func benchHTTP(b *testing.B, conns int) {
	la, lb := driver.NewPipe(driver.PipeConfig{}, driver.PipeConfig{})
	srv, err := stack.New(stack.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	cli, err := stack.New(stack.Config{Sysctls: map[string]string{"net.ipv4.ip_local_port_range": "10000 60999"}})
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	if err := srv.Attach(la, netip.MustParsePrefix("10.1.0.1/24")); err != nil {
		b.Fatal(err)
	}
	if err := cli.Attach(lb, netip.MustParsePrefix("10.1.0.2/24")); err != nil {
		b.Fatal(err)
	}
	ln, err := srv.Listen("tcp", ":80")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Date"] = nil // a fixed-length response: the client reads it whole without parsing
		h["Content-Type"] = []string{"application/octet-stream"}
		h["Content-Length"] = []string{"100"}
		w.Write(httpBody)
	})}
	go hs.Serve(ln)
	defer hs.Close()

	cs := make([]net.Conn, conns)
	for i := range cs {
		if cs[i], err = cli.Dial("tcp", "10.1.0.1:80"); err != nil {
			b.Fatalf("dial %d: %v", i, err)
		}
	}
	req := []byte("GET /bytes?n=100 HTTP/1.1\r\nHost: 10.1.0.1\r\n\r\n")
	respLen := firstResponseLen(b, cs[0], req)

	// run sends n requests in all, spread over the connections.
	run := func(n int) {
		var next atomic.Int64
		var wg sync.WaitGroup
		for _, c := range cs {
			wg.Add(1)
			go func(c net.Conn) {
				defer wg.Done()
				buf := make([]byte, respLen)
				for next.Add(1) <= int64(n) {
					if _, err := c.Write(req); err != nil {
						b.Error(err)
						return
					}
					if _, err := io.ReadFull(c, buf); err != nil {
						b.Error(err)
						return
					}
				}
			}(c)
		}
		wg.Wait()
	}
	run(conns) // every connection warm
	wakeups, traced := tracedWakeups(func() { run(20 * conns) })

	segs := func() uint64 {
		var n uint64
		for _, s := range []*stack.Stack{srv, cli} {
			v, _ := s.Stats().Get("TcpOutSegs")
			n += v
		}
		return n
	}
	before := segs()
	b.ReportAllocs()
	b.ResetTimer()
	run(b.N)
	b.StopTimer()
	b.ReportMetric(float64(segs()-before)/float64(b.N), "segs/req")
	if traced {
		b.ReportMetric(float64(wakeups)/float64(20*conns), "wakeups/req")
	}
	for _, c := range cs {
		c.Close()
	}
}

// firstResponseLen sends one request and returns the length of the whole
// response (headers and the 100-byte body).
func firstResponseLen(b *testing.B, c net.Conn, req []byte) int {
	if _, err := c.Write(req); err != nil {
		b.Fatal(err)
	}
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err != nil {
			b.Fatal(err)
		}
		got = append(got, buf[:n]...)
		if i := bytes.Index(got, []byte("\r\n\r\n")); i >= 0 && len(got) >= i+4+len(httpBody) {
			if len(got) != i+4+len(httpBody) {
				b.Fatalf("response of %d bytes, headers end at %d", len(got), i+4)
			}
			return len(got)
		}
	}
}

// tracedWakeups runs f under the execution tracer and counts goroutines
// made runnable from a wait (a channel, lock, condition variable, network
// or sleep ended). traced is false when a trace is already running (go test
// -trace), which leaves the metric out.
func tracedWakeups(f func()) (n int, traced bool) {
	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		f()
		return 0, false
	}
	f()
	trace.Stop()
	r, err := xtrace.NewReader(&buf)
	if err != nil {
		return 0, false
	}
	for {
		ev, err := r.ReadEvent()
		if err != nil {
			return n, err == io.EOF
		}
		if ev.Kind() != xtrace.EventStateTransition {
			continue
		}
		st := ev.StateTransition()
		if st.Resource.Kind != xtrace.ResourceGoroutine {
			continue
		}
		if from, to := st.Goroutine(); from == xtrace.GoWaiting && to == xtrace.GoRunnable {
			n++
		}
	}
}
