package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// The kernel's clients run inside the demo's namespace. A socket belongs to
// the namespace of the thread that creates it and Go moves goroutines
// between threads, so they run in a separate process: this program
// re-executed under `ip netns exec` with clientEnv holding its orders.
const clientEnv = "TAPSTACK_BACKLOG_CLIENT"

// clientOrders tell a client process what to do: Count connects to Addr,
// one every Spacing, each given Timeout to complete; with Echo set each
// connection then sends it and waits for it back. With Hold the
// connections stay open until stdin closes. With UDP set it instead
// sends Count datagrams of Size bytes to Addr (runUDPSender).
type clientOrders struct {
	Addr    string
	Count   int
	Spacing time.Duration
	Timeout time.Duration
	Echo    string
	Hold    bool
	UDP     bool
	Size    int
}

// clientEvent is one line a client process prints: client I started
// connecting, connected, failed, or echoed.
type clientEvent struct {
	I     int
	What  string // "start", "ok", "echo", or why it failed: "timeout", "refused", "reset", ...
	Took  time.Duration
	Local string `json:",omitempty"`
}

// runClients is the client process.
func runClients(raw string) int {
	var o clientOrders
	if err := json.Unmarshal([]byte(raw), &o); err != nil {
		fmt.Fprintln(os.Stderr, "backlog client:", err)
		return 2
	}
	if o.UDP {
		return runUDPSender(o)
	}
	var mu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	emit := func(e clientEvent) {
		mu.Lock()
		enc.Encode(e)
		mu.Unlock()
	}
	conns := make([]net.Conn, o.Count)
	var wg sync.WaitGroup
	for i := range o.Count {
		if i > 0 {
			time.Sleep(o.Spacing)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			emit(clientEvent{I: i, What: "start"})
			start := time.Now()
			c, err := net.DialTimeout("tcp", o.Addr, o.Timeout)
			if err != nil {
				emit(clientEvent{I: i, What: classify(err), Took: time.Since(start)})
				return
			}
			conns[i] = c
			emit(clientEvent{I: i, What: "ok", Took: time.Since(start), Local: c.LocalAddr().String()})
			if o.Echo == "" {
				return
			}
			c.SetDeadline(time.Now().Add(o.Timeout))
			buf := make([]byte, len(o.Echo))
			if _, err := c.Write([]byte(o.Echo)); err != nil {
				emit(clientEvent{I: i, What: classify(err), Took: time.Since(start)})
				return
			}
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != o.Echo {
				emit(clientEvent{I: i, What: "echo-failed: " + classify(err), Took: time.Since(start)})
				return
			}
			emit(clientEvent{I: i, What: "echo", Took: time.Since(start)})
		}()
	}
	wg.Wait()
	if o.Hold {
		io.Copy(io.Discard, os.Stdin)
	}
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	return 0
}

func classify(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, io.EOF):
		return "eof"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return err.Error()
}

// clients is a running client process as the demo sees it: its events
// arrive on Events, which closes when the process exits.
type clients struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	Events chan clientEvent
	done   chan struct{}
}

// startClients re-executes this program inside the namespace with orders.
func startClients(ctx context.Context, nsName string, o clientOrders) (*clients, error) {
	raw, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", nsName, self)
	cmd.Env = append(os.Environ(), clientEnv+"="+string(raw))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start clients in netns %s: %w", nsName, err)
	}
	c := &clients{cmd: cmd, stdin: stdin, Events: make(chan clientEvent, 4*o.Count+4), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer close(c.Events)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e clientEvent
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				c.Events <- e
			}
		}
		cmd.Wait()
	}()
	return c, nil
}

// release lets a holding client process close its connections and exit,
// and waits for it.
func (c *clients) release() {
	c.stdin.Close()
	for range c.Events {
	}
	<-c.done
}
