package stack_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/tapstack/tapstack/internal/testenv/netnstest"
	"github.com/tapstack/tapstack/internal/testenv/synflood"
	"github.com/tapstack/tapstack/internal/testenv/testwait"
	"github.com/tapstack/tapstack/stack"
)

var fwdRange = netip.MustParsePrefix("10.99.0.0/16")

// forwardRange routes fwdRange from the namespace's kernel to the stack,
// whose local route takes it.
func forwardRange(t *testing.T, ns *netnstest.NS, st *stack.Stack) {
	t.Helper()
	if err := st.AddLocalRoute(fwdRange); err != nil {
		t.Fatal(err)
	}
	ns.MustIP("route", "add", fwdRange.String(), "via", stackAddr.Addr().String())
}

// TestInteropForwarder: kernel clients connect to addresses and ports in
// 10.99.0.0/16 that exist nowhere; the stack's forwarder takes each
// connection with its original destination (which it writes back), echoes,
// and refuses the port its handler resets (the kernel's connect gets
// ECONNREFUSED). A UDP flow to such an address gets its own endpoint,
// whose reply the kernel's connected socket accepts (so it comes from the
// address the kernel sent to). ss shows the forwarder.
func TestInteropForwarder(t *testing.T) {
	ns, st := tapStack(t, nil)
	forwardRange(t, ns, st)
	_, err := st.NewTCPForwarder(64, func(r *stack.TCPForwarderRequest) {
		local, _ := r.ID()
		if local.Port() == 9 {
			r.Reset()
			return
		}
		c, err := r.Accept()
		if err != nil {
			t.Errorf("Accept %v: %v", local, err)
			return
		}
		defer c.Close()
		fmt.Fprintf(c, "to %v\n", c.LocalAddr())
		io.Copy(c, c)
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.NewUDPForwarder(func(r *stack.UDPForwarderRequest) {
		c, err := r.CreateEndpoint()
		if err != nil {
			t.Error(err)
			return
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 64)
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s from %v", buf[:n], c.LocalAddr())
		}()
	})
	if err != nil {
		t.Fatal(err)
	}
	dests := []string{"10.99.3.4:8080", "10.99.200.1:443", "10.99.3.4:22"}
	err = ns.Do(func() error {
		d := net.Dialer{Deadline: testwait.Deadline(t)}
		for _, a := range dests {
			c, err := d.Dial("tcp", a)
			if err != nil {
				return fmt.Errorf("dial %s: %w", a, err)
			}
			c.SetDeadline(testwait.Deadline(t))
			br := bufio.NewReader(c)
			line, err := br.ReadString('\n')
			if err != nil || line != "to "+a+"\n" {
				c.Close()
				return fmt.Errorf("%s: greeting %q (%v), want the original destination", a, line, err)
			}
			fmt.Fprint(c, "ping")
			buf := make([]byte, 4)
			if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "ping" {
				c.Close()
				return fmt.Errorf("%s: echo %q (%v)", a, buf, err)
			}
			c.Close()
		}
		if _, err := d.Dial("tcp", "10.99.1.1:9"); !errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("dial a reset port: %v, want ECONNREFUSED", err)
		}
		u, err := d.Dial("udp", "10.99.5.5:5353")
		if err != nil {
			return err
		}
		defer u.Close()
		u.SetDeadline(testwait.Deadline(t))
		if _, err := u.Write([]byte("hello")); err != nil {
			return err
		}
		buf := make([]byte, 64)
		n, err := u.Read(buf) // a connected socket: only from 10.99.5.5:5353
		if err != nil || string(buf[:n]) != "hello from 10.99.5.5:5353" {
			return fmt.Errorf("udp reply %q (%v)", buf[:n], err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := counter(t, st, "TcpPassiveOpens"); got != uint64(len(dests)) {
		t.Errorf("PassiveOpens %d, want %d", got, len(dests))
	}
	listed := false
	for _, si := range st.Sockets() {
		listed = listed || si.State == "LISTEN" && si.Local.Port() == 0 && si.Backlog == 64
	}
	if !listed {
		t.Errorf("ss does not list the forwarder: %+v", st.Sockets())
	}
}

// TestInteropForwarderSynFlood: spoofed SYNs at 20 000 addresses of the
// range, to a forwarder whose handler decides nothing: the in-flight
// requests stop at maxInFlight, the handler hears of exactly those, the
// stack answers none, and every SYN is accounted for hop by hop from the
// namespace's qdisc to TCP's ListenDrops. With syncookies on, a real
// client then connects through the full queue.
func TestInteropForwarderSynFlood(t *testing.T) {
	const maxInFlight, count = 64, 20_000
	ns, st := floodNS(t)
	forwardRange(t, ns, st)
	if err := st.SetSysctl("net.ipv4.tcp_syncookies", "0"); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	f, err := st.NewTCPForwarder(maxInFlight, func(r *stack.TCPForwarderRequest) {
		if local, _ := r.ID(); local.Port() == 7 {
			c, err := r.Accept()
			if err == nil {
				io.Copy(c, c)
				c.Close()
			}
			return
		}
		calls.Add(1) // the flood's: left undecided
	})
	if err != nil {
		t.Fatal(err)
	}
	echo := func(addr string) error {
		return ns.Do(func() error {
			d := net.Dialer{Deadline: testwait.Deadline(t)}
			c, err := d.Dial("tcp", addr)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(testwait.Deadline(t))
			c.Write([]byte("x"))
			_, err = io.ReadFull(c, make([]byte, 1))
			return err
		})
	}
	if err := echo("10.99.0.7:7"); err != nil { // warm up: ARP both ways
		t.Fatal(err)
	}
	pinNeighbour(t, ns)
	before, kBefore := drain(t, ns, st)
	sent, took, err := flood(ns, synflood.Config{Target: netip.MustParseAddrPort("10.99.0.1:80"), Dests: fwdRange,
		Sources: floodSources, Rate: floodRate, Count: count})
	if err != nil {
		t.Fatal(err)
	}
	after, kAfter := drain(t, ns, st)
	d, k := after.delta(before), kAfter.delta(kBefore)
	t.Logf("flood: %d SYNs in %v; InFlight %d, handler calls %d, ListenDrops %d, TCPReqQFullDrop %d, OutSegs %d",
		sent, took, f.InFlight(), calls.Load(), d["TcpExtListenDrops"], d["TcpExtTCPReqQFullDrop"], d["TcpOutSegs"])
	if sent != count {
		t.Errorf("flooder sent %d of %d", sent, count)
	}
	kernelToStack(t, sent, k, d)
	testwait.Until(t, "the handler to hear of every request", func() bool { return calls.Load() == maxInFlight })
	if f.InFlight() != maxInFlight {
		t.Errorf("InFlight %d, want the bound %d", f.InFlight(), maxInFlight)
	}
	hopCheck(t, "TcpInSegs = requests + ListenDrops + InErrs", d["TcpInSegs"], uint64(calls.Load())+d["TcpExtListenDrops"]+d["TcpInErrs"])
	hopCheck(t, "ListenDrops = TCPReqQFullDrop", d["TcpExtListenDrops"], d["TcpExtTCPReqQFullDrop"])
	if d["TcpOutSegs"] != 0 {
		t.Errorf("the stack sent %d segments for undecided requests", d["TcpOutSegs"])
	}
	// The queue is full of undecided requests: with cookies a client
	// still gets through, completed by a syncookie.
	if err := st.SetSysctl("net.ipv4.tcp_syncookies", "1"); err != nil {
		t.Fatal(err)
	}
	if err := echo("10.99.9.9:7"); err != nil {
		t.Fatalf("a client through the full forwarder with syncookies: %v", err)
	}
	if got := counter(t, st, "TcpExtSyncookiesRecv"); got == 0 {
		t.Error("the client connected without a cookie through a full queue")
	}
}
