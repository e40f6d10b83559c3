package main

import (
	"crypto/sha256"
	"fmt"
	"github.com/tapstack/tapstack/examples/internal/cmdtest"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/tapstack/tapstack/internal/netnstest"
	"github.com/tapstack/tapstack/internal/testwait"
)

// The test runs the real command: this test binary re-executed with
// TAPSTACK_HTTP_MAIN=1 runs main() with the given flags.
const mainEnv = "TAPSTACK_HTTP_MAIN"

func TestMain(m *testing.M) {
	if cmdtest.Main(mainEnv, main) {
		return
	}
	os.Exit(m.Run())
}

// curl, the kernel's HTTP client, fetches the page and 8 MiB of /bytes from
// examples/http on a TAP.
func TestCurlFetchesFromExample(t *testing.T) {
	ns := netnstest.New(t)
	srv := cmdtest.Start(t, mainEnv, "tapstack http: http://10.0.0.2:80/", "-netns", ns.Name(), "-tap", "tap0", "-port", "80")
	maxTime := strconv.Itoa(testwait.SecondsLeft(t)) // curl waits as long as the test
	page, err := ns.Run("curl", "-sS", "--max-time", maxTime, "http://10.0.0.2/")
	if err != nil || !strings.Contains(page, "<h1>Hello from tapstack</h1>") {
		t.Fatalf("curl /: %v\n%s", err, page)
	}
	const n = 8 << 20
	want := make([]byte, n)
	for i := range want {
		want[i] = byte(i % (64 << 10))
	}
	sum, err := ns.Run("sh", "-c", fmt.Sprintf("curl -sS --max-time %s 'http://10.0.0.2/bytes?n=%d' | sha256sum", maxTime, n))
	if w := fmt.Sprintf("%x", sha256.Sum256(want)); err != nil || !strings.HasPrefix(sum, w) {
		t.Fatalf("curl /bytes: %v: %q, want %s", err, sum, w)
	}
	if code, _ := ns.Run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://10.0.0.2/bytes?n=x"); code != "400" {
		t.Errorf("bad n: HTTP %s, want 400", code)
	}
	if out := srv.Stop(); !strings.Contains(out, "TcpPassiveOpens") {
		t.Errorf("no counter report at exit:\n%s", out)
	}
}
