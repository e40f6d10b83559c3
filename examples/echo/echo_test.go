package main

import (
	"bytes"
	"fmt"
	"github.com/tapstack/tapstack/examples/internal/cmdtest"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/testenv/netnstest"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
)

// The tests run the real command: this test binary re-executed with
// TAPSTACK_ECHO_MAIN=1 runs main() with the given flags.
const mainEnv = "TAPSTACK_ECHO_MAIN"

func TestMain(m *testing.M) {
	if cmdtest.Main(mainEnv, main) {
		return
	}
	os.Exit(m.Run())
}

func TestBadFlagsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"-sysctl", "net.core.no_such_knob=1"},
		{"-sysctl", "net.ipv4.tcp_syncookies=7"},
		{"-sysctl", "somaxconn"},
		{"-addr", "10.0.0.300/24"},
		{"-port", "70000"},
		{"-reuseport", "0"},
	} {
		cmd := cmdtest.Command(mainEnv, args...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errorsAs(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("echo %v: %v, want exit status 2\n%s", args, err, out)
		}
		if !bytes.Contains(out, []byte("echo: ")) && !bytes.Contains(out, []byte("flag")) {
			t.Errorf("echo %v: no clear error: %s", args, out)
		}
	}
}

func errorsAs(err error, target **exec.ExitError) bool {
	ee, ok := err.(*exec.ExitError)
	*target = ee
	return ok
}

// README's main job: the echo server on a TAP answers ping and echoes TCP,
// and prints its counters and sockets on SIGUSR1 and at exit.
func TestEchoOnTAP(t *testing.T) {
	ns := netnstest.New(t)
	pcap := filepath.Join(t.TempDir(), "echo.pcap")
	echo := cmdtest.Start(t, mainEnv, "TCP echo on port 7", "-netns", ns.Name(), "-tap", "tap0", "-port", "7", "-pcap", pcap)

	// -w: wait for all three replies however long they take.
	ping, err := ns.Run("ping", "-c", "3", "-i", "0.2", "-w", strconv.Itoa(testwait.SecondsLeft(t)), "10.0.0.2")
	if err != nil || !strings.Contains(ping, "3 packets transmitted, 3 received") {
		t.Fatalf("ping: %v\n%s", err, ping)
	}
	nc := ns.Command(testwait.Context(t), "nc", "-N", "10.0.0.2", "7")
	nc.Stdin = strings.NewReader("hello, tapstack\n")
	if got, err := nc.Output(); err != nil || string(got) != "hello, tapstack\n" {
		t.Fatalf("nc echo: %v: %q", err, got)
	}
	// UDP echo from a kernel socket in the namespace: a 4 KB datagram, so
	// that it crosses as IP fragments both ways.
	big := []byte(strings.Repeat("0123456789abcdef", 256))
	if err := ns.Do(func() error {
		c, err := net.Dial("udp", "10.0.0.2:7")
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(testwait.Deadline(t))
		if _, err := c.Write(big); err != nil {
			return err
		}
		got := make([]byte, 8192)
		n, err := c.Read(got)
		if err != nil || string(got[:n]) != string(big) {
			return fmt.Errorf("%d bytes back (want %d), %v", n, len(big), err)
		}
		return nil
	}); err != nil {
		t.Fatalf("UDP echo: %v", err)
	}

	echo.Cmd.Process.Signal(syscall.SIGUSR1)
	echo.WaitFor(time.Until(testwait.Deadline(t)), "IcmpInEchos", "LISTEN")
	report := echo.Stop()
	for _, want := range []string{"IcmpInEchos                      3 ", "TcpPassiveOpens                  1 ", "10.0.0.2:7",
		"UdpInDatagrams                   1 ", "UdpOutDatagrams                  1 ", "IpReasmOKs                       1 ", "IpFragCreates                    3 "} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	checkPcap(t, pcap)
}

// checkPcap has tshark dissect the capture: ARP, the pings and the TCP
// exchange must be there, and no packet may be malformed.
func checkPcap(t *testing.T, file string) {
	netnstest.RequireTool(t, "tshark")
	out, err := exec.Command("tshark", "-n", "-r", file).CombinedOutput()
	if err != nil {
		t.Fatalf("tshark -r: %v\n%s", err, out)
	}
	text := string(out)
	if strings.Contains(text, "Malformed") {
		t.Errorf("tshark reports malformed packets:\n%s", text)
	}
	for _, want := range []string{"ARP", "Echo (ping) reply", "TCP", "[SYN, ACK]"} {
		if !strings.Contains(text, want) {
			t.Errorf("capture lacks %q:\n%s", want, text)
		}
	}
}

// TestEchoReusePort: with -reuseport 2 the echo server has two SO_REUSEPORT
// listeners on its port, each with its own accept loop; kernel clients'
// connections are echoed whichever takes them, and the report lists both.
func TestEchoReusePort(t *testing.T) {
	ns := netnstest.New(t)
	echo := cmdtest.Start(t, mainEnv, "2 listener(s)", "-netns", ns.Name(), "-tap", "tap0", "-port", "7", "-reuseport", "2")
	for i := range 8 {
		msg := fmt.Sprintf("hello %d\n", i)
		nc := ns.Command(testwait.Context(t), "nc", "-N", "10.0.0.2", "7")
		nc.Stdin = strings.NewReader(msg)
		if got, err := nc.Output(); err != nil || string(got) != msg {
			t.Fatalf("nc echo %d: %v: %q", i, err, got)
		}
	}
	echo.Cmd.Process.Signal(syscall.SIGUSR1)
	echo.WaitFor(time.Until(testwait.Deadline(t)), "LISTEN")
	report := echo.Stop()
	// The SIGUSR1 report and the one at exit each list both listeners.
	if n := strings.Count(report, "LISTEN      0       4096    10.0.0.2:7"); n != 4 {
		t.Fatalf("the reports list %d listeners on :7, want 2 each:\n%s", n, report)
	}
}
