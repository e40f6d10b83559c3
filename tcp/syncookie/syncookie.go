// Package syncookie encodes and checks TCP SYN cookies the way Linux does
// (net/ipv4/syncookies.c): the listener answers a SYN without keeping state,
// hiding the MSS choice and a minute counter in its initial sequence number,
// and the TCP options (window scale, SACK, ECN) in the low bits of its
// timestamp value.
//
// The keyed hash is SipHash-2-4 with two 128-bit keys, like Linux's
// syncookie_secret[2]. A Jar is immutable after NewJar and safe for
// concurrent use; Make and Check do not allocate.
package syncookie

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/tapstack/tapstack/internal/siphash"
)

const (
	cookieBits = 24                // upper 8 bits carry the minute counter
	cookieMask = 1<<cookieBits - 1 // lower 24 bits carry hash + MSS index
	countMask  = 0xffffffff >> cookieBits

	// MaxAge is MAX_SYNCOOKIE_AGE: a cookie is accepted while
	// (now - minute it was made) mod 256 < MaxAge, i.e. for 1–2 minutes.
	MaxAge = 2
)

// msstab is Linux's IPv4 table (1440 covers PPPoE's 1452 with options);
// msstab6 its IPv6 one (syncookies.c in net/ipv6: the minimum MTU, then
// common MTUs, less the 60 bytes of IPv6 and TCP headers).
var (
	msstab  = [4]uint16{536, 1300, 1440, 1460}
	msstab6 = [4]uint16{1280 - 60, 1480 - 60, 1500 - 60, 9000 - 60}
)

// MSSTable returns the MSS values an IPv4 cookie can carry, smallest first.
func MSSTable() [4]uint16 { return msstab }

// MSSTable6 returns those of an IPv6 cookie.
func MSSTable6() [4]uint16 { return msstab6 }

// table is the MSS table for a connection from src.
func table(src netip.AddrPort) *[4]uint16 {
	if src.Addr().Unmap().Is4() {
		return &msstab
	}
	return &msstab6
}

// Jar holds the two secret keys; the zero Jar is usable but insecure.
type Jar struct {
	key [2]siphash.Key
}

// NewJar splits secret into the two SipHash keys (syncookie_secret[0], [1]).
func NewJar(secret [32]byte) *Jar {
	return &Jar{key: [2]siphash.Key{siphash.KeyFrom(secret[0:16]), siphash.KeyFrom(secret[16:32])}}
}

// cookieTime mirrors tcp_cookie_time: minutes, as a wrapping counter.
func cookieTime(now time.Time) uint32 { return uint32(now.Unix() / 60) }

// mssIndex picks the largest entry of tab not above mss, or the smallest
// entry when mss is below all of them (cookie_v4_init_sequence's loop).
func mssIndex(tab *[4]uint16, mss uint16) uint32 {
	i := len(tab) - 1
	for ; i > 0; i-- {
		if mss >= tab[i] {
			break
		}
	}
	return uint32(i)
}

// hash mirrors cookie_hash: SipHash of (saddr, daddr, sport<<16|dport, count)
// under key c. IPv6 tuples hash all 40 bytes (saddr, daddr, ports, count).
func (j *Jar) hash(src, dst netip.AddrPort, count uint32, c int) uint32 {
	sa, da := src.Addr().Unmap(), dst.Addr().Unmap()
	ports := uint32(src.Port())<<16 | uint32(dst.Port())
	if sa.Is4() && da.Is4() {
		s4, d4 := sa.As4(), da.As4()
		return uint32(siphash.Sum4u32(j.key[c], binary.BigEndian.Uint32(s4[:]), binary.BigEndian.Uint32(d4[:]), ports, count))
	}
	s16, d16 := sa.As16(), da.As16()
	s := siphash.New(j.key[c])
	s.Block(binary.LittleEndian.Uint64(s16[0:8]))
	s.Block(binary.LittleEndian.Uint64(s16[8:16]))
	s.Block(binary.LittleEndian.Uint64(d16[0:8]))
	s.Block(binary.LittleEndian.Uint64(d16[8:16]))
	s.Block(uint64(ports) | uint64(count)<<32)
	return uint32(s.Final(40 << 56))
}

// Make returns the SYN-ACK's initial sequence number for a SYN from src to
// dst carrying clientISN and an MSS option of mss (0 when absent), and the
// MSS the cookie encodes (to be advertised in the SYN-ACK and used by the
// child socket). Mirrors cookie_v4_init_sequence → secure_tcp_syn_cookie.
func (j *Jar) Make(src, dst netip.AddrPort, clientISN uint32, mss uint16, now time.Time) (isn uint32, mssUsed uint16) {
	tab := table(src)
	idx := mssIndex(tab, mss)
	count := cookieTime(now)
	isn = j.hash(src, dst, 0, 0) + clientISN + count<<cookieBits +
		((j.hash(src, dst, count, 1) + idx) & cookieMask)
	return isn, tab[idx]
}

// Check validates the cookie returned in the third handshake segment from
// src to dst: clientISN = ack.Seq-1, cookie = ack.Ack-1. It returns the MSS
// encoded by Make. Mirrors check_tcp_syn_cookie and __cookie_v4_check.
func (j *Jar) Check(src, dst netip.AddrPort, clientISN, cookie uint32, now time.Time) (mss uint16, ok bool) {
	count := cookieTime(now)
	cookie -= j.hash(src, dst, 0, 0) + clientISN
	diff := (count - cookie>>cookieBits) & countMask
	if diff >= MaxAge {
		return 0, false
	}
	idx := (cookie - j.hash(src, dst, count-diff, 1)) & cookieMask
	tab := table(src)
	if idx >= uint32(len(tab)) {
		return 0, false
	}
	return tab[idx], true
}
