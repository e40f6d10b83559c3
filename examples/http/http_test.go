package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/netnstest"
)

// The test runs the real command: this test binary re-executed with
// TAPSTACK_HTTP_MAIN=1 runs main() with the given flags.
func TestMain(m *testing.M) {
	if os.Getenv("TAPSTACK_HTTP_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// curl, the kernel's HTTP client, fetches the page and 8 MiB of /bytes from
// examples/http on a TAP.
func TestCurlFetchesFromExample(t *testing.T) {
	ns := netnstest.New(t)
	var out syncBuffer
	cmd := exec.Command(os.Args[0], "-netns", ns.Name(), "-tap", "tap0", "-port", "80")
	cmd.Env = append(os.Environ(), "TAPSTACK_HTTP_MAIN=1")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "tapstack http: http://10.0.0.2:80/") {
		if time.Now().After(deadline) {
			t.Fatalf("http example did not start:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	page, err := ns.Run("curl", "-sS", "--max-time", "10", "http://10.0.0.2/")
	if err != nil || !strings.Contains(page, "<h1>Hello from tapstack</h1>") {
		t.Fatalf("curl /: %v\n%s", err, page)
	}
	const n = 8 << 20
	want := make([]byte, n)
	for i := range want {
		want[i] = byte(i % (64 << 10))
	}
	sum, err := ns.Run("sh", "-c", fmt.Sprintf("curl -sS --max-time 60 'http://10.0.0.2/bytes?n=%d' | sha256sum", n))
	if w := fmt.Sprintf("%x", sha256.Sum256(want)); err != nil || !strings.HasPrefix(sum, w) {
		t.Fatalf("curl /bytes: %v: %q, want %s", err, sum, w)
	}
	if code, _ := ns.Run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://10.0.0.2/bytes?n=x"); code != "400" {
		t.Errorf("bad n: HTTP %s, want 400", code)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "TcpPassiveOpens") {
		t.Errorf("no counter report at exit:\n%s", out.String())
	}
}
