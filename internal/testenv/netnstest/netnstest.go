// Package netnstest runs tests against real kernel peers in throwaway
// network namespaces: a TAP device opened inside the namespace, the kernel
// side configured with iproute2, and commands (ping, curl, ...) or Go code
// run inside it.
package netnstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tapstack/tapstack/driver"
	"github.com/tapstack/tapstack/internal/testenv/netns"
)

// RequireEnv, set to 1 (as CI does), turns a missing prerequisite into a
// test failure instead of a skip.
const RequireEnv = "TAPSTACK_REQUIRE_NETNS"

// Require skips the test unless it can create namespaces and TAP devices:
// root, /dev/net/tun and the ip command. With TAPSTACK_REQUIRE_NETNS=1 it
// fails the test instead.
func Require(t testing.TB) {
	t.Helper()
	require(t, missing(), os.Getenv(RequireEnv) == "1")
}

func require(t testing.TB, reason string, mustRun bool) {
	t.Helper()
	if reason == "" {
		return
	}
	msg := "netns tests need root, /dev/net/tun and the kernel-side tools; run as root or set " + RequireEnv + "=1 in CI (" + reason + ")"
	if mustRun {
		t.Fatal(msg)
		return
	}
	t.Skip(msg)
}

func missing() string {
	if os.Geteuid() != 0 {
		return "not root"
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return "no /dev/net/tun"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "no ip command (iproute2)"
	}
	return ""
}

// toolPackages names the Debian package of each kernel-side tool the tests
// run (what .ci/run installs).
var toolPackages = map[string]string{
	"ping": "iputils-ping", "nc": "netcat-openbsd", "curl": "curl", "tshark": "tshark",
	"ethtool": "ethtool", "iptables": "iptables", "h2load": "nghttp2-client", "dnsmasq": "dnsmasq-base",
	"python3": "python3-scapy", "/usr/bin/python3": "python3-scapy", "ss": "iproute2", "tc": "iproute2",
	"sysctl": "procps",
}

// RequireTool skips the test, naming the package to install, when a
// kernel-side tool it runs is missing (root and namespaces alone are
// Require's); with TAPSTACK_REQUIRE_NETNS=1 it fails it instead.
func RequireTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		pkg := toolPackages[name]
		if pkg == "" {
			pkg = "the package that has it"
		}
		require(t, "no "+name+": apt-get install "+pkg, os.Getenv(RequireEnv) == "1")
	}
}

// NS is a network namespace that lives as long as its test.
type NS struct {
	t    testing.TB
	name string
}

// New creates a namespace with a random name (tsN<hex>), brings its
// loopback up and deletes it, killing what still runs in it, when the test
// ends. It calls Require first.
func New(t testing.TB) *NS {
	t.Helper()
	Require(t)
	var r [4]byte
	rand.Read(r[:])
	ns := &NS{t: t, name: "tsN" + hex.EncodeToString(r[:])}
	if err := netns.Create(ns.name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.destroy)
	return ns
}

// Name is the namespace's name under /var/run/netns.
func (ns *NS) Name() string { return ns.name }

func (ns *NS) destroy() {
	if out, err := exec.Command("ip", "netns", "pids", ns.name).Output(); err == nil {
		for _, pid := range strings.Fields(string(out)) {
			exec.Command("kill", "-9", pid).Run()
		}
	}
	if err := netns.Delete(ns.name); err != nil {
		ns.t.Errorf("netnstest: %v", err)
	}
}

// Do runs fn on an OS thread switched into the namespace (for raw sockets
// or kernel sockets that Go code opens there; they stay in the namespace).
// fn runs on a fresh goroutine locked to its thread: goroutines fn starts
// run in the host namespace, and if the thread cannot switch back it is
// retired rather than reused.
func (ns *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- netns.Do(ns.name, fn) }()
	return <-errc
}

// OpenTAP creates a TAP device inside the namespace (driver.OpenTAP run
// with the thread switched into it). The caller closes it; do that before
// the test ends so the device is gone when the namespace is deleted.
func (ns *NS) OpenTAP(name string, queues int) (*driver.TAP, error) {
	return openIn(ns, "tap", func() (*driver.TAP, error) { return driver.OpenTAP(name, queues) })
}

// OpenTUN creates a TUN device inside the namespace (driver.OpenTUN run
// with the thread switched into it). The caller closes it before the test
// ends, as for OpenTAP.
func (ns *NS) OpenTUN(name string, queues int) (*driver.TUN, error) {
	return openIn(ns, "tun", func() (*driver.TUN, error) { return driver.OpenTUN(name, queues) })
}

// openIn runs a driver's open inside the namespace.
func openIn[T any](ns *NS, kind string, open func() (T, error)) (T, error) {
	var dev T
	err := ns.Do(func() error {
		var err error
		dev, err = open()
		return err
	})
	if err != nil {
		return dev, fmt.Errorf("netnstest: open %s in %s: %w", kind, ns.name, err)
	}
	return dev, nil
}

// Command returns `ip netns exec NAME args...`: a command run inside the
// namespace (exec.Command alone would run in the host's). It is killed
// when ctx is done.
func (ns *NS) Command(ctx context.Context, args ...string) *exec.Cmd {
	if len(args) > 0 {
		RequireTool(ns.t, args[0])
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.name}, args...)...)
}

// Run runs a command inside the namespace and returns its combined output;
// the error includes the output.
func (ns *NS) Run(args ...string) (string, error) {
	out, err := ns.Command(context.Background(), args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("netnstest: %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// IP runs `ip -n NAME args...` and returns its output.
func (ns *NS) IP(args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"-n", ns.name}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("netnstest: ip -n %s %s: %v: %s", ns.name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// MustIP runs `ip -n NAME args...` and fails the test on error. Call it from
// the test's goroutine.
func (ns *NS) MustIP(args ...string) string {
	ns.t.Helper()
	out, err := ns.IP(args...)
	if err != nil {
		ns.t.Fatal(err)
	}
	return out
}

// AddrAdd assigns cidr (e.g. "10.0.0.1/24") to the kernel's side of dev,
// failing the test on error.
func (ns *NS) AddrAdd(dev, cidr string) {
	ns.t.Helper()
	ns.MustIP("addr", "add", cidr, "dev", dev)
}

// LinkUp sets dev up, failing the test on error.
func (ns *NS) LinkUp(dev string) {
	ns.t.Helper()
	ns.MustIP("link", "set", dev, "up")
}
