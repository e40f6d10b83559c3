package syncookie

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

var (
	testSecret = [32]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}
	client     = netip.MustParseAddrPort("10.0.0.2:40000")
	server     = netip.MustParseAddrPort("10.0.0.1:80")
	client6    = netip.MustParseAddrPort("[2001:db8::2]:40000")
	server6    = netip.MustParseAddrPort("[2001:db8::1]:80")
	t0         = time.Date(2026, 11, 23, 19, 30, 0, 0, time.UTC)
)

func TestMSSChoice(t *testing.T) {
	tests := []struct{ client, want, want6 uint16 }{
		{0, 536, 1220}, {500, 536, 1220}, {535, 536, 1220}, {536, 536, 1220}, {1000, 536, 1220}, {1299, 536, 1220},
		{1300, 1300, 1220}, {1400, 1300, 1220}, {1420, 1300, 1420}, {1439, 1300, 1420}, {1440, 1440, 1440}, {1452, 1440, 1440},
		{1459, 1440, 1440}, {1460, 1460, 1440}, {8940, 1460, 8940}, {8960, 1460, 8940}, {65535, 1460, 8940},
	}
	j := NewJar(testSecret)
	for _, tc := range tests {
		for _, tup := range [][2]netip.AddrPort{{client, server}, {client6, server6}} {
			if tup[0] == client6 {
				tc.want = tc.want6 // Linux's IPv6 table: 1280, 1480, 1500 and 9000 less 60
			}
			isn, used := j.Make(tup[0], tup[1], 12345, tc.client, t0)
			if used != tc.want {
				t.Errorf("client mss %d: Make chose %d want %d", tc.client, used, tc.want)
			}
			mss, ok := j.Check(tup[0], tup[1], 12345, isn, t0.Add(10*time.Second))
			if !ok || mss != tc.want {
				t.Errorf("client mss %d %v: Check = %d,%v want %d,true", tc.client, tup[0], mss, ok, tc.want)
			}
		}
	}
}

func TestRoundTripEveryEntryAndISN(t *testing.T) {
	j := NewJar(testSecret)
	r := rand.New(rand.NewPCG(1, 2))
	for _, want := range msstab {
		for range 1000 {
			isn := r.Uint32()
			src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(r.Uint32()), byte(r.Uint32()), 1, 2}), uint16(r.Uint32()))
			now := t0.Add(time.Duration(r.Int64N(int64(24 * time.Hour))))
			cookie, used := j.Make(src, server, isn, want, now)
			if used != want {
				t.Fatalf("Make(%d) chose %d", want, used)
			}
			if mss, ok := j.Check(src, server, isn, cookie, now); !ok || mss != want {
				t.Fatalf("Check = %d,%v want %d,true", mss, ok, want)
			}
		}
	}
}

func TestCheckRejects(t *testing.T) {
	j := NewJar(testSecret)
	other := testSecret
	other[31] ^= 1
	otherKey0 := testSecret
	otherKey0[0] ^= 1
	const isn = 0xdeadbeef
	cookie, _ := j.Make(client, server, isn, 1460, t0) // MSS index 3
	tests := []struct {
		name     string
		jar      *Jar
		src, dst netip.AddrPort
		isn      uint32
		cookie   uint32
		wantMSS  uint16 // 0: must fail
	}{
		{"ok", j, client, server, isn, cookie, 1460},
		{"wrong key1", NewJar(other), client, server, isn, cookie, 0},
		{"wrong key0", NewJar(otherKey0), client, server, isn, cookie, 0},
		{"wrong src addr", j, netip.MustParseAddrPort("10.0.0.3:40000"), server, isn, cookie, 0},
		{"wrong src port", j, netip.MustParseAddrPort("10.0.0.2:40001"), server, isn, cookie, 0},
		{"wrong dst addr", j, client, netip.MustParseAddrPort("10.0.0.9:80"), isn, cookie, 0},
		{"wrong dst port", j, client, netip.MustParseAddrPort("10.0.0.1:81"), isn, cookie, 0},
		{"swapped tuple", j, server, client, isn, cookie, 0},
		{"v6 tuple", j, client6, server6, isn, cookie, 0},
		{"wrong client isn", j, client, server, isn + 1000, cookie, 0},
		{"client isn-1", j, client, server, isn - 1, cookie, 0},
		{"cookie+1", j, client, server, isn, cookie + 1, 0},
		{"cookie+4", j, client, server, isn, cookie + 4, 0},
		{"cookie^1<<23", j, client, server, isn, cookie ^ 1<<23, 0},
		{"cookie^1<<31", j, client, server, isn, cookie ^ 1<<31, 0},
		// Linux adds sseq and the MSS index linearly, so an ISN or cookie a
		// few units off still lands on a table entry: a different MSS.
		{"client isn+1 (linear, like Linux)", j, client, server, isn + 1, cookie, 1440},
		{"cookie-3 (linear, like Linux)", j, client, server, isn, cookie - 3, 536},
	}
	for _, tc := range tests {
		mss, ok := tc.jar.Check(tc.src, tc.dst, tc.isn, tc.cookie, t0)
		if ok != (tc.wantMSS != 0) || mss != tc.wantMSS {
			t.Errorf("%s: Check = %d,%v want %d", tc.name, mss, ok, tc.wantMSS)
		}
	}
}

// check_tcp_syn_cookie: diff = (count - cookie_count) & 0xff; diff >= MAX_SYNCOOKIE_AGE fails.
func TestAge(t *testing.T) {
	j := NewJar(testSecret)
	made := t0.Add(30 * time.Second) // mid-minute
	cookie, _ := j.Make(client, server, 7, 1300, made)
	tests := []struct {
		later time.Duration
		ok    bool
	}{
		{-61 * time.Second, false}, // from the future (diff 255)
		{-30 * time.Second, true},  // same minute, start of it
		{0, true},
		{29 * time.Second, true},  // same minute, end
		{30 * time.Second, true},  // age 1
		{89 * time.Second, true},  // age 1, last second
		{90 * time.Second, false}, // age 2
		{150 * time.Second, false},
		{256 * time.Minute, false}, // counter wraps to diff 0: hash with the new count fails
		{257 * time.Minute, false},
	}
	for _, tc := range tests {
		mss, ok := j.Check(client, server, 7, cookie, made.Add(tc.later))
		if ok != tc.ok || (ok && mss != 1300) {
			t.Errorf("checked %v after making: %d,%v want ok=%v", tc.later, mss, ok, tc.ok)
		}
	}
}

func TestRandomCookiesFail(t *testing.T) {
	j := NewJar(testSecret)
	r := rand.New(rand.NewPCG(3, 4))
	// A random cookie passes with p = 2/256 * 4/2^24 ≈ 2e-9.
	for i := range 1 << 20 {
		if _, ok := j.Check(client, server, r.Uint32(), r.Uint32(), t0); ok {
			t.Fatalf("random cookie %d validated", i)
		}
	}
}

func TestTimestampRoundTrip(t *testing.T) {
	nows := []uint32{64, 100, 0x3f3f, 0x12345678, 0xffffffc0, 0xffffffff, 1 << 31}
	for _, now := range nows {
		for ws := -1; ws <= 14; ws++ {
			for _, sack := range []bool{false, true} {
				for _, ecn := range []bool{false, true} {
					ts := EncodeTimestamp(now, ws, sack, ecn)
					if ts > now {
						t.Fatalf("Encode(%#x,%d,%v,%v) = %#x later than now", now, ws, sack, ecn, ts)
					}
					if now-ts >= 2<<TSBits {
						t.Fatalf("Encode(%#x) = %#x too far in the past", now, ts)
					}
					gws, gs, ge, ok := DecodeTimestamp(ts)
					if !ok || gws != ws || gs != sack || ge != ecn {
						t.Fatalf("Decode(Encode(%#x,%d,%v,%v)) = %d,%v,%v,%v", now, ws, sack, ecn, gws, gs, ge, ok)
					}
				}
			}
		}
	}
}

func TestTimestampLayout(t *testing.T) {
	tests := []struct {
		now       uint32
		ws        int
		sack, ecn bool
		want      uint32
	}{
		{0x1000, 7, false, false, 0x1000 - 64 + 7}, // 0x1007 > now: one slot back
		{0x1007, 7, false, false, 0x1007},
		{0x103f, -1, true, true, 0x103f},
		{0x1000, -1, false, false, 0x1000 - 64 + 0xf},
		{0x1020, 2, true, false, 0x1012},
		{0x1040, 0, false, true, 0x1020},
		{0x1040, 20, false, false, 0x1000 + 14}, // clamped to 14
	}
	for _, tc := range tests {
		if got := EncodeTimestamp(tc.now, tc.ws, tc.sack, tc.ecn); got != tc.want {
			t.Errorf("Encode(%#x,%d,%v,%v) = %#x want %#x", tc.now, tc.ws, tc.sack, tc.ecn, got, tc.want)
		}
	}
}

func TestMakeCheckNoAlloc(t *testing.T) {
	j := NewJar(testSecret)
	for _, tup := range [][2]netip.AddrPort{{client, server}, {client6, server6}} {
		n := testing.AllocsPerRun(100, func() {
			c, _ := j.Make(tup[0], tup[1], 1, 1460, t0)
			j.Check(tup[0], tup[1], 1, c, t0)
		})
		if n != 0 {
			t.Errorf("%v: %v allocs per Make+Check", tup[0], n)
		}
	}
}

func FuzzCheck(f *testing.F) {
	j := NewJar(testSecret)
	good, _ := j.Make(client, server, 99, 1460, t0)
	f.Add(uint32(99), good, int64(0), []byte{10, 0, 0, 2}, uint16(40000))
	f.Add(uint32(0), uint32(0), int64(-1), []byte{}, uint16(0))
	f.Add(uint32(1), uint32(1<<31), int64(1<<40), []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, uint16(80))
	f.Fuzz(func(t *testing.T, isn, cookie uint32, dt int64, addr []byte, port uint16) {
		src := client
		if a, ok := netip.AddrFromSlice(addr); ok {
			src = netip.AddrPortFrom(a, port)
		}
		now := t0.Add(time.Duration(dt))
		mss, ok := j.Check(src, server, isn, cookie, now)
		if !ok {
			if mss != 0 {
				t.Fatalf("failed check returned mss %d", mss)
			}
			return
		}
		// Accepting is legitimate only for the real cookie (or a ~2e-9 collision).
		if src != client || isn != 99 || cookie != good {
			t.Logf("collision accepted: src=%v isn=%d cookie=%#x", src, isn, cookie)
		}
		if mss != 536 && mss != 1300 && mss != 1440 && mss != 1460 {
			t.Fatalf("mss %d not in table", mss)
		}
		ws, _, _, _ := DecodeTimestamp(cookie)
		if ws < -1 || ws > 14 {
			t.Fatalf("wscale %d", ws)
		}
	})
}

func BenchmarkMake(b *testing.B) {
	j := NewJar(testSecret)
	b.ReportAllocs()
	var sink uint32
	for i := 0; b.Loop(); i++ {
		c, _ := j.Make(client, server, uint32(i), 1460, t0)
		sink += c
	}
	_ = sink
}

func BenchmarkCheck(b *testing.B) {
	j := NewJar(testSecret)
	c, _ := j.Make(client, server, 1, 1460, t0)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := j.Check(client, server, 1, c, t0); !ok {
			b.Fatal("check failed")
		}
	}
}

func BenchmarkCheckIPv6(b *testing.B) {
	j := NewJar(testSecret)
	c, _ := j.Make(client6, server6, 1, 1460, t0)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := j.Check(client6, server6, 1, c, t0); !ok {
			b.Fatal("check failed")
		}
	}
}

func TestIPv4MappedIsIPv4(t *testing.T) {
	j := NewJar(testSecret)
	mapped := netip.AddrPortFrom(netip.AddrFrom16(client.Addr().As16()), client.Port())
	isn, _ := j.Make(mapped, server, 5, 1460, t0)
	if mss, ok := j.Check(client, server, 5, isn, t0); !ok || mss != 1460 {
		t.Errorf("v4-mapped cookie rejected for the plain v4 tuple: %d,%v", mss, ok)
	}
}

func TestMSSTable(t *testing.T) {
	if got := MSSTable(); got != [4]uint16{536, 1300, 1440, 1460} {
		t.Errorf("MSSTable() = %v", got)
	}
}
