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
// stacks); srv and cli are the kernel server and client joined by a veth.
type topology struct {
	tap, srv, cli string

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
	t := &topology{tap: base + "-tap", srv: base + "-srv", cli: base + "-cli", children: map[int]*os.Process{}}

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

func (t *topology) build() error {
	for _, ns := range []string{t.tap, t.srv, t.cli} {
		// Under the lock, so a signal's Close either sees this netns or
		// stops us from creating it.
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
		if err := run("ip", "-n", ns, "link", "set", "lo", "up"); err != nil {
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
		steps = append(steps,
			[]string{"ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=1024 65535"},
			[]string{"ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.tcp_tw_reuse=1"})
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			return err
		}
	}
	return nil
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

// namespaces returns the server and client netns for a stack.
func (t *topology) namespaces(d *stackDef) (srv, cli string) {
	if d.TAP {
		return t.tap, t.tap
	}
	return t.srv, t.cli
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
