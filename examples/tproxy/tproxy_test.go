package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapstack/tapstack/examples/internal/cmdtest"
	"github.com/tapstack/tapstack/internal/testenv/netnstest"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
)

const mainEnv = "TAPSTACK_TPROXY_MAIN"

func TestMain(m *testing.M) {
	if cmdtest.Main(mainEnv, main) {
		return
	}
	os.Exit(m.Run())
}

func TestBadFlagsExit2(t *testing.T) {
	for _, args := range [][]string{
		{},                       // no -upstream
		{"-upstream", "nowhere"}, // no port
		{"-upstream", "127.0.0.1:1", "-range", "fd00::/8"},
		{"-upstream", "127.0.0.1:1", "-max-inflight", "0"},
		{"-upstream", "127.0.0.1:1", "-udp-upstream", "x"},
	} {
		out, err := cmdtest.Command(mainEnv, args...).CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 || !bytes.Contains(out, []byte("tproxy: ")) {
			t.Errorf("tproxy %v: %v, want exit status 2 with a clear error\n%s", args, err, out)
		}
	}
}

// TestTransparentProxy is the example end to end: clients in one namespace
// route 10.99.0.0/16 into the TAP; the proxy runs in a second namespace,
// where its upstream HTTP and UDP servers listen on loopback. curl to any
// address of the range gets the upstream's page (asked with the Host the
// client used); a UDP query gets the upstream's reply from the address it
// was sent to; with the upstream gone, the client's connect is refused.
func TestTransparentProxy(t *testing.T) {
	netnstest.RequireTool(t, "curl")
	clients, proxyNS := netnstest.New(t), netnstest.New(t)
	var ln net.Listener
	var pc net.PacketConn
	if err := proxyNS.Do(func() error {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "upstream page for %s%s\n", r.Host, r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte("answer to "), buf[:n]...), from)
		}
	}()
	t.Cleanup(func() { pc.Close() })

	cmd := proxyNS.Command(context.Background(), os.Args[0], "-netns", clients.Name(), "-tap", "tap0",
		"-upstream", ln.Addr().String(), "-udp-upstream", pc.LocalAddr().String(), "-dial-timeout", "2s")
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	proxy := cmdtest.StartCmd(t, cmd, "tapstack tproxy")

	for _, url := range []string{"http://10.99.1.2/hello", "http://10.99.250.7:8443/x"} {
		out, err := clients.Run("curl", "-sS", "--max-time", fmt.Sprint(testwait.SecondsLeft(t)), url)
		host := strings.SplitN(url, "/", 4)[2]
		path := "/" + strings.SplitN(url, "/", 4)[3]
		if want := "upstream page for " + host + path + "\n"; err != nil || out != want {
			t.Fatalf("curl %s: %v: %q, want %q", url, err, out, want)
		}
	}
	if err := clients.Do(func() error {
		c, err := net.Dial("udp", "10.99.0.53:53")
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(testwait.Deadline(t))
		if _, err := c.Write([]byte("query")); err != nil {
			return err
		}
		buf := make([]byte, 64)
		n, err := c.Read(buf) // connected: only a reply from 10.99.0.53:53 is taken
		if err != nil || string(buf[:n]) != "answer to query" {
			return fmt.Errorf("udp reply %q (%v)", buf[:n], err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// The upstream goes away: the proxy refuses the client's connection
	// instead of accepting it and then closing.
	srv.Close()
	if err := clients.Do(func() error {
		d := net.Dialer{Timeout: 10 * time.Second}
		_, err := d.Dial("tcp", "10.99.3.3:80")
		if !errorsIs(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("connect with the upstream down: %v, want ECONNREFUSED", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	report := proxy.Stop()
	for _, want := range []string{"TcpPassiveOpens                  2 ", "2 TCP connections spliced, 1 refused, 1 UDP flows", "0.0.0.0:0"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
