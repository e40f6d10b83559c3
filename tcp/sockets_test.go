package tcp

import (
	"testing"
	"time"
	"unsafe"
)

func TestSocketsRows(t *testing.T) {
	h := newHarness(t, nil)
	l := h.listen(7)
	h.inject(seg{src: 1, dst: 80, seq: 1000, flags: fS, opts: noOpts()})
	h.drain()
	c, _, _, _ := h.activeEstab(nil)
	c.Write([]byte("abc"))
	rows := h.s.Sockets()
	states := map[string]SocketInfo{}
	for _, r := range rows {
		states[r.State] = r
	}
	if r := states["LISTEN"]; r.SendQ != 7 || r.Backlog != 7 || r.SynQueue != 1 {
		t.Fatalf("listen row %+v", r)
	}
	if r := states["SYN-RECV"]; r.Remote.Port() != 1 {
		t.Fatalf("request row %+v", r)
	}
	if r := states["ESTAB"]; r.SendQ != 3 || r.Timer != "on" || r.Cwnd != 10 || r.MSS != 1460 {
		t.Fatalf("estab row %+v", r)
	}
	h.drain()
	h.after(3 * time.Second) // past the RTO: the head is retransmitted
	for _, r := range h.s.Sockets() {
		if r.State == "ESTAB" && (r.Retrans < 1 || r.RTT <= 0 || r.RTTVar <= 0) {
			t.Fatalf("estab row after retransmission %+v", r)
		}
	}
	_ = l
}

func TestCountersOrderAndNames(t *testing.T) {
	h := newHarness(t, nil)
	var names []string
	h.s.Counters(func(n string, v uint64) { names = append(names, n) })
	if names[0] != "TcpActiveOpens" || len(names) < 40 {
		t.Fatalf("names %v", names)
	}
	seenExt := false
	for _, n := range names {
		if len(n) > 6 && n[:6] == "TcpExt" {
			seenExt = true
		} else if seenExt {
			t.Fatalf("Tcp counter %s after TcpExt ones", n)
		}
	}
}

func TestIdleConnSize(t *testing.T) {
	t.Logf("Conn struct %d bytes, reqSock %d bytes", unsafe.Sizeof(Conn{}), unsafe.Sizeof(reqSock{}))
}

func TestModelTimeout(t *testing.T) {
	tests := []struct {
		boundary int
		base     time.Duration
		want     time.Duration
	}{
		{6, time.Second, 127 * time.Second},                     // tcp_syn_retries=6
		{15, 200 * time.Millisecond, 924600 * time.Millisecond}, // tcp_retries2=15: ~924.6 s
		{3, 200 * time.Millisecond, 3 * time.Second},
		{5, 0, 63 * time.Millisecond}, // guarded base
	}
	for _, tt := range tests {
		if got := modelTimeout(tt.boundary, tt.base); got != tt.want {
			t.Errorf("modelTimeout(%d, %v) = %v, want %v", tt.boundary, tt.base, got, tt.want)
		}
	}
}
