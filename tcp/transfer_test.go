package tcp

import (
	"bytes"
	"crypto/sha256"
	"math/rand"
	"net/netip"
	"testing"
	"time"

	"github.com/tapstack/tapstack/wire"
)

func TestHandshakeAndDataBothWays(t *testing.T) {
	l := newTestLink(1)
	a, b := l.newStack(addrA, nil), l.newStack(addrB, nil)
	c, s := l.pair(t, a, b)
	if ctr(a, "TcpActiveOpens") != 1 || ctr(b, "TcpPassiveOpens") != 1 || ctr(a, "TcpCurrEstab") != 1 {
		t.Fatalf("counters: active %d passive %d", ctr(a, "TcpActiveOpens"), ctr(b, "TcpPassiveOpens"))
	}
	msg := []byte("hello, server")
	if n := c.tryWrite(msg); n != len(msg) {
		t.Fatalf("wrote %d", n)
	}
	buf := make([]byte, 100)
	var got []byte
	l.run(t, time.Second, func() bool { got = append(got, buf[:s.tryRead(buf)]...); return len(got) == len(msg) })
	if !bytes.Equal(got, msg) {
		t.Fatalf("server got %q", got)
	}
	reply := []byte("hello, client")
	s.tryWrite(reply)
	got = nil
	l.run(t, time.Second, func() bool { got = append(got, buf[:c.tryRead(buf)]...); return len(got) == len(reply) })
	if !bytes.Equal(got, reply) {
		t.Fatalf("client got %q", got)
	}
	// Active close from the client: FIN_WAIT → TIME_WAIT, server LAST_ACK → CLOSED.
	c.Close()
	l.run(t, time.Second, func() bool { return s.State() == StateCloseWait })
	s.Close()
	l.run(t, time.Second, func() bool { return c.State() == StateTimeWait && s.State() == StateClose })
	l.clk.Advance(59 * time.Second)
	if c.State() != StateTimeWait {
		t.Fatalf("TIME_WAIT ended early: %v", c.State())
	}
	l.clk.Advance(2 * time.Second)
	if c.State() != StateClose {
		t.Fatalf("after 2MSL: %v", c.State())
	}
	if ctr(a, "TcpCurrEstab") != 0 || ctr(b, "TcpCurrEstab") != 0 || ctr(a, "TcpExtTW") != 1 {
		t.Fatal("CurrEstab/TW counters wrong")
	}
}

func transfer(t *testing.T, l *testLink, c, s *Conn, size int, limit time.Duration) {
	t.Helper()
	data := make([]byte, size)
	rand.New(rand.NewSource(7)).Read(data)
	want := sha256.Sum256(data)
	h := sha256.New()
	got := 0
	sent := 0
	buf := make([]byte, 64<<10)
	l.run(t, limit, func() bool {
		if sent < size {
			sent += c.tryWrite(data[sent:])
		}
		for {
			n := s.tryRead(buf)
			if n == 0 {
				break
			}
			h.Write(buf[:n])
			got += n
		}
		return got == size
	})
	if [32]byte(h.Sum(nil)) != want {
		t.Fatal("sha256 mismatch")
	}
}

func TestBulkTransferLossyReordering(t *testing.T) {
	l := newTestLink(42)
	a, b := l.newStack(addrA, nil), l.newStack(addrB, nil)
	c, s := l.pair(t, a, b)
	l.loss, l.jitter, l.dup = 0.01, 2*time.Millisecond, 0.005
	transfer(t, l, c, s, 10<<20, 10*time.Minute)
	t.Logf("rcvbuf %d sndbuf %d cwnd %d srtt %v probes %d", s.rcv.bufMax, c.snd.bufMax, c.rec.cong.Cwnd, c.rtt.srtt, a.Counter("TcpExtTCPLossProbes"))
	t.Logf("virtual time %v, retrans %d, fast %d, timeouts %d, sackrec %d, ofo %d",
		l.clk.Now().Sub(t0), ctr(a, "TcpRetransSegs"), ctr(a, "TcpExtTCPFastRetrans"),
		ctr(a, "TcpExtTCPTimeouts"), ctr(a, "TcpExtTCPSackRecovery"), ctr(b, "TcpExtTCPOFOQueue"))
}

func TestTransferConfigs(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Sysctls)
	}{
		{"defaults", nil},
		{"no-sack-newreno", func(s *Sysctls) { s.Sack.Store(0) }},
		{"no-timestamps", func(s *Sysctls) { s.Timestamps.Store(0) }},
		{"no-wscale", func(s *Sysctls) { s.WindowScaling.Store(0) }},
		{"reno", func(s *Sysctls) { s.CongestionControl.Store("reno") }},
		{"nothing", func(s *Sysctls) {
			s.Sack.Store(0)
			s.Timestamps.Store(0)
			s.WindowScaling.Store(0)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newTestLink(11)
			l.loss, l.jitter = 0.03, time.Millisecond
			a, b := l.newStack(addrA, tt.mod), l.newStack(addrB, tt.mod)
			c, s := l.pair(t, a, b)
			transfer(t, l, c, s, 1<<20, 5*time.Minute)
			transfer(t, l, s, c, 256<<10, 5*time.Minute)
			if a.Counter("TcpRetransSegs") == 0 {
				t.Fatal("no retransmissions under 3% loss?")
			}
			t.Logf("cc %s virtual %v retrans %d timeouts %d", c.rec.cc.Name(), l.clk.Now().Sub(t0), a.Counter("TcpRetransSegs"), a.Counter("TcpExtTCPTimeouts"))
		})
	}
}

func TestSmallWindowDoesNotStall(t *testing.T) {
	h := newHarness(t, nil)
	c, iss, irs, lport := h.activeEstab(nil)
	h.inject(seg{src: 80, dst: lport, seq: irs, ack: iss, flags: fA, wnd: 100})
	c.Write(make([]byte, 1000))
	// The window never reaches half of its maximum: sender SWS avoidance
	// holds the data and the persist timer sends what fits (tcp_write_wakeup).
	for i := 0; i < 2; i++ {
		h.expectNone()
		for j := 0; j < 10 && h.pending() == 0; j++ {
			h.after(200 * time.Millisecond)
		}
		h.expect().Seq(iss + uint32(i*100)).Len(100)
		h.inject(seg{src: 80, dst: lport, seq: irs, ack: iss + uint32(i*100+100), flags: fA, wnd: 100})
	}
	t.Logf("cc %s", c.rec.cc.Name())
}

func TestLossDuringHandshake(t *testing.T) {
	l := newTestLink(12)
	a, b := l.newStack(addrA, nil), l.newStack(addrB, nil)
	drops := 0
	l.drop = func(src netip.Addr, seg wire.TCP) bool {
		if seg.Flags()&wire.TCPFlagSYN != 0 && drops < 2 { // first SYN and first SYN-ACK
			drops++
			return true
		}
		return false
	}
	c, s := l.pair(t, a, b)
	transfer(t, l, c, s, 100<<10, time.Minute)
	if a.Counter("TcpExtTCPTimeouts") == 0 {
		t.Fatal("SYN was not retransmitted")
	}
}

func TestReceiveBufferAutoTuning(t *testing.T) {
	l := newTestLink(13)
	l.delay = 10 * time.Millisecond
	a, b := l.newStack(addrA, nil), l.newStack(addrB, nil)
	c, s := l.pair(t, a, b)
	c.SetWriteBuffer(8 << 20)
	start := l.clk.Now()
	transfer(t, l, c, s, 32<<20, 5*time.Minute)
	el := l.clk.Now().Sub(start)
	if s.rcv.bufMax <= 131072 {
		t.Fatalf("rcvbuf did not grow: %d", s.rcv.bufMax)
	}
	t.Logf("rcvbuf %d, %v for 32 MB at 20 ms RTT (%.1f MB/s)", s.rcv.bufMax, el, 32/el.Seconds())
}
