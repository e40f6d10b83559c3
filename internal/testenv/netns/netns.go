// Package netns runs code inside a named Linux network namespace (the ones
// `ip netns add` creates under /var/run/netns). The examples use it to put
// their TAP device in a private namespace; tests use it through netnstest.
package netns

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"

	"golang.org/x/sys/unix"
)

// Dir is where iproute2 keeps named namespaces.
const Dir = "/var/run/netns"

// Exists reports whether the named namespace exists.
func Exists(name string) bool {
	_, err := os.Stat(Dir + "/" + name)
	return err == nil
}

// Create makes the named namespace with `ip netns add` and brings its
// loopback up.
func Create(name string) error {
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add %s: %v: %s", name, err, out)
	}
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("ip -n %s link set lo up: %v: %s", name, err, out)
	}
	return nil
}

// Delete removes the named namespace; the kernel frees it, and every device
// in it, once no process or fd holds it.
func Delete(name string) error {
	if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns delete %s: %v: %s", name, err, out)
	}
	return nil
}

// Do runs fn on the calling goroutine's OS thread switched into the named
// namespace, then switches back. Sockets and TAP devices opened inside fn
// stay in that namespace for their whole life. Goroutines that fn starts do
// NOT inherit the namespace. If switching back fails the thread stays locked,
// so the runtime retires it instead of reusing a thread in the wrong
// namespace.
func Do(name string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: open own namespace: %w", err)
	}
	defer orig.Close()
	target, err := os.Open(Dir + "/" + name)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: open %s: %w", name, err)
	}
	defer target.Close()
	if err := setns(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: enter %s: %w", name, err)
	}
	fnErr := fn()
	if err := setns(orig); err != nil {
		return fmt.Errorf("netns: leave %s: %w (thread left locked)", name, err)
	}
	runtime.UnlockOSThread()
	return fnErr
}

// setns switches the calling thread; it reads the fd through SyscallConn so
// the *os.File keeps its mode.
func setns(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Setns(int(fd), unix.CLONE_NEWNET) }); err != nil {
		return err
	}
	return serr
}

// Command returns a command that runs in the named namespace via
// `ip netns exec` (exec.Command alone would run in the host namespace).
func Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", name}, args...)...)
}
