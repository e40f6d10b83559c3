package main

import (
	"fmt"
	"sort"
	"time"
)

// step1 fills the accept queue: backlog+3 clients, one at a time, while
// nobody accepts.
func (d *demo) step1() error {
	n := d.o.backlog
	total := n + 3
	d.begin(1, "nobody accepts")
	d.say("%d kernel clients connect one by one, %v apart; the application does not call Accept.", total, d.tm.spacing)
	cl, err := startClients(d.ctx, d.ns, clientOrders{Addr: listenAddr.String(), Count: total,
		Spacing: d.tm.spacing, Timeout: 30 * time.Second, Hold: true})
	if err != nil {
		return err
	}
	d.held = cl
	d.pending = map[int]time.Time{}
	completed := 0
	settle := time.After(time.Duration(total)*d.tm.spacing + 1200*time.Millisecond)
	for done := false; !done; {
		select {
		case e, ok := <-cl.Events:
			if !ok {
				return fmt.Errorf("step 1: the client process exited early")
			}
			switch e.What {
			case "start":
				d.pending[e.I] = time.Now()
			case "ok":
				delete(d.pending, e.I)
				completed++
				acceptq := d.acceptqAtLeast(completed)
				d.say("  client %2d: connected in %6.2f ms  → accept queue %d (Recv-Q %d / Send-Q %d)",
					e.I+1, ms(e.Took), acceptq, acceptq, n)
			default:
				delete(d.pending, e.I)
				d.say("  client %2d: %s after %v", e.I+1, e.What, e.Took.Round(time.Millisecond))
			}
		case <-settle:
			done = true
		case <-d.ctx.Done():
			return errInterrupted
		}
	}
	for _, i := range sortedKeys(d.pending) {
		d.say("  client %2d: SYN sent %4.1f s ago, no SYN-ACK: the listener dropped it; the kernel will retransmit it",
			i+1, time.Since(d.pending[i]).Seconds())
	}
	moved := d.report()
	_, acceptq := d.ln.QueueLens()
	d.say("  Why %d and not %d: Linux tests sk_acceptq_is_full() as sk_ack_backlog > sk_max_ack_backlog,", n+1, n)
	d.say("  so the queue is full only once it holds backlog+1 = %d children. Each SYN after that is dropped in", n+1)
	d.say("  tcp_conn_request (ListenOverflows and ListenDrops +1) before any request sock exists: the client")
	d.say("  just sees silence and retransmits its SYN (every second at first on kernels with")
	d.say("  net.ipv4.tcp_syn_linear_timeouts, then with exponential backoff).")
	d.say("result step=1 completed=%d backlog=%d acceptq=%d pending=%d listen_overflows=%d listen_drops=%d",
		completed, n, acceptq, len(d.pending), moved["TcpExtListenOverflows"], moved["TcpExtListenDrops"])
	return d.wait(d.tm.lingerAt)
}

// step2 starts accepting: the queue drains and the waiting clients' next
// SYN retransmission succeeds.
func (d *demo) step2() error {
	d.begin(2, "the application accepts")
	waiting := len(d.pending)
	d.say("Accept() starts (an echo server): the %d queued connections are handed out at once, and each", d.o.backlog+1)
	d.say("waiting client's next SYN retransmission finds room.")
	d.startAccepting()
	timeout := time.After(20 * time.Second)
	late := 0
	for len(d.pending) > 0 {
		select {
		case e, ok := <-d.held.Events:
			if !ok {
				return fmt.Errorf("step 2: the client process exited early")
			}
			if e.What == "start" {
				continue
			}
			delete(d.pending, e.I)
			if e.What == "ok" {
				late++
				d.say("  client %2d: connected after %4.1f s (its SYN had been dropped and was retransmitted)", e.I+1, e.Took.Seconds())
			} else {
				d.say("  client %2d: %s after %v", e.I+1, e.What, e.Took.Round(time.Millisecond))
			}
		case <-timeout:
			d.say("  %d clients still waiting after 20 s", len(d.pending))
			d.pending = map[int]time.Time{}
		case <-d.ctx.Done():
			return errInterrupted
		}
	}
	if err := d.wait(d.tm.lingerAt); err != nil {
		return err
	}
	moved := d.report()
	_, acceptq := d.ln.QueueLens()
	d.say("result step=2 waiting=%d completed_late=%d acceptq=%d passive_opens=%d",
		waiting, late, acceptq, moved["TcpPassiveOpens"])
	d.held.release()
	return d.wait(d.tm.lingerAt)
}

// step3 floods with syncookies off: the SYN queue fills to its bound and
// every further SYN, the real clients' too, is dropped.
func (d *demo) step3() error {
	d.begin(3, "SYN flood, tcp_syncookies=0")
	if err := d.st.SetSysctl("net.ipv4.tcp_syncookies", "0"); err != nil {
		return err
	}
	d.say("net.ipv4.tcp_syncookies=0. %d spoofed SYN/s from %s for %v; the SYN-ACKs go to addresses",
		d.o.floodRate, floodSources, d.tm.flood)
	d.say("that never answer, so each request sock waits for its retransmissions to time out.")
	fr := d.floodWithClients(false)
	if fr.err != nil {
		return fr.err
	}
	moved := d.report()
	d.say("  The SYN queue is full at %d = the backlog (inet_csk_reqsk_queue_is_full: qlen >= sk_max_ack_backlog).", d.o.backlog)
	d.say("  With cookies off, tcp_syn_flood_action drops every SYN beyond it (TCPReqQFullDrop, ListenDrops),")
	d.say("  the real clients' included: %d of %d connected.", fr.ok, fr.legit)
	d.say("result step=3 synq_max=%d synq_bound=%d reqqfulldrop=%d listen_drops=%d legit=%d legit_ok=%d flood_sent=%d flood_rate=%.0f",
		fr.synqMax, d.o.backlog, moved["TcpExtTCPReqQFullDrop"], moved["TcpExtListenDrops"], fr.legit, fr.ok, fr.sent, fr.rate)
	return d.wait(d.tm.lingerAt)
}

// step4 repeats the flood with syncookies on: SYN-ACKs carry cookies and
// the real clients connect.
func (d *demo) step4() error {
	d.begin(4, "SYN flood, tcp_syncookies=1")
	if err := d.st.SetSysctl("net.ipv4.tcp_syncookies", "1"); err != nil {
		return err
	}
	d.say("net.ipv4.tcp_syncookies=1 (the Linux default), the same flood. With the SYN queue full, each SYN is")
	d.say("answered with a SYN-ACK whose sequence number encodes the connection (a cookie) and nothing is kept;")
	d.say("a real client's ACK returns the cookie and the connection is rebuilt from it.")
	fr := d.floodWithClients(true)
	if fr.err != nil {
		return fr.err
	}
	moved := d.report()
	d.say("  %d of %d real clients connected and echoed during the flood; the SYN queue peaked at %d, its bound.", fr.echoed, fr.legit, fr.synqMax)
	d.say("result step=4 synq_max=%d cookies_sent=%d cookies_recv=%d cookies_failed=%d legit=%d legit_ok=%d legit_echo=%d flood_sent=%d flood_rate=%.0f",
		fr.synqMax, moved["TcpExtSyncookiesSent"], moved["TcpExtSyncookiesRecv"], moved["TcpExtSyncookiesFailed"],
		fr.legit, fr.ok, fr.echoed, fr.sent, fr.rate)
	return d.wait(d.tm.lingerAt)
}

type floodRun struct {
	sent              int
	rate              float64
	legit, ok, echoed int
	synqMax           int
	err               error
}

// floodWithClients floods for the step's time while real clients try to
// connect (and, with echo, exchange data). Without echo the clients give up
// before the flood ends, so their failure is the flood's doing.
func (d *demo) floodWithClients(echo bool) floodRun {
	fr := floodRun{legit: d.tm.legit}
	type result struct {
		sent int
		took time.Duration
		err  error
	}
	floodc := make(chan result, 1)
	go func() {
		end := d.rec.spanStart(fmt.Sprintf("spoofed SYN flood, %d/s", d.o.floodRate))
		defer end()
		start := time.Now()
		sent, err := d.flood()
		floodc <- result{sent, time.Since(start), err}
	}()
	if err := d.wait(400 * time.Millisecond); err != nil {
		return floodRun{err: err}
	}
	spacing := 200 * time.Millisecond
	o := clientOrders{Addr: listenAddr.String(), Count: fr.legit, Spacing: spacing}
	if echo {
		o.Timeout, o.Echo = 20*time.Second, "hello through the flood"
	} else {
		o.Timeout = d.tm.flood - 400*time.Millisecond - time.Duration(fr.legit-1)*spacing - 300*time.Millisecond
	}
	d.say("  %d real clients connect, %v apart, each giving up after %v:", fr.legit, spacing, o.Timeout)
	cl, err := startClients(d.ctx, d.ns, o)
	if err != nil {
		return floodRun{err: err}
	}
	for e := range cl.Events {
		switch e.What {
		case "start":
		case "ok":
			fr.ok++
			synq, _ := d.ln.QueueLens()
			d.say("  client %d: connected in %.1f ms (SYN queue %d/%d)", e.I+1, ms(e.Took), synq, d.o.backlog)
		case "echo":
			fr.echoed++
			d.say("  client %d: echoed", e.I+1)
		default:
			synq, _ := d.ln.QueueLens()
			d.say("  client %d: %s after %v (SYN queue %d/%d)", e.I+1, e.What, e.Took.Round(time.Millisecond), synq, d.o.backlog)
		}
	}
	r := <-floodc
	if r.err != nil {
		return floodRun{err: r.err}
	}
	fr.sent, fr.rate = r.sent, float64(r.sent)/r.took.Seconds()
	fr.synqMax = d.rec.maxSynqSinceMark()
	d.say("  flood: %d SYNs in %v (%.0f SYN/s); SYN queue peaked at %d", r.sent, r.took.Round(time.Millisecond), fr.rate, fr.synqMax)
	return fr
}

// acceptqAtLeast returns the accept queue length once it reaches n, or
// after 250 ms: a client counts itself connected when it sends the final
// ACK, a moment before the stack has processed it.
func (d *demo) acceptqAtLeast(n int) int {
	deadline := time.Now().Add(250 * time.Millisecond)
	for {
		_, acceptq := d.ln.QueueLens()
		if acceptq >= n || time.Now().After(deadline) {
			return acceptq
		}
		time.Sleep(time.Millisecond)
	}
}

func ms(t time.Duration) float64 { return float64(t) / float64(time.Millisecond) }

func sortedKeys(m map[int]time.Time) []int {
	k := make([]int, 0, len(m))
	for i := range m {
		k = append(k, i)
	}
	sort.Ints(k)
	return k
}
