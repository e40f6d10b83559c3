// Package cmdtest runs an example's real main() from its test binary: the
// binary re-executes itself with an environment variable set, and the test
// drives the child through its flags, signals and output.
package cmdtest

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tapstack/tapstack/internal/testenv/testwait"
)

// Main runs mainFn and returns true when this process is the re-executed
// child (env=1); TestMain calls it first and returns if it reports true.
func Main(env string, mainFn func()) bool {
	if os.Getenv(env) != "1" {
		return false
	}
	mainFn()
	return true
}

// Command is the example's main() with args, as a child process.
func Command(env string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), env+"=1")
	return cmd
}

// Child is a running example.
type Child struct {
	Cmd *exec.Cmd
	Out *Buffer // stdout and stderr, as they come
	t   testing.TB
}

// Start runs the example with args and waits for ready to appear in its
// output, as long as the test may run; the child is killed when the test
// ends.
func Start(t testing.TB, env, ready string, args ...string) *Child {
	t.Helper()
	return StartCmd(t, Command(env, args...), ready)
}

// StartCmd is Start for a command the test built itself (one run with `ip
// netns exec`, say): cmd must re-execute the test binary with env set, as
// Command does.
func StartCmd(t testing.TB, cmd *exec.Cmd, ready string) *Child {
	t.Helper()
	c := &Child{Cmd: cmd, Out: &Buffer{}, t: t}
	c.Cmd.Stdout, c.Cmd.Stderr = c.Out, c.Out
	if err := c.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Cmd.Process.Kill(); c.Cmd.Wait() })
	c.WaitFor(time.Until(testwait.Deadline(t)), ready)
	return c
}

// WaitFor waits until every one of wants is in the output.
func (c *Child) WaitFor(timeout time.Duration, wants ...string) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, missing := c.Out.String(), ""
		for _, w := range wants {
			if !strings.Contains(out, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no %q in the output of %v:\n%s", missing, c.Cmd.Args, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop sends SIGTERM and waits for a clean exit; it returns the output.
func (c *Child) Stop() string {
	c.t.Helper()
	c.Cmd.Process.Signal(syscall.SIGTERM)
	if err := c.Cmd.Wait(); err != nil {
		c.t.Fatalf("exit: %v\n%s", err, c.Out.String())
	}
	return c.Out.String()
}

// Buffer collects a child's output while it runs.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
