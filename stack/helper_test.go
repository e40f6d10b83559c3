package stack_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/netnstest"
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
// Spacing, then Burst connects at once; each gets Timeout to complete. Every
// connected socket then waits up to Probe for data, to tell a live
// connection (timeout) from a reset one.
type connectArgs struct {
	Addr       string
	Sequential int
	Burst      int
	Spacing    time.Duration
	Timeout    time.Duration
	Probe      time.Duration
	Echo       string // if set, write it and expect it back
}

// connectResult is one connect's outcome: "ok", "timeout", "refused",
// "reset", "eof", "echo-mismatch" or an error text.
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

func helperConnect(a connectArgs) []connectResult {
	res := make([]connectResult, a.Sequential+a.Burst)
	conns := make([]net.Conn, len(res))
	var wg sync.WaitGroup
	dial := func(i int) {
		defer wg.Done()
		start := time.Now()
		c, err := net.DialTimeout("tcp", a.Addr, a.Timeout)
		res[i].Connect, res[i].Took, conns[i] = classify(err), time.Since(start), c
	}
	for i := 0; i < a.Sequential; i++ {
		wg.Add(1)
		go dial(i)
		time.Sleep(a.Spacing)
	}
	for i := a.Sequential; i < len(res); i++ {
		wg.Add(1)
		go dial(i)
	}
	wg.Wait()
	for i, c := range conns {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if a.Echo != "" {
				if _, err := c.Write([]byte(a.Echo)); err != nil {
					res[i].Probe = classify(err)
					return
				}
			}
			c.SetReadDeadline(time.Now().Add(a.Probe))
			buf := make([]byte, len(a.Echo)+1)
			n, err := io.ReadAtLeast(c, buf, max(len(a.Echo), 1))
			switch {
			case a.Echo != "" && err == nil && string(buf[:n]) == a.Echo:
				res[i].Probe = "echo"
			case err == nil:
				res[i].Probe = "data"
			default:
				res[i].Probe = classify(err)
			}
		}()
	}
	wg.Wait()
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	return res
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
			client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1}}
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

// runInNS runs the helper role inside ns and decodes its JSON result.
func runInNS(t *testing.T, ns *netnstest.NS, timeout time.Duration, role string, args, result any) {
	t.Helper()
	raw, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := ns.Command(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), "TAPSTACK_HELPER="+role, "TAPSTACK_HELPER_ARGS="+string(raw))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper %s in netns: %v (stdout %q)", role, err, out)
	}
	if err := json.Unmarshal(out, result); err != nil {
		t.Fatalf("helper %s: bad output %q: %v", role, out, err)
	}
}
