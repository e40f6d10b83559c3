package syncookie_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/tapstack/tapstack/tcp/syncookie"
)

// A listener whose SYN queue is full answers with a cookie instead of
// keeping state, and rebuilds the connection from the client's ACK.
func Example() {
	var secret [32]byte // from crypto/rand in a real stack
	jar := syncookie.NewJar(secret)
	client := netip.MustParseAddrPort("192.0.2.7:51000")
	server := netip.MustParseAddrPort("192.0.2.1:80")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	// SYN: seq 1000, MSS 1400, window scale 7, SACK permitted, TSval clock at 123456.
	isn, mss := jar.Make(client, server, 1000, 1400, now)
	tsval := syncookie.EncodeTimestamp(123456, 7, true, false)
	fmt.Println("SYN-ACK advertises MSS", mss)

	// ACK: seq 1001, ack isn+1, TSecr echoes tsval — 40 seconds later.
	gotMSS, ok := jar.Check(client, server, 1001-1, isn+1-1, now.Add(40*time.Second))
	ws, sack, ecn, _ := syncookie.DecodeTimestamp(tsval)
	fmt.Println("cookie ok:", ok, "mss", gotMSS, "wscale", ws, "sack", sack, "ecn", ecn)

	// Three minutes later the cookie has expired (MAX_SYNCOOKIE_AGE).
	_, ok = jar.Check(client, server, 1000, isn, now.Add(3*time.Minute))
	fmt.Println("stale cookie ok:", ok)
	// Output:
	// SYN-ACK advertises MSS 1300
	// cookie ok: true mss 1300 wscale 7 sack true ecn false
	// stale cookie ok: false
}
