package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
)

// topology is the set of network namespaces one run of compare owns:
// tap holds the TAP (its kernel side is the client of the userspace
// stacks); srv and cli are the kernel server and client joined by a veth;
// with -loss, end is where the clients of loss runs live, routed through
// tap or cli (see loss.go).
type topology struct {
	tap, srv, cli, end string

	mu       sync.Mutex
	children map[int]*os.Process
	created  []string
	closed   bool
}

// newTopology creates the namespaces with random names and installs a
// signal handler that kills our children and deletes the namespaces.
func newTopology() (*topology, error) {
	var r [4]byte
	_, _ = rand.Read(r[:])
	base := "tsbench-" + hex.EncodeToString(r[:])
	t := &topology{tap: base + "-tap", srv: base + "-srv", cli: base + "-cli", end: base + "-end", children: map[int]*os.Process{}}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "compare: %v: cleaning up\n", s)
		t.Close()
		os.Exit(130)
	}()

	if err := t.build(); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// addNetns creates a netns with its loopback up. It runs under the lock,
// so a signal's Close either sees this netns or stops us from creating it.
func (t *topology) addNetns(ns string) error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return errors.New("interrupted")
	}
	err := run("ip", "netns", "add", ns)
	if err == nil {
		t.created = append(t.created, ns)
	}
	t.mu.Unlock()
	if err != nil {
		return err
	}
	return run("ip", "-n", ns, "link", "set", "lo", "up")
}

func (t *topology) build() error {
	for _, ns := range []string{t.tap, t.srv, t.cli} {
		if err := t.addNetns(ns); err != nil {
			return err
		}
	}
	steps := [][]string{
		{"ip", "-n", t.cli, "link", "add", "vc0", "type", "veth", "peer", "name", "vs0", "netns", t.srv},
		{"ip", "-n", t.cli, "addr", "add", vethClient.String(), "dev", "vc0"},
		{"ip", "-n", t.cli, "link", "set", "vc0", "up"},
		{"ip", "-n", t.srv, "addr", "add", vethServer.String(), "dev", "vs0"},
		{"ip", "-n", t.srv, "link", "set", "vs0", "up"},
		// SYN-ACKs to spoofed sources go back to the client netns and die there.
		{"ip", "-n", t.srv, "route", "add", spoofed.String(), "via", vethClient.Addr().String()},
		{"ip", "-n", t.cli, "route", "add", "blackhole", spoofed.String()},
		{"ip", "-n", t.tap, "route", "add", "blackhole", spoofed.String()},
	}
	// Clients make tens of thousands of short connections: widen the port
	// range and let TIME_WAIT ports be reused after 1 s (tcp_tw_reuse=1).
	for _, ns := range []string{t.cli, t.tap} {
		steps = append(steps, clientSysctls(ns)...)
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// clientSysctls are the steps that prepare a client netns.
func clientSysctls(ns string) [][]string {
	return [][]string{
		{"ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=1024 65535"},
		{"ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.tcp_tw_reuse=1"},
	}
}

// Close kills children still running and deletes the namespaces.
func (t *topology) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for pid, p := range t.children {
		_ = p.Kill()
		delete(t.children, pid)
	}
	for _, ns := range t.created {
		_ = exec.Command("ip", "netns", "del", ns).Run()
	}
	t.created = nil
}

func (t *topology) track(p *os.Process) {
	t.mu.Lock()
	t.children[p.Pid] = p
	t.mu.Unlock()
}

func (t *topology) untrack(p *os.Process) {
	t.mu.Lock()
	delete(t.children, p.Pid)
	t.mu.Unlock()
}

// namespaces returns the server and client netns for a stack, and for a
// loss run the netns that routes between them and drops (the client's is
// then the leaf netns end).
func (t *topology) namespaces(d *stackDef, loss bool) (srv, cli, router string) {
	srv, cli = t.srv, t.cli
	if d.TAP {
		srv, cli = t.tap, t.tap
	}
	if loss {
		return srv, t.end, cli
	}
	return srv, cli, ""
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
