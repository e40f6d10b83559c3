package stack_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/stack"
)

func TestSysctlValidation(t *testing.T) {
	st, err := stack.New(stack.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, tc := range []struct{ name, value, wantErr string }{
		{"net.core.somaxconn", "128", ""},
		{"net/ipv4/tcp_syncookies", "2", ""},
		{"net.ipv4.tcp_rmem", "4096 87380 6291456", ""},
		{"net.ipv4.tcp_congestion_control", "reno", ""},
		{"net.core.no_such_knob", "1", "unknown name"},
		{"net.ipv4.tcp_syncookies", "3", "out of range"},
		{"net.ipv4.tcp_syncookies", "yes", "not an integer"},
		{"net.ipv4.tcp_rmem", "4096 87380", "want 3 integer(s)"},
		{"net.ipv4.tcp_rmem", "8192 4096 6291456", "must not decrease"},
		{"net.ipv4.tcp_congestion_control", "bbr", "bbr"},
		{"net.core.netdev_max_backlog", "-1", "out of range"},
	} {
		err := st.SetSysctl(tc.name, tc.value)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("SetSysctl(%s, %q) = %v, want error containing %q", tc.name, tc.value, err, tc.wantErr)
		}
	}
	for name, want := range map[string]string{
		"net.core.somaxconn":              "128",
		"net.ipv4.tcp_syncookies":         "2",
		"net.ipv4.tcp_rmem":               "4096\t87380\t6291456",
		"net.ipv4.tcp_congestion_control": "reno",
		"net.ipv4.tcp_max_syn_backlog":    "4096",
	} {
		if got, err := st.Sysctl(name); err != nil || got != want {
			t.Errorf("Sysctl(%s) = %q, %v; want %q", name, got, err, want)
		}
	}
	if _, err := stack.New(stack.Config{Sysctls: map[string]string{"net.core.somaxconn": "x"}}); err == nil {
		t.Error("New accepted a bad sysctl")
	}
}

// pipeStacks returns two stacks, 10.1.0.1 and 10.1.0.2, joined by an
// in-memory link.
func pipeStacks(t testing.TB, impair driver.Impairment) (a, b *stack.Stack) {
	t.Helper()
	return pipeStacksWith(t, impair, stack.Config{})
}

// pipeStacksWith is pipeStacks with both stacks made from cfg.
func pipeStacksWith(t testing.TB, impair driver.Impairment, cfg stack.Config) (a, b *stack.Stack) {
	t.Helper()
	la, lb := driver.NewPipe(driver.PipeConfig{Impair: impair}, driver.PipeConfig{Impair: impair})
	var err error
	for i, p := range []struct {
		st   **stack.Stack
		link stack.Link
		addr string
	}{{&a, la, "10.1.0.1/24"}, {&b, lb, "10.1.0.2/24"}} {
		if *p.st, err = stack.New(cfg); err != nil {
			t.Fatal(err)
		}
		s := *p.st
		t.Cleanup(func() { s.Close() })
		if err := s.Attach(p.link, netip.MustParsePrefix(p.addr)); err != nil {
			t.Fatal(i, err)
		}
	}
	return a, b
}

// TestTCPOverPipe: 4 MiB echoed over a lossy, reordering link, with the
// backlogs polled by the link readers (the default) and by the shard
// workers only (ThreadedNAPI).
func TestTCPOverPipe(t *testing.T) {
	for _, threaded := range []bool{false, true} {
		t.Run(fmt.Sprintf("ThreadedNAPI=%v", threaded), func(t *testing.T) { testTCPOverPipe(t, threaded) })
	}
}

func testTCPOverPipe(t *testing.T, threaded bool) {
	a, b := pipeStacksWith(t, driver.Impairment{Seed: 1, LossPercent: 1, ReorderPercent: 2, DupPercent: 1}, stack.Config{ThreadedNAPI: threaded})
	ln, err := a.Listen("tcp", ":7")
	if err != nil {
		t.Fatal(err)
	}
	echoServer(t, ln)
	c, err := b.Dial("tcp", "10.1.0.1:7")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := pattern(4 << 20)
	go func() {
		c.Write(data)
		c.(interface{ CloseWrite() error }).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil || sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("echo of 4 MiB over a lossy link: err %v, %d bytes, equal %v", err, len(got), bytes.Equal(got, data))
	}
	if v, _ := b.Stats().Get("TcpActiveOpens"); v != 1 {
		t.Errorf("TcpActiveOpens = %d", v)
	}
	if v, _ := a.Stats().Get("TcpPassiveOpens"); v != 1 {
		t.Errorf("TcpPassiveOpens = %d", v)
	}
}

func TestHTTPOverPipe(t *testing.T) {
	a, b := pipeStacks(t, driver.Impairment{})
	ln, err := a.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello "+r.URL.Path)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DialContext: b.DialContext}}
	for _, path := range []string{"/a", "/b", "/c"} {
		resp, err := client.Get("http://10.1.0.1" + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "hello "+path {
			t.Fatalf("GET %s: %q", path, body)
		}
	}
}

func TestDialErrors(t *testing.T) {
	a, b := pipeStacks(t, driver.Impairment{})
	_ = a
	_, err := b.Dial("tcp", "10.1.0.1:9") // nobody listens: RST
	var oe *net.OpError
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("dial closed port: %v", err)
	}
	if _, err := b.Dial("tcp", "example.com:80"); err == nil {
		t.Fatal("dial by name succeeded without a resolver")
	}
	if _, err := b.Dial("sctp", "10.1.0.1:80"); err == nil || !errorsAs(err, &oe) {
		t.Fatalf("dial sctp: %v", err)
	}
	// UDP has no handshake: a dial is a connected socket at once.
	if c, err := b.Dial("udp", "10.1.0.1:80"); err != nil || c.RemoteAddr().String() != "10.1.0.1:80" {
		t.Fatalf("dial udp: %v %v", c, err)
	} else {
		c.Close()
	}
}

func errorsAs(err error, target **net.OpError) bool {
	oe, ok := err.(*net.OpError)
	*target = oe
	return ok
}

// MaxConnections is a counted, clear refusal: at the cap Dial fails, and a
// handshake completing at the server's cap is dropped and counted; nothing
// grows past the cap.
func TestMaxConnections(t *testing.T) {
	la, lb := driver.NewPipe(driver.PipeConfig{}, driver.PipeConfig{})
	srv, err := stack.New(stack.Config{MaxConnections: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli, err := stack.New(stack.Config{MaxConnections: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	srv.Attach(la, netip.MustParsePrefix("10.4.0.1/24"))
	cli.Attach(lb, netip.MustParsePrefix("10.4.0.2/24"))
	ln, err := srv.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// No dial waits: the server's SYN-ACK completes the third one on the
	// client (the server drops its ACK at its cap), the fourth fails at
	// the client's cap before any SYN.
	var errs int
	for i := 0; i < 4; i++ {
		c, err := cli.Dial("tcp", "10.4.0.1:80")
		if err != nil {
			errs++
			continue
		}
		defer c.Close()
	}
	if errs != 1 {
		t.Errorf("%d dials failed, want 1 (the client's cap of 3)", errs)
	}
	if v, _ := cli.Stats().Get("TcpExtTCPMaxConnDrop"); v != 1 {
		t.Errorf("client TCPMaxConnDrop = %d, want 1", v)
	}
	settle(t, srv, cli, la, lb) // the third ACK has reached the server
	established := 0
	for _, si := range srv.Sockets() {
		if si.State == "ESTAB" {
			established++
		}
	}
	if established != 2 {
		t.Errorf("server holds %d established sockets, want its cap of 2", established)
	}
	if v, _ := srv.Stats().Get("TcpExtTCPMaxConnDrop"); v == 0 {
		t.Error("server did not count TCPMaxConnDrop")
	}
}
